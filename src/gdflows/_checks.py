"""Argument checks shared by every public entry point.

Each check raises with a message that names the parameter, shows the value it
got and says how to fix it, so that a wrong call fails at the call site and not
deep inside a traced JAX computation.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gdflows.errors import PrecisionWarning


def _is_real_number(value: Any) -> bool:
    """A Python or NumPy real number, or a 0-d real JAX/NumPy array; never a bool or a string."""
    if isinstance(value, (bool, np.bool_, str, bytes)):
        return False
    if isinstance(value, (int, float, np.integer, np.floating)):
        return True
    shape, dtype = getattr(value, "shape", None), getattr(value, "dtype", None)
    return shape == () and dtype is not None and (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating))


def check_number(
    name: str, value: Any, *, minimum: float | None = 0.0, strict: bool = True, example: str = ""
) -> float:
    """Return ``value`` as a finite float, or raise naming ``name``, the value and the fix.

    The one rule for real numbers: an int, float or 0-d real array is accepted; a bool
    (``lr=True``), a string (``lr="0.5"``), ``None``, NaN and infinities are refused. With
    ``minimum`` the number must exceed it (``strict``) or reach it; ``minimum=None`` allows any
    finite number. ``example`` is a valid call shown in the message (``"lr=0.1"``).
    """
    if minimum is None:
        need = f"{name} must be a finite number"
    elif minimum == 0:
        need = f"{name} must be a {'positive finite number' if strict else 'finite number >= 0'}"
    else:
        need = f"{name} must be a finite number {'>' if strict else '>='} {minimum:g}"
    fix = f"; pass e.g. {example}." if example else "."
    if not _is_real_number(value):
        raise TypeError(
            f"{need} (bools and strings are refused), got {name}={value!r} of type {type(value).__name__}{fix}"
        )
    number = float(value)
    if not math.isfinite(number) or (minimum is not None and (number <= minimum if strict else number < minimum)):
        raise ValueError(f"{need}, got {name}={value!r}{fix}")
    return number


def check_integer(name: str, value: Any, *, minimum: int = 0, example: str = "") -> int:
    """Return ``value`` as an int ``>= minimum``, or raise naming ``name``, the value and the fix.

    A Python or NumPy integer (or a 0-d integer array) only: a bool (``steps=True``), a float
    (``max_steps=2.5``, also ``2.0``) or a string is refused.
    """
    need = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
    if minimum == 0:
        need = "a non-negative integer"
    fix = f"; pass e.g. {example}." if example else "."
    is_int = isinstance(value, (int, np.integer)) or (
        getattr(value, "shape", None) == () and np.issubdtype(getattr(value, "dtype", np.float64), np.integer)
    )
    if isinstance(value, (bool, np.bool_)) or not is_int:
        raise TypeError(f"{name} must be {need}, got {name}={value!r} of type {type(value).__name__}{fix}")
    if int(value) < minimum:
        raise ValueError(f"{name} must be {need}, got {name}={value!r}{fix}")
    return int(value)


def check_choice(name: str, value: Any, choices: tuple) -> Any:
    """Return ``value`` if it is one of ``choices``, else raise; a bool never matches the integers 0 and 1."""
    try:
        matched = not isinstance(value, (bool, np.bool_)) and value in choices
    except TypeError:  # e.g. an array: no truth value
        matched = False
    if not matched:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {name}={value!r}.")
    return value


def check_lr(lr: Any) -> float:
    """Return ``lr`` as a float, or raise if it is not a positive finite number (bools, strings refused)."""
    return check_number("lr", lr, example="lr=0.1")


def check_steps(steps: Any) -> int:
    """Return ``steps`` as an int, or raise if it is not a non-negative integer."""
    return check_integer("steps", steps, example="steps=100")


def check_positive_int(name: str, value: Any, *, example: str = "") -> int:
    """Return ``value`` as an int, or raise naming ``name`` if it is not a positive integer."""
    return check_integer(name, value, minimum=1, example=example or f"{name}=10")


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
    """Return ``theta0`` as a 1-D, non-empty, finite JAX float array, or raise naming the fix.

    With ``entry`` (the name of the public function called), single precision is warned about.
    """
    array = jnp.asarray(theta0)
    kinds = (jnp.floating, jnp.complexfloating) if allow_complex else (jnp.floating,)
    if array.ndim != 1 or not any(jnp.issubdtype(array.dtype, kind) for kind in kinds):
        raise ValueError(
            f"theta0 must be a 1-D float array, got shape {array.shape} and dtype {array.dtype}; cast it with "
            "jnp.asarray(theta0, dtype=jnp.float64) (gd, solve and the flows also take any pytree of float arrays; "
            "elsewhere flatten one with gdflows.ravel)."
        )
    if array.shape[0] == 0:
        raise ValueError("theta0 is empty (shape (0,)); pass at least one parameter.")
    if not isinstance(array, jax.core.Tracer) and not bool(jnp.all(jnp.isfinite(array))):
        bad = np.flatnonzero(~np.isfinite(np.asarray(array)))
        raise ValueError(
            f"theta0 has non-finite entries (NaN or inf at indices {bad[:10].tolist()}); pass finite parameters."
        )
    if entry is not None:
        warn_if_single_precision(array, entry, stacklevel=4)
    return array


def check_loss(loss: Any, theta0: jax.Array) -> None:
    """Raise unless ``loss`` is a function of ``theta0`` returning a real scalar (checked by tracing, not running)."""
    if not callable(loss):
        raise TypeError(
            f"loss must be a function theta -> scalar, got loss={loss!r}; pass e.g. loss=lambda t: jnp.sum(t**2)."
        )
    out = jax.eval_shape(loss, theta0)
    shape, dtype = getattr(out, "shape", None), getattr(out, "dtype", None)
    if shape != () or dtype is None or not jnp.issubdtype(dtype, jnp.floating):
        got = "a pytree" if shape is None else f"shape {shape} and dtype {dtype}"
        raise ValueError(
            f"loss must return a real scalar, got {got} "
            f"at theta0 of shape {theta0.shape}; reduce it, e.g. jnp.sum(...) or jnp.mean(...)."
        )
