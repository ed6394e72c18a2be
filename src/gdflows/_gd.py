r"""Discrete gradient descent: the ground truth every flow is compared with.

GD with learning rate :math:`h` maps :math:`\theta_{n+1} = \theta_n - h\nabla E(\theta_n)`.
Step :math:`n` sits at time :math:`t_n = nh`, so a flow and GD are compared at the
same :math:`t`.

Parameters may be any pytree of float arrays and the loss may take extra arguments,
``loss(params, *args)``; both are ravelled into a flat loss of :math:`\theta` first
(:mod:`gdflows._pytree`), and the results carry the structure back (``run.params``).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.tree_util import Partial

from gdflows._checks import check_loss, check_lr, check_number, check_positive_int, check_steps, check_theta0
from gdflows._pytree import flat_problem
from gdflows._results import GDRun, GDScan, SharpnessRun
from gdflows.errors import DivergenceWarning

Loss = Callable[[jax.Array], jax.Array]


def _direction(rule, value, grad):
    """The step direction: :math:`\nabla E` for GD (``rule`` None), else ``rule(value, grad)``."""
    return grad if rule is None else rule(value, grad)


def _guarded_step(loss: Loss, lr: float, rule=None):
    """One GD step that freezes the iterate at the first non-finite loss or iterate.

    ``(theta, alive) -> ((theta_next, alive_next), loss)``, the loss recorded as ``inf``
    from the first non-finite value on; shared by :func:`gd_scan` and :func:`gd_with_sharpness`.
    ``rule`` (None for GD) maps ``(E, grad E)`` to the direction of the step (:func:`normalized_gd`,
    :func:`sqrt_loss_gd`).
    """
    value_and_grad = jax.value_and_grad(loss)

    def step(theta, alive):
        value, grad = value_and_grad(theta)
        new = theta - lr * _direction(rule, value, grad)
        ok = alive & jnp.isfinite(value) & jnp.all(jnp.isfinite(new))
        recorded = jnp.where(alive & jnp.isfinite(value), value, jnp.inf)
        return (jnp.where(ok, new, theta), ok), recorded

    return step


def _divergence_message(loss: Loss, theta_prev, lr: float, first_bad: int, rule=None) -> str:
    """Why GD stopped at step ``first_bad``: re-evaluates the last finite step (once, eagerly) to tell
    a non-finite start, a non-finite gradient, an overflowing step and a non-finite loss apart."""
    theta_prev = np.asarray(theta_prev)
    if first_bad == 0:
        bad = np.flatnonzero(~np.isfinite(theta_prev))
        if bad.size:
            return (
                f"theta0 has non-finite entries (at indices {bad[:10].tolist()}); GD did not start. "
                "Pass a finite theta0."
            )
        value, grad = jax.value_and_grad(loss)(jnp.asarray(theta_prev))
        if not np.isfinite(value):
            return (
                f"the loss is {float(value)} at theta0 (step 0): GD did not start. The loss function is not "
                "finite there; check it and theta0 (lowering lr cannot help)."
            )
        return "the gradient at theta0 has non-finite entries: GD did not start. Check the loss function's gradient."
    step = first_bad - 1
    value, grad = jax.value_and_grad(loss)(jnp.asarray(theta_prev))
    grad = np.asarray(grad)
    if not np.all(np.isfinite(grad)):
        return (
            f"GD with lr={lr}: the gradient at step {step} (t = {step * lr:.6g}) has non-finite entries "
            f"(at indices {np.flatnonzero(~np.isfinite(grad))[:10].tolist()}) although the loss there is "
            f"{float(value):.6g}; the loss's gradient is not finite at that point (lowering lr cannot help "
            "unless the run should not have got there)."
        )
    if not np.all(np.isfinite(theta_prev - lr * np.asarray(_direction(rule, value, jnp.asarray(grad))))):
        return (
            f"GD with lr={lr}: the iterate of step {first_bad} (t = {first_bad * lr:.6g}) overflowed "
            "(non-finite entries). Lower lr to stay stable."
        )
    return (
        f"GD with lr={lr} produced a non-finite loss at step {first_bad} (t = {first_bad * lr:.6g}). "
        "Lower lr to stay stable."
    )


def gd_scan(loss: Loss, theta0: jax.Array, lr: float, steps: int, rule=None) -> GDScan:
    """GD as one ``lax.scan``, jit- and vmap-friendly (``rule``: the step direction of a GD variant, see
    :func:`_guarded_step`; None for GD).

    Once a loss or iterate is non-finite the iterate stops moving, so a batch of
    runs can be vectorised even when some of them diverge.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> loss = lambda th: 0.5 * jnp.sum(th**2)
      >>> starts = jnp.array([[1.0], [2.0]])
      >>> jax.vmap(lambda th: gd_scan(loss, th, 0.5, 3).theta[-1, 0])(starts).tolist()  # 0.5^3 theta_0
      [0.125, 0.25]
      >>> int(gd_scan(loss, jnp.ones(1), 3.0, 2000).finite_steps)  # E = 4^n / 2 overflows float64 at n = 512
      512
    """
    guarded = _guarded_step(loss, lr, rule)

    def step(carry, _):
        theta, alive, count = carry
        (theta_next, ok), recorded = guarded(theta, alive)
        return (theta_next, ok, count + ok.astype(jnp.int32)), (theta, recorded)

    init = (theta0, jnp.array(True), jnp.array(0, jnp.int32))
    (last, alive, count), (thetas, losses) = jax.lax.scan(step, init, None, length=steps)
    final_loss = jnp.where(alive, loss(last), jnp.inf)
    thetas = jnp.concatenate([thetas, last[None]], axis=0)
    losses = jnp.concatenate([losses, final_loss[None]], axis=0)
    return GDScan(thetas, losses, count)


# filter_jit, not jit with a static loss: a loss that is a pytree (a Partial holding a batch, the
# flat loss of a pytree) is traced through its arrays, so a new batch of the same shape reuses the
# compilation; a plain function is static, keyed on its identity, as before.
_gd_scan_jit = eqx.filter_jit(gd_scan)


def gd(
    loss: Loss,
    theta0,
    *,
    lr: float,
    steps: int,
    args: tuple = (),
    sharpness_every: int | None = None,
    top: int = 1,
    krylov_dim: int = 32,
    seed: int = 0,
) -> GDRun | SharpnessRun:
    r"""Run gradient descent :math:`\theta_{n+1} = \theta_n - h\nabla E(\theta_n)`, tracking the sharpness if asked.

    Args:
      loss: pure function :math:`E` of the parameters, ``loss(params, *args)``, returning a real scalar.
      theta0: initial parameters: a 1-D float array, or any pytree of float arrays (an
        ``nnx.State``, nested dicts, tuples), ravelled internally.
      lr: learning rate :math:`h > 0`.
      steps: number of steps :math:`N \ge 0`.
      args: extra arguments of the loss (e.g. a batch), held fixed over the run.
      sharpness_every: track the top Hessian eigenvalues every ``k`` steps
        (:func:`gd_with_sharpness`, whose ``every`` it is); None (default) for plain GD.
      top, krylov_dim, seed: with ``sharpness_every`` only, as for :func:`gd_with_sharpness`.

    Returns:
      Without ``sharpness_every``: a :class:`~gdflows.GDRun` with ``theta[n]`` :math:`= \theta_n` and
      ``loss[n]`` :math:`= E(\theta_n)` at ``times[n]`` :math:`= nh`, and ``params`` the iterates in
      the structure of ``theta0``. A run whose loss or iterate becomes non-finite stops there:
      the arrays hold the finite part, ``stopped_at`` the time of the first non-finite value,
      and a :class:`DivergenceWarning` names the step. A divergence is data to plot, not
      an error. Float32 input draws a :class:`~gdflows.PrecisionWarning`.
      With ``sharpness_every``: the :class:`~gdflows.SharpnessRun` of :func:`gd_with_sharpness`.

    Example:
      >>> import jax.numpy as jnp
      >>> run = gd(lambda th: 0.5 * jnp.sum(th**2), jnp.ones(2), lr=0.5, steps=3)
      >>> [float(v) for v in run.theta[:, 0]]
      [1.0, 0.5, 0.25, 0.125]
      >>> run = gd(lambda p: 0.5 * jnp.sum(p["w"] ** 2) + p["b"] ** 2, {"w": jnp.ones(2), "b": jnp.array(1.0)},
      ...          lr=0.1, steps=20, sharpness_every=10)
      >>> [round(float(s), 9) for s in run.sharpness], run.final_params["w"].shape
      ([2.0, 2.0, 2.0], (2,))
    """
    return _run(loss, theta0, args, lr, steps, sharpness_every, top, krylov_dim, seed, None, "gd")


def _run(loss, theta0, args, lr, steps, sharpness_every, top, krylov_dim, seed, rule, entry: str):
    """:func:`gd` and its variants (``rule``: their step direction, None for GD; ``entry``: the function called)."""
    if sharpness_every is not None:
        return _sharpness_run(loss, theta0, args, lr, steps, sharpness_every, top, krylov_dim, seed, entry, rule)
    if (top, krylov_dim, seed) != (1, 32, 0):
        raise ValueError(
            f"top, krylov_dim and seed set the sharpness tracking, which is off (sharpness_every=None), got "
            f"top={top!r}, krylov_dim={krylov_dim!r}, seed={seed!r}; pass sharpness_every=k to track the top "
            "eigenvalues every k steps, or drop them."
        )
    lr = check_lr(lr)
    steps = check_steps(steps)
    loss, theta0, unravel = flat_problem(loss, theta0, args)
    theta0 = check_theta0(theta0, entry=entry)
    check_loss(loss, theta0)
    out = _gd_scan_jit(loss, theta0, jnp.asarray(lr), steps, rule)
    theta, losses = np.asarray(out.theta), np.asarray(out.loss)
    t = lr * np.arange(steps + 1)
    finite = np.isfinite(losses) & np.all(np.isfinite(theta), axis=1)
    if finite.all():
        return GDRun(t, theta, losses, unravel=unravel)
    first_bad = int(np.argmin(finite))
    warnings.warn(
        _divergence_message(loss, theta0 if first_bad == 0 else theta[first_bad - 1], lr, first_bad, rule)
        + (f" The trajectory of steps 0..{first_bad - 1} is returned." if first_bad else " Nothing is returned."),
        DivergenceWarning,
        stacklevel=3,
    )
    return GDRun(t[:first_bad], theta[:first_bad], losses[:first_bad], stopped_at=float(t[first_bad]), unravel=unravel)


def _gd_sharpness_scan(loss, theta0, lr, steps, every, top, krylov_dim, seed, rule=None):
    from gdflows.spectral import hvp_operator, lanczos_top

    guarded = _guarded_step(loss, lr, rule)
    probe = jax.random.normal(jax.random.key(seed), theta0.shape, dtype=theta0.dtype)
    probe = probe / jnp.linalg.norm(probe)

    def step(carry, _):
        return guarded(*carry)

    def spectrum(theta, previous):
        start = previous + 0.1 * probe  # warm start: the last top eigenvector, plus a fixed random part
        pairs = lanczos_top(hvp_operator(loss, theta), start, top, krylov_dim)
        return pairs.values, pairs.residuals, pairs.vectors[0]

    def block(carry, _):
        theta, alive, previous = carry
        values, residuals, vector = spectrum(theta, previous)
        (theta_next, alive), losses = jax.lax.scan(step, (theta, alive), None, length=every)
        return (theta_next, alive, vector), (losses, values, residuals, vector, theta)

    blocks = steps // every
    init = (theta0, jnp.array(True), probe)
    (theta, alive, previous), (losses, values, residuals, vectors, thetas) = jax.lax.scan(
        block, init, None, length=blocks
    )
    last_values, last_residuals, last_vector = spectrum(theta, previous)
    theta_tracked = theta
    (theta, alive), rest = jax.lax.scan(step, (theta, alive), None, length=steps - blocks * every)
    final_loss = jnp.where(alive, loss(theta), jnp.inf)
    losses = jnp.concatenate([losses.reshape(-1), rest, final_loss[None]])
    stack = lambda a, b: jnp.concatenate([a, b[None]], axis=0)  # noqa: E731
    return (
        losses,
        stack(values, last_values),
        stack(residuals, last_residuals),
        stack(vectors, last_vector),
        stack(thetas, theta_tracked),
        theta,
    )


def _rows(mask: np.ndarray, array: np.ndarray) -> np.ndarray:
    """``mask`` of shape (K,) broadcast over the trailing axes of ``array`` (K, ...)."""
    return mask.reshape(mask.shape + (1,) * (array.ndim - 1))


def _iterate(loss: Loss, thetas: np.ndarray, tracked: np.ndarray, lr: float, step: int, rule=None) -> np.ndarray:
    """GD's iterate at ``step``, replayed eagerly from the last tracked checkpoint at or before it."""
    block = int(np.searchsorted(tracked, step, side="right")) - 1
    theta = jnp.asarray(thetas[block])
    for _ in range(step - int(tracked[block])):
        value, grad = jax.value_and_grad(loss)(theta)
        theta = theta - lr * _direction(rule, value, grad)
    return np.asarray(theta)


