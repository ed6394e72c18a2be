r"""Measurements on trajectories: escape rates from a saddle, exit times, end-point basins.

These are small NumPy functions on the arrays a :class:`~gdflows.GDRun` or :class:`~gdflows.Solution`
(or a vmapped :func:`~gdflows.gd_scan` / :func:`~gdflows.solve_scan`) holds.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from gdflows._checks import check_number


class EscapeFit(NamedTuple):
    """A least-squares fit :math:`\\log d(t) \\approx \\log d_0 + r t` over the escape phase."""

    rate: float  # r, the fitted exponential rate per unit time
    log_prefactor: float  # log d_0
    points: int  # how many samples the fit used
    window: tuple[float, float]  # (first, last) time used
    max_residual: float  # largest |log d - fit| over the window


def escape_rate(t, distance, *, low: float, high: float) -> EscapeFit:
    r"""Fit the exponential escape rate :math:`r` of :math:`d(t) \approx d_0 e^{rt}` by least squares on :math:`\log d`.

    The escape phase is the run of samples *after* the closest approach (the minimum of
    ``distance``, so an initial approach along the stable manifold is skipped) with
    ``low <= distance <= high``: above ``low`` the stable component has died out, below ``high``
    the landscape is still its quadratic approximation. On the exact GD iterates of a quadratic
    saddle started on the unstable direction, :math:`d_n = (1 + h|\lambda|)^n d_0`, the fit returns
    :math:`r = \log(1 + h|\lambda|)/h` to round-off.

    Args:
      t: sample times, increasing.
      distance: distance from the saddle at those times (non-finite entries are ignored).
      low, high: the window of distances fitted.

    Raises:
      ValueError: if fewer than three samples fall in the window.

    Example:
      >>> import numpy as np
      >>> from gdflows.analysis import escape_rate
      >>> h, lam = 0.1, 2.0
      >>> t = h * np.arange(40)
      >>> fit = escape_rate(t, 1e-6 * (1 + h * lam) ** np.arange(40), low=1e-5, high=1e-2)
      >>> bool(np.isclose(fit.rate, np.log(1 + h * lam) / h)), fit.points
      (True, 27)
    """
    t = np.asarray(t, dtype=float)
    d = np.asarray(distance, dtype=float)
    if t.ndim != 1 or d.shape != t.shape:
        raise ValueError(
            f"escape_rate: t and distance must be 1-D of the same length, got shapes {t.shape} and {d.shape}."
        )
    low, high = check_number("low", low, example="low=1e-6"), check_number("high", high, example="high=1e-2")
    if low >= high:
        raise ValueError(f"escape_rate: low must be below high, got low={low:g} and high={high:g}.")
    finite = np.isfinite(d) & (d > 0)
    if not finite.any():
        raise ValueError("escape_rate: no finite positive distance to fit.")
    start = int(np.argmin(np.where(finite, d, np.inf)))
    after = np.arange(d.size) >= start
    window = after & finite & (d >= low) & (d <= high)
    if window.sum() < 3:
        raise ValueError(
            f"escape_rate: only {int(window.sum())} samples lie in [{low:g}, {high:g}] after the closest approach; "
            "widen the window or sample more finely."
        )
    tw, logd = t[window], np.log(d[window])
    design = np.stack([tw, np.ones_like(tw)], axis=1)
    (rate, intercept), *_ = np.linalg.lstsq(design, logd, rcond=None)
    residual = float(np.max(np.abs(design @ np.array([rate, intercept]) - logd)))
    return EscapeFit(float(rate), float(intercept), int(window.sum()), (float(tw[0]), float(tw[-1])), residual)


def exit_time(t, inside) -> float | None:
    """The first time at which ``inside`` (a boolean array over the samples) is False; None if never.

    Example:
      >>> from gdflows.analysis import exit_time
      >>> exit_time([0.0, 0.5, 1.0, 1.5], [True, True, False, True]), exit_time([0.0, 0.5], [True, True])
      (1.0, None)
    """
    inside = np.asarray(inside, dtype=bool)
    outside = np.flatnonzero(~inside)
    return float(np.asarray(t)[outside[0]]) if outside.size else None


def classify_endpoints(points, centres, radii, *, bound: float) -> np.ndarray:
    r"""Label end points by the minimum they settled in.

    Args:
      points: ``(..., d)`` end points (may hold NaN or inf).
      centres: ``(k, d)`` the minima.
      radii: ``(k,)`` capture radii: a point within ``radii[j]`` of ``centres[j]`` gets label ``j``.
      bound: points with a non-finite coordinate or :math:`\|x\|_\infty >` ``bound`` are *diverged*.

    Returns:
      Integer labels: ``j`` for minimum ``j``, ``k`` for "elsewhere" (finite but near no
      minimum: a cycle, or a flow that has not settled) and ``k + 1`` for "diverged".

    Example:
      >>> import numpy as np
      >>> from gdflows.analysis import classify_endpoints
      >>> points = [[0.01, 0.0], [2.0, 0.05], [1.0, 1.0], [np.nan, 0.0], [1e9, 0.0]]
      >>> classify_endpoints(points, centres=[[0.0, 0.0], [2.0, 0.0]], radii=[0.1, 0.1], bound=1e6).tolist()
      [0, 1, 2, 3, 3]
    """
    points = np.asarray(points, dtype=float)
    centres = np.asarray(centres, dtype=float)
    radii = np.asarray(radii, dtype=float)
    if centres.ndim != 2 or points.ndim < 1 or points.shape[-1] != centres.shape[1] or radii.shape != centres.shape[:1]:
        raise ValueError(
            f"classify_endpoints needs points (..., d), centres (k, d) and radii (k,), got shapes {points.shape}, "
            f"{centres.shape} and {radii.shape}."
        )
    bound = check_number("bound", bound, example="bound=1e3")
    k = centres.shape[0]
    labels = np.full(points.shape[:-1], k, dtype=int)
    for j in range(k - 1, -1, -1):
        near = np.linalg.norm(points - centres[j], axis=-1) <= radii[j]
        labels = np.where(near, j, labels)
    diverged = ~np.all(np.isfinite(points), axis=-1)
    with np.errstate(invalid="ignore"):
        diverged |= np.max(np.abs(np.nan_to_num(points, nan=np.inf)), axis=-1) > bound
    return np.where(diverged, k + 1, labels)
