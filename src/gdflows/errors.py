"""Every exception and warning the library raises or issues, in one place.

All of them are also exported from :mod:`gdflows` itself, so ``except gdflows.SDCPError`` and
``except gdflows.errors.SDCPError`` name the same class.

* :class:`PrecisionWarning` — single-precision input to an entry point that is compared with GD to
  tight tolerances (:func:`gdflows.solve`, :func:`gdflows.gd`, a flow's ``init``).
* :class:`DivergenceWarning` — a run stopped at its first non-finite value.
* :class:`WallTimeWarning` — :func:`gdflows.solve` stopped at its ``max_wall_time``.
* :class:`CostWarning` — a call that will be slow where a cheaper path exists (named in the message).
* :class:`NotHolomorphicError` — the complex-space principal flow of a non-holomorphic loss.
* :class:`NotSmoothError`, :class:`SDCPError`, :class:`EigenTrackingError` — the central flow.
* :class:`LanczosError` — :func:`gdflows.spectral.top_eigenpairs` did not converge.
"""

from __future__ import annotations


class PrecisionWarning(UserWarning):
    """Single-precision (float32 or complex64) input where the library compares with GD to ~1e-8.

    Importing gdflows leaves JAX's configuration alone, and JAX's default is 32-bit. Fix: call
    ``jax.config.update("jax_enable_x64", True)`` before creating arrays, and pass float64 input.
    """


class DivergenceWarning(RuntimeWarning):
    """A run stopped at its first non-finite value; what came before is kept."""


class WallTimeWarning(UserWarning):
    """A solve reached its ``max_wall_time`` and stopped; the trajectory up to there is kept.

    Not a divergence: the flow was fine where it stopped. Fix: raise ``max_wall_time`` (or leave
    it at None), or take a cheaper flow or spectrum (each flow's docstring gives its cost).
    """


class CostWarning(UserWarning):
    """A call that will be slow on this problem, where a cheaper path exists (the message names it)."""


class NotHolomorphicError(ValueError):
    """The complex-space principal flow was asked of a non-holomorphic loss."""


class NotSmoothError(ValueError):
    """The central flow was asked of a loss without third derivatives (ReLU, abs, max, ...)."""


class SDCPError(RuntimeError):
    """The semidefinite complementarity problem was not solved to its tolerance."""


class EigenTrackingError(RuntimeError):
    """The tracked top eigenvectors stopped being eigenvectors (their residual grew too large)."""


class LanczosError(RuntimeError):
    """Lanczos did not converge to the requested tolerance; the message gives the residual."""


__all__ = [
    "CostWarning",
    "DivergenceWarning",
    "EigenTrackingError",
    "LanczosError",
    "NotHolomorphicError",
    "NotSmoothError",
    "PrecisionWarning",
    "SDCPError",
    "WallTimeWarning",
]