_gd_sharpness_jit = eqx.filter_jit(_gd_sharpness_scan)  # the loss traced through its arrays, as _gd_scan_jit


def gd_with_sharpness(
    loss: Loss,
    theta0,
    *,
    lr: float,
    steps: int,
    every: int = 10,
    top: int = 1,
    krylov_dim: int = 32,
    seed: int = 0,
    args: tuple = (),
) -> SharpnessRun:
    r"""GD with the ``top`` largest Hessian eigenvalues computed every ``every`` steps, all in one jit.

    The whole run is one compiled ``lax.scan`` over blocks of ``every`` GD steps; at the start of
    each block, Lanczos with full reorthogonalisation (:func:`gdflows.spectral.lanczos_top`,
    ``krylov_dim`` Hessian-vector products, warm-started from the previous top eigenvector)
    gives the top eigenpairs. Tracked steps are :math:`0, k, 2k, \dots, \lfloor N/k\rfloor k`.

    :func:`gd` with ``sharpness_every=every`` calls this.

    Args:
      loss, theta0, lr, steps, args: as for :func:`gd` (``theta0`` any pytree of float arrays).
      every: track the spectrum every ``every`` steps (:math:`k`).
      top: number of eigenvalues tracked (at most ``krylov_dim``).
      krylov_dim: Lanczos steps per spectrum; check ``residuals`` (their size says whether it
        was enough).
      seed: seed of the random part of the start vector.

    Returns:
      A :class:`~gdflows.SharpnessRun`: the loss at every step; eigenvalues, residuals, top eigenvector
      (flat view) and parameters at the tracked steps (``params`` in the structure of ``theta0``). A
      run that becomes non-finite freezes there: ``stopped_at`` names the time, a
      :class:`DivergenceWarning` is issued, and every entry from that step on is NaN (the loss at
      every later step; eigenvalues, residuals, top vector and parameters at every later tracked
      step); ``final_theta`` is the last finite iterate.

    Example:
      >>> import jax.numpy as jnp
      >>> loss = lambda th: 0.5 * jnp.sum(jnp.array([3.0, 1.0]) * th**2)  # Hessian diag(3, 1)
      >>> run = gd_with_sharpness(loss, jnp.ones(2), lr=0.1, steps=4, every=2)
      >>> run.tracked_steps.tolist(), [round(float(s), 9) for s in run.sharpness]
      ([0, 2, 4], [3.0, 3.0, 3.0])
    """
    return _sharpness_run(loss, theta0, args, lr, steps, every, top, krylov_dim, seed, "gd_with_sharpness")


