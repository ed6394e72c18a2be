r"""gdflows: continuous-time models of gradient descent, and gradient descent itself.

The library works on a pure loss :math:`E(\theta)` of a flat parameter vector. It runs
GD (:func:`gd`), builds flows with a common face (:func:`gradient_flow`,
:func:`modified_flow`, :func:`principal_flow`, :func:`rod_flow`, :func:`central_flow`) and
integrates any of them at GD's times (:func:`solve`). :func:`dal` is the drift-adjusted learning
rate as an optax transformation.

Importing gdflows enables JAX's 64-bit mode (``jax_enable_x64``): the flows are compared
with GD to 1e-8 and tighter, which single precision cannot resolve.
"""

import jax

jax.config.update("jax_enable_x64", True)

from gdflows._checks import DivergenceWarning, NotHolomorphicError  # noqa: E402
from gdflows.flows import (  # noqa: E402
    Flow,
    central_diagnostics,
    central_flow,
    central_flow_run,
    check_holomorphic,
    gradient_flow,
    modified_flow,
    pf_coefficient,
    principal_flow,
    rod_flow,
)
from gdflows.gd import Trajectory, gd, gd_scan  # noqa: E402
from gdflows.optim import DALState, dal, scale_by_dal  # noqa: E402
from gdflows.solve import SolverStats, integrate, solve  # noqa: E402
from gdflows.spectral import hessian, hvp, sharpness  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "DALState",
    "DivergenceWarning",
    "Flow",
    "NotHolomorphicError",
    "SolverStats",
    "Trajectory",
    "central_diagnostics",
    "central_flow",
    "central_flow_run",
    "check_holomorphic",
    "dal",
    "gd",
    "gd_scan",
    "gradient_flow",
    "hessian",
    "hvp",
    "integrate",
    "modified_flow",
    "pf_coefficient",
    "principal_flow",
    "rod_flow",
    "scale_by_dal",
    "sharpness",
    "solve",
]
