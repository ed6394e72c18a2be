"""Argument checks shared by every public entry point.

Each check raises with a message that names the parameter, shows the value it
got and says how to fix it, so that a wrong call fails at the call site and not
deep inside a traced JAX computation.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import jax.numpy as jnp
import numpy as np

from gdflows.errors import PrecisionWarning


def check_lr(lr: Any) -> float:
    """Return ``lr`` as a float, or raise if it is not a positive finite number."""
    try:
        value = float(lr)
    except (TypeError, ValueError):
        raise TypeError(f"lr must be a positive finite number, got {lr!r}; pass e.g. lr=0.1.") from None
    if not math.isfinite(value) or value <= 0.0:
        raise ValueError(f"lr must be a positive finite number, got lr={lr!r}; pass e.g. lr=0.1.")
    return value


def check_steps(steps: Any) -> int:
    """Return ``steps`` as an int, or raise if it is not a non-negative integer."""
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)):
        raise TypeError(f"steps must be a non-negative integer, got {steps!r}; pass e.g. steps=100.")
    if steps < 0:
        raise ValueError(f"steps must be a non-negative integer, got steps={steps}; pass e.g. steps=100.")
    return int(steps)


def check_positive_int(name: str, value: Any) -> int:
    """Return ``value`` as an int, or raise naming ``name`` if it is not a positive integer."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {name}={value!r}.")
    return int(value)


def warn_if_single_precision(array: Any, entry: str, *, stacklevel: int = 3) -> None:
    """Issue a :class:`PrecisionWarning` if ``array`` is float32/complex64 (or narrower).

    ``entry`` names the function the user called; ``stacklevel`` points the warning at their call.
    """
    dtype = jnp.result_type(array)
    inexact = jnp.issubdtype(dtype, jnp.floating) or jnp.issubdtype(dtype, jnp.complexfloating)
    if inexact and jnp.finfo(dtype).bits < 64:
        warnings.warn(
            f"{entry} got {dtype} input, which resolves the flow-versus-GD agreement to ~1e-7 at best "
            "(this library compares them to 1e-8 and tighter). Importing gdflows does not change JAX's "
            'precision: call jax.config.update("jax_enable_x64", True) at the start of your program and '
            "pass float64 arrays, e.g. jnp.asarray(theta0, dtype=jnp.float64).",
            PrecisionWarning,
            stacklevel=stacklevel,
        )


def check_theta0(theta0: Any, *, allow_complex: bool = False, entry: str | None = None) -> jnp.ndarray:
    """Return ``theta0`` as a 1-D JAX float array, or raise naming the fix.

    With ``entry`` (the name of the public function called), single precision is warned about.
    """
    array = jnp.asarray(theta0)
    kinds = (jnp.floating, jnp.complexfloating) if allow_complex else (jnp.floating,)
    if array.ndim != 1 or not any(jnp.issubdtype(array.dtype, kind) for kind in kinds):
        raise ValueError(
            f"theta0 must be a 1-D float array, got shape {array.shape} and dtype {array.dtype}; "
            "flatten a pytree of parameters with jax.flatten_util.ravel_pytree and cast it "
            "with jnp.asarray(theta0, dtype=jnp.float64)."
        )
    if entry is not None:
        warn_if_single_precision(array, entry, stacklevel=4)
    return array


def check_finite_scalar(name: str, value: Any, *, positive: bool = True) -> float:
    """Return a positive finite float, or raise naming ``name``."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a finite number, got {value!r}.") from None
    if not math.isfinite(number) or (positive and number <= 0.0):
        raise ValueError(f"{name} must be a positive finite number, got {name}={value!r}.")
    return number