def _sharpness_run(loss, theta0, args, lr, steps, every, top, krylov_dim, seed, entry: str, rule=None) -> SharpnessRun:
    """:func:`gd_with_sharpness`, called by it and by :func:`gd` (``entry`` names the one the user called,
    and the name its tracking interval goes by there)."""
    lr = check_lr(lr)
    steps = check_steps(steps)
    loss, theta0, unravel = flat_problem(loss, theta0, args)
    theta0 = check_theta0(theta0, entry=entry)
    check_loss(loss, theta0)
    every = check_positive_int("every" if entry == "gd_with_sharpness" else "sharpness_every", every)
    krylov_dim = min(check_positive_int("krylov_dim", krylov_dim, example="krylov_dim=32"), theta0.shape[0])
    if check_positive_int("top", top, example="top=1") > krylov_dim:
        raise ValueError(f"top must be between 1 and krylov_dim={krylov_dim}, got top={top!r}.")
    out = _gd_sharpness_jit(loss, theta0, jnp.asarray(lr), steps, every, top, krylov_dim, seed, rule)
    losses, values, residuals, vectors, thetas, final = (np.asarray(a) for a in out)
    t = lr * np.arange(steps + 1)
    tracked = every * np.arange(values.shape[0])
    stopped = None
    if not np.all(np.isfinite(losses)):
        first_bad = int(np.argmin(np.isfinite(losses)))
        stopped = float(t[first_bad])
        previous = theta0 if first_bad == 0 else _iterate(loss, thetas, tracked, lr, first_bad - 1, rule)
        warnings.warn(
            _divergence_message(loss, previous, lr, first_bad, rule) + " The loss from there on, and the spectrum, "
            "top vector and parameters of every tracked step from there on, are NaN; final_theta is the last "
            "finite iterate.",
            DivergenceWarning,
            stacklevel=3 if entry == "gd_with_sharpness" else 4,
        )
        losses = np.where(np.arange(steps + 1) >= first_bad, np.nan, losses)
        lost = tracked >= first_bad  # tracked steps the run never reached: NaN, not the frozen iterate's
        values, residuals, vectors, thetas = (
            np.where(_rows(lost, a), np.nan, a) for a in (values, residuals, vectors, thetas)
        )
    return SharpnessRun(
        t, losses, tracked, values, residuals, vectors, thetas, final, krylov_dim + top, stopped, unravel=unravel
    )


