r"""gdflows: continuous-time models of gradient descent, and gradient descent itself.

The library works on a pure loss :math:`E(\theta)` of a flat parameter vector; parameters may
be given as any pytree of float arrays (an ``nnx.State``, nested dicts) and the loss may take
extra arguments, ``loss(params, *args)``: they are ravelled internally (:func:`ravel`) and the
results come back in the same structure (``run.params``; ``run.theta`` is the flat view). It runs
GD (:func:`gd`; with ``sharpness_every=k`` it tracks the top Hessian eigenvalues, returning a
:class:`SharpnessRun`, see :func:`gd_with_sharpness`), builds flows with a common face (:func:`gradient_flow`,
:func:`modified_flow`, :func:`principal_flow`, :func:`rod_flow`, :func:`central_flow`), each
carrying the learning rate :math:`h` of the GD it models, and integrates any of them at GD's
times :math:`t_n = nh` (:func:`solve`). :func:`dal` is the drift-adjusted learning rate as an
optax transformation. Every entry point returns a typed result (:class:`GDRun`,
:class:`Solution`, :class:`SharpnessRun`, :class:`CentralRun`, ...); every exception and
warning lives in :mod:`gdflows.errors`.

**Precision.** Importing gdflows changes nothing global; in particular it leaves JAX's
``jax_enable_x64`` alone, so a user's numbers do not change by importing it. The flows are
compared with GD to 1e-8 and tighter, which single precision cannot resolve: enable 64-bit mode
yourself, before creating arrays::

    import jax
    jax.config.update("jax_enable_x64", True)

(the notebooks, benchmarks, tests and command line do so). :func:`solve`, :func:`gd` and the
flows' ``init`` issue a :class:`PrecisionWarning` on float32 or complex64 input.

The implementation lives in private modules (``gdflows._gd``, ``gdflows._solve``, ...)
re-exported here; the public submodules are :mod:`gdflows.data`, :mod:`gdflows.models`,
:mod:`gdflows.optim`, :mod:`gdflows.spectral`, :mod:`gdflows.sdcp`, :mod:`gdflows.problems`, :mod:`gdflows.flows`,
:mod:`gdflows.analysis`, :mod:`gdflows.games` (two-player games), :mod:`gdflows.cost` (counting the
gradients, Hessian-vector products and eigensolver calls a run spends) and :mod:`gdflows.errors`.
"""

from gdflows._gd import gd, gd_scan, gd_with_sharpness, normalized_gd, sqrt_loss_gd
from gdflows._pytree import Unravel, ravel
from gdflows._results import (
    CentralRun,
    FlowScan,
    GDRun,
    GDScan,
    Projection,
    SharpnessRun,
    Solution,
    SolverStats,
    TrainRun,
)
from gdflows._solve import STOP_KINDS as _STOP_KINDS
from gdflows._solve import solve, solve_scan
from gdflows.errors import (
    CostWarning,
    DivergenceWarning,
    EigenTrackingError,
    LanczosError,
    NotHolomorphicError,
    NotSmoothError,
    PrecisionWarning,
    SDCPError,
    WallTimeWarning,
)
from gdflows.flows import (
    CentralInfo,
    EigenOptions,
    Flow,
    SDCPOptions,
    central_diagnostics,
    central_flow,
    central_flow_run,
    check_holomorphic,
    gradient_flow,
    modified_flow,
    normalized_gd_flow,
    pf_coefficient,
    principal_flow,
    rod_flow,
    sqrt_loss_flow,
)
from gdflows.optim import DALState, dal, scale_by_dal
from gdflows.spectral import hessian, hvp, sharpness

#: The names of the codes in :attr:`FlowScan.stop_kind`: ``STOP_KINDS[code]`` says what stopped a solve
#: (None: it finished). :attr:`Solution.stop_kind` holds the name itself, or ``"wall-time"`` after
#: :func:`solve`'s ``max_wall_time``.
STOP_KINDS = _STOP_KINDS

__version__ = "0.1.0"

__all__ = [
    "CentralInfo",
    "CentralRun",
    "CostWarning",
    "DALState",
    "DivergenceWarning",
    "EigenOptions",
    "EigenTrackingError",
    "Flow",
    "FlowScan",
    "STOP_KINDS",
    "GDRun",
    "GDScan",
    "LanczosError",
    "NotHolomorphicError",
    "NotSmoothError",
    "PrecisionWarning",
    "Projection",
    "SDCPError",
    "SDCPOptions",
    "SharpnessRun",
    "Solution",
    "SolverStats",
    "TrainRun",
    "Unravel",
    "WallTimeWarning",
    "central_diagnostics",
    "central_flow",
    "central_flow_run",
    "check_holomorphic",
    "dal",
    "gd",
    "gd_scan",
    "gd_with_sharpness",
    "gradient_flow",
    "hessian",
    "hvp",
    "modified_flow",
    "normalized_gd",
    "normalized_gd_flow",
    "pf_coefficient",
    "principal_flow",
    "ravel",
    "rod_flow",
    "scale_by_dal",
    "sharpness",
    "solve",
    "solve_scan",
    "sqrt_loss_flow",
    "sqrt_loss_gd",
]