# ----------------------------------------------------------------------------- GD variants


def _normalized_direction(eps, value, grad):
    norm = jnp.linalg.norm(grad)
    return jnp.where(norm > eps, grad / jnp.where(norm > eps, norm, 1.0), 0.0)


def _sqrt_direction(loss_min, value, grad):
    gap = value - loss_min
    return jnp.where(gap > 0, grad / (2 * jnp.sqrt(jnp.where(gap > 0, gap, 1.0))), 0.0)


def normalized_gd(
    loss: Loss,
    theta0,
    *,
    lr: float,
    steps: int,
    eps: float = 0.0,
    args: tuple = (),
    sharpness_every: int | None = None,
    top: int = 1,
    krylov_dim: int = 32,
    seed: int = 0,
) -> GDRun | SharpnessRun:
    r"""Normalized GD, :math:`\theta_{n+1} = \theta_n - \eta\,\nabla E(\theta_n)/\|\nabla E(\theta_n)\|`.

    Every step has length :math:`\eta`: it is GD with the effective learning rate
    :math:`\eta/\|\nabla E\|`, whose stability threshold :math:`\lambda_1 < 2\|\nabla E\|/\eta` falls
    as the run nears a minimum, so the run always ends at the edge of stability (Arora, Li & Panigrahi
    2022); :func:`gdflows.flows.normalized_gd_flow` is its limiting flow along the minimisers.

    Args:
      loss, theta0, steps, args: as for :func:`gd`.
      lr: the step length :math:`\eta > 0`.
      eps: the guard at a critical point: a step with :math:`\|\nabla E\| \le` ``eps`` leaves the
        iterate where it is (the normalized direction is undefined at :math:`\nabla E = 0`). The
        default 0 guards only an exact zero gradient, which a run at the edge of stability does not meet.
      sharpness_every, top, krylov_dim, seed: track the top Hessian eigenvalues of :math:`E`, as for :func:`gd`.

    Returns:
      As :func:`gd`: a :class:`~gdflows.GDRun` (``times[n]`` :math:`= n\eta`), or a
      :class:`~gdflows.SharpnessRun` with ``sharpness_every``; a non-finite value stops the run
      with a :class:`~gdflows.DivergenceWarning`.

    Example:
      >>> import jax.numpy as jnp
      >>> run = normalized_gd(lambda th: 0.5 * jnp.sum(th**2), jnp.array([1.0, 0.0]), lr=0.3, steps=5)
      >>> [round(float(v), 12) for v in run.theta[:, 0]]  # steps of 0.3, then the 2-cycle around 0
      [1.0, 0.7, 0.4, 0.1, -0.2, 0.1]
    """
    rule = Partial(_normalized_direction, jnp.asarray(check_number("eps", eps, minimum=0.0, strict=False)))
    return _run(loss, theta0, args, lr, steps, sharpness_every, top, krylov_dim, seed, rule, "normalized_gd")


def sqrt_loss_gd(
    loss: Loss,
    theta0,
    *,
    lr: float,
    steps: int,
    loss_min: float = 0.0,
    args: tuple = (),
    sharpness_every: int | None = None,
    top: int = 1,
    krylov_dim: int = 32,
    seed: int = 0,
) -> GDRun | SharpnessRun:
    r"""GD on :math:`\sqrt{E - E_*}`: :math:`\theta_{n+1} = \theta_n - \eta\,\nabla E/(2\sqrt{E - E_*})`.

    It is GD on :math:`E` with the effective learning rate :math:`\eta/(2\sqrt{E - E_*})`, whose
    stability threshold :math:`\lambda_1 < 4\sqrt{E - E_*}/\eta` falls as the loss does, so the run
    ends at the edge of stability (Arora, Li & Panigrahi 2022); :func:`gdflows.flows.sqrt_loss_flow`
    is its limiting flow along the minimisers.

    Args:
      loss, theta0, steps, args: as for :func:`gd`; ``loss`` is :math:`E` itself (not its root).
      lr: the learning rate :math:`\eta > 0` of GD on :math:`\sqrt{E - E_*}`.
      loss_min: :math:`E_* = \min E`, which must be known (0 for interpolating models). A step at a
        point with :math:`E \le E_*` leaves the iterate where it is (the root is not differentiable there).
      sharpness_every, top, krylov_dim, seed: track the top Hessian eigenvalues of :math:`E`, as for :func:`gd`.

    Returns:
      As :func:`gd` (``times[n]`` :math:`= n\eta`; ``loss`` is :math:`E`, not its root).

    Example:
      >>> import jax.numpy as jnp
      >>> run = sqrt_loss_gd(lambda th: th[0] ** 2, jnp.array([1.0]), lr=0.5, steps=4)  # sqrt E = |x|
      >>> [float(v) for v in run.theta[:, 0]]  # steps of 0.5 down |x|, then the 2-cycle
      [1.0, 0.5, 0.0, 0.0, 0.0]
    """
    rule = Partial(_sqrt_direction, jnp.asarray(check_number("loss_min", loss_min, minimum=None)))
    return _run(loss, theta0, args, lr, steps, sharpness_every, top, krylov_dim, seed, rule, "sqrt_loss_gd")
