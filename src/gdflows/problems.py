r"""Toy landscapes for the instability figures: two minima of different sharpness (Gaussian and quartic), and a strict
saddle.

Every loss here is a plain ``jnp`` function of a flat parameter vector built from
polynomials and ``exp`` only, so it is holomorphic and the complex-space principal flow
applies to it. A :class:`Landscape` carries the loss, its parameters and *initial guesses*
for its critical points; :meth:`Landscape.critical_points` refines each guess with
Newton's method on :math:`\nabla E = 0` and returns the point together with the Hessian
eigenvalues computed there by :func:`gdflows.hessian` — no curvature in this module is
typed in by hand.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gdflows._checks import check_number, check_positive_int
from gdflows.spectral import hessian


class CriticalPoint(NamedTuple):
    """A refined critical point of a loss."""

    kind: str  # "minimum", "saddle" or "maximum", from the signs of the eigenvalues
    point: np.ndarray  # (d,) the point, refined by Newton's method
    eigenvalues: np.ndarray  # (d,) Hessian eigenvalues there, ascending (eigvalsh of gdflows.hessian)
    gradient_norm: float  # |∇E| at the refined point
    guess: np.ndarray  # (d,) the initial guess Newton's method started from


class Landscape(NamedTuple):
    """A loss with named initial guesses for its critical points."""

    name: str  # short label
    loss: Callable[[jax.Array], jax.Array]  # E(theta), holomorphic
    guesses: dict  # name -> initial guess for Newton's method
    parameters: dict  # the constants the loss was built from

    def critical_points(self) -> dict[str, CriticalPoint]:
        """Refine every guess with :func:`find_critical_point`; keyed like ``guesses``."""
        return {key: find_critical_point(self.loss, guess) for key, guess in self.guesses.items()}


def find_critical_point(loss, guess, *, tol: float = 1e-14, max_iter: int = 60) -> CriticalPoint:
    r"""Refine ``guess`` to a critical point with Newton's method, :math:`x \leftarrow x - H(x)^{-1}\nabla E(x)`.

    Newton's method converges to whichever critical point (minimum, saddle or maximum) is
    nearest in its basin, so the guesses of a :class:`Landscape` are chosen close to the
    point they name. Iteration stops once the step is below ``tol`` (relative to
    :math:`1 + \|x\|`); ``gradient_norm`` reports what was reached.

    Returns:
      A :class:`CriticalPoint` with the Hessian eigenvalues ``jnp.linalg.eigvalsh(hessian(loss, x))``.

    Example:
      >>> import jax.numpy as jnp
      >>> from gdflows.problems import find_critical_point
      >>> found = find_critical_point(lambda x: (x[0] ** 2 - 1) ** 2, [0.8])  # E'' = 12x^2 - 4
      >>> found.kind, round(float(found.point[0]), 12), round(float(found.eigenvalues[0]), 9)
      ('minimum', 1.0, 8.0)
      >>> find_critical_point(lambda x: (x[0] ** 2 - 1) ** 2, [0.1]).kind
      'maximum'
    """
    tol = check_number("tol", tol, example="tol=1e-14")
    max_iter = check_positive_int("max_iter", max_iter, example="max_iter=60")
    grad = jax.jit(jax.grad(loss))
    hess = jax.jit(lambda x: hessian(loss, x))
    x0 = jnp.atleast_1d(jnp.asarray(guess, dtype=jnp.float64))
    if x0.ndim != 1 or not bool(jnp.all(jnp.isfinite(x0))):
        raise ValueError(f"guess must be a finite 1-D point, got {guess!r}.")
    x = x0
    for iteration in range(max_iter):
        step = jnp.linalg.solve(hess(x), grad(x))
        if not bool(jnp.all(jnp.isfinite(step))):
            raise ValueError(
                f"Newton's method from guess={np.asarray(x0).tolist()} met a singular or non-finite Hessian at "
                f"x={np.asarray(x).tolist()} (iteration {iteration}); the critical point there is degenerate or the "
                "loss is not finite. Start from another guess."
            )
        x = x - step
        if float(jnp.linalg.norm(step)) <= tol * (1.0 + float(jnp.linalg.norm(x))):
            break
    eigenvalues = np.asarray(jnp.linalg.eigvalsh(hess(x)))
    if np.all(eigenvalues > 0):
        kind = "minimum"
    elif np.all(eigenvalues < 0):
        kind = "maximum"
    else:
        kind = "saddle"
    return CriticalPoint(kind, np.asarray(x), eigenvalues, float(jnp.linalg.norm(grad(x))), np.asarray(x0))


def _gaussian(r2, amplitude, width):
    # amplitude * exp(-r^2 / (2 width^2)); r2 is a sum of squares (holomorphic, no abs)
    return amplitude * jnp.exp(-r2 / (2.0 * width**2))


def _two_minima_constants(
    confinement, wide_depth, wide_width, narrow_depth, narrow_width, narrow_centre
) -> tuple[float, ...]:
    """The constants of the two-minima landscapes, checked: widths positive, the rest finite."""
    return (
        check_number("confinement", confinement, minimum=None),
        check_number("wide_depth", wide_depth, minimum=None),
        check_number("wide_width", wide_width, example="wide_width=1.0"),
        check_number("narrow_depth", narrow_depth, minimum=None),
        check_number("narrow_width", narrow_width, example="narrow_width=0.15"),
        check_number("narrow_centre", narrow_centre, minimum=None),
    )


def two_minima_1d(
    *,
    confinement: float = 0.05,
    wide_depth: float = 1.0,
    wide_width: float = 1.0,
    narrow_depth: float = 0.3,
    narrow_width: float = 0.15,
    narrow_centre: float = 2.0,
) -> Landscape:
    r"""A 1-D loss with a wide minimum near 0 and a narrow, sharp one near ``narrow_centre``.

    .. math::
        E(x) = \tfrac{\kappa}{2}x^2 - A_w e^{-x^2/(2\sigma_w^2)} - A_s e^{-(x-\mu)^2/(2\sigma_s^2)}

    with :math:`\kappa` = ``confinement``, :math:`A_w, \sigma_w` = ``wide_depth, wide_width``,
    :math:`A_s, \sigma_s, \mu` = ``narrow_depth, narrow_width, narrow_centre``. The curvature
    of the narrow minimum is roughly :math:`A_s/\sigma_s^2` (about 12 with the defaults), the
    wide one's :math:`\kappa + A_w/\sigma_w^2` (about 1.05). Critical points (guesses): the wide
    minimum (0), the narrow minimum (:math:`\mu`) and the barrier between them
    (:math:`\mu - 1.5\sigma_s`), a local maximum.

    Example:
      >>> import gdflows.problems as gp
      >>> points = gp.two_minima_1d().critical_points()
      >>> {name: point.kind for name, point in sorted(points.items())}
      {'barrier': 'maximum', 'narrow': 'minimum', 'wide': 'minimum'}
      >>> round(float(points["narrow"].eigenvalues[0]), 1), round(float(points["wide"].eigenvalues[0]), 2)
      (12.2, 1.05)
    """
    kappa, aw, sw, a_s, ss, mu = _two_minima_constants(**locals())

    def loss(theta):
        x = theta[0]
        return 0.5 * kappa * x**2 - _gaussian(x**2, aw, sw) - _gaussian((x - mu) ** 2, a_s, ss)

    guesses = {"wide": [0.0], "narrow": [mu], "barrier": [mu - 1.5 * ss]}
    params = dict(confinement=kappa, wide_depth=aw, wide_width=sw, narrow_depth=a_s, narrow_width=ss, narrow_centre=mu)
    return Landscape("two minima (1-D)", loss, guesses, params)


def two_minima_2d(
    *,
    confinement: float = 0.05,
    wide_depth: float = 1.0,
    wide_width: float = 1.0,
    narrow_depth: float = 0.3,
    narrow_width: float = 0.15,
    narrow_centre: float = 2.0,
) -> Landscape:
    r"""The 2-D version of :func:`two_minima_1d`: radial Gaussians plus a weak quadratic bowl.

    .. math::
        E(x, y) = \tfrac{\kappa}{2}(x^2 + y^2) - A_w e^{-(x^2+y^2)/(2\sigma_w^2)}
                  - A_s e^{-((x-\mu)^2 + y^2)/(2\sigma_s^2)}

    Critical points (guesses): the wide minimum (0, 0), the narrow minimum (:math:`\mu`, 0)
    and the saddle between their basins (:math:`\mu - 1.5\sigma_s`, 0), which is the 1-D
    barrier with an extra stable direction :math:`y`. Both Hessian eigenvalues of the narrow
    minimum are large, so GD with :math:`h\lambda > 2` is unstable there in every direction.

    Example:
      >>> import gdflows.problems as gp
      >>> points = gp.two_minima_2d().critical_points()
      >>> points["saddle"].kind, bool(min(points["narrow"].eigenvalues) > 10)
      ('saddle', True)
    """
    kappa, aw, sw, a_s, ss, mu = _two_minima_constants(**locals())

    def loss(theta):
        x, y = theta[0], theta[1]
        return 0.5 * kappa * (x**2 + y**2) - _gaussian(x**2 + y**2, aw, sw) - _gaussian((x - mu) ** 2 + y**2, a_s, ss)

    guesses = {"wide": [0.0, 0.0], "narrow": [mu, 0.0], "saddle": [mu - 1.5 * ss, 0.0]}
    params = dict(confinement=kappa, wide_depth=aw, wide_width=sw, narrow_depth=a_s, narrow_width=ss, narrow_centre=mu)
    return Landscape("two minima (2-D)", loss, guesses, params)


def quartic_two_minima(*, barrier: float = 1.0 / 9.0, scale: float = 9.0) -> Landscape:
    r"""A 1-D quartic with a wide minimum at 0, a barrier at ``barrier`` and a sharp minimum at 1.

    .. math::
        E(x) = s\left(\tfrac{x^4}{4} - (1 + b)\tfrac{x^3}{3} + b\tfrac{x^2}{2}\right),
        \qquad E'(x) = s\,x\,(x - b)(x - 1),

    with :math:`s` = ``scale`` and :math:`b` = ``barrier`` (:math:`0 < b < 1`). The curvatures are
    :math:`E''(0) = sb` (wide), :math:`E''(b) = -sb(1 - b)` (the barrier, a local maximum) and
    :math:`E''(1) = s(1 - b)` (sharp). The defaults give
    :math:`E(x) = 9(x^4/4 - (10/9)x^3/3 + x^2/18)`: :math:`\lambda_w = 1`, :math:`\lambda_s = 8`,
    barrier at :math:`1/9`. A polynomial, so its continuation to complex :math:`x` stays moderate
    (no :math:`e^{z^2}` growth off the real axis, unlike the Gaussians of :func:`two_minima_1d`).

    Example:
      >>> import gdflows.problems as gp
      >>> points = gp.quartic_two_minima().critical_points()
      >>> for name, p in points.items():
      ...     print(name, p.kind, round(float(p.point[0]), 12), round(float(p.eigenvalues[0]), 12))
      wide minimum 0.0 1.0
      barrier maximum 0.111111111111 -0.888888888889
      sharp minimum 1.0 8.0
    """
    b = check_number("barrier", barrier, example="barrier=0.1")
    s = check_number("scale", scale, example="scale=9.0")
    if not b < 1.0:
        raise ValueError(
            f"barrier must lie strictly between 0 and the sharp minimum at 1, got barrier={b}; pass e.g. barrier=0.1."
        )

    def loss(theta):
        x = theta[0]
        return s * (x**4 / 4.0 - (1.0 + b) * x**3 / 3.0 + b * x**2 / 2.0)

    guesses = {"wide": [0.0], "barrier": [b], "sharp": [1.0]}
    return Landscape("quartic two minima (1-D)", loss, guesses, dict(barrier=b, scale=s))


def saddle_2d(*, stable: float = 3.0, unstable: float = 2.0, quartic: float = 2.0) -> Landscape:
    r"""A strict saddle at the origin between two minima: a tilted double well.

    .. math::
        E(x, y) = \tfrac{a}{2}x^2 - \tfrac{b}{2}y^2 + \tfrac{c}{4}y^4

    with :math:`a` = ``stable``, :math:`b` = ``unstable``, :math:`c` = ``quartic``. The origin
    is a strict saddle with Hessian eigenvalues :math:`(-b, a)`; the minima sit at
    :math:`(0, \pm\sqrt{b/c})` with eigenvalues :math:`(a, 2b)`. The stable manifold of the
    saddle is the :math:`x` axis; GD started at :math:`(x_0, \varepsilon)` is pulled towards the
    saddle along :math:`x` and pushed away along :math:`y` at the rate :math:`1 + hb` per step.

    Example:
      >>> import gdflows.problems as gp
      >>> points = gp.saddle_2d(stable=3.0, unstable=2.0, quartic=2.0).critical_points()
      >>> [round(float(v), 9) for v in points["saddle"].eigenvalues]  # (-b, a)
      [-2.0, 3.0]
      >>> [round(float(v), 9) for v in points["minimum +"].eigenvalues]  # (a, 2b) at (0, sqrt(b/c))
      [3.0, 4.0]
    """
    a = check_number("stable", stable, minimum=None)
    b = check_number("unstable", unstable, example="unstable=2.0")
    c = check_number("quartic", quartic, example="quartic=2.0")

    def loss(theta):
        x, y = theta[0], theta[1]
        return 0.5 * a * x**2 - 0.5 * b * y**2 + 0.25 * c * y**4

    m = float(np.sqrt(b / c))
    guesses = {"saddle": [0.0, 0.0], "minimum +": [0.0, m], "minimum -": [0.0, -m]}
    return Landscape("strict saddle", loss, guesses, dict(stable=a, unstable=b, quartic=c))


def saddle_quadratic(*, stable: float = 1.0, unstable: float = 1.0) -> Landscape:
    r"""The pure saddle :math:`E(x, y) = \tfrac{a}{2}x^2 - \tfrac{b}{2}y^2`.

    Here :math:`a` = ``stable`` and :math:`b` = ``unstable``.

    GD is exactly :math:`x_n = (1 - ha)^n x_0`, :math:`y_n = (1 + hb)^n y_0`; the test bed of
    :func:`gdflows.analysis.escape_rate`.

    Example:
      >>> import jax.numpy as jnp, gdflows as gf, gdflows.problems as gp
      >>> run = gf.gd(gp.saddle_quadratic(stable=1.0, unstable=1.0).loss, jnp.array([1.0, 1e-3]), lr=0.5, steps=2)
      >>> [[round(float(v), 12) for v in theta] for theta in run.theta]  # x (1 - h)^n, y (1 + h)^n
      [[1.0, 0.001], [0.5, 0.0015], [0.25, 0.00225]]
    """
    a, b = check_number("stable", stable, minimum=None), check_number("unstable", unstable, minimum=None)

    def loss(theta):
        return 0.5 * a * theta[0] ** 2 - 0.5 * b * theta[1] ** 2

    return Landscape("quadratic saddle", loss, {"saddle": [0.0, 0.0]}, dict(stable=a, unstable=b))


# ----------------------------------------------------------------------------- manifolds of minimisers


class ManifoldProblem(NamedTuple):
    r"""A loss whose minimisers form a manifold :math:`\Gamma`, with its sharpness on :math:`\Gamma` in closed form."""

    name: str  # short label
    loss: Callable[[jax.Array], jax.Array]  # E(theta), smooth
    loss_min: float  # E_* = min E, attained on the whole manifold
    sharpness: Callable[[jax.Array], jax.Array]  # lambda_1(H) at a point of Gamma, in closed form
    start: np.ndarray  # (d,) a start off Gamma
    codim: int  # the codimension of Gamma: the Hessian's rank on it
    parameters: dict  # the constants the loss was built from


def valley_2d(*, start=(0.3, 1.0)) -> ManifoldProblem:
    r"""The valley :math:`E(x, y) = \tfrac12\lambda(y)x^2`, :math:`\lambda(y) = 1 + y^2`; :math:`\Gamma = \{x = 0\}`.

    On :math:`\Gamma` the Hessian is :math:`\mathrm{diag}(\lambda(y), 0)`, so :math:`\lambda_1 = 1 + y^2`
    and the sharpness-reducing flows move :math:`y` towards 0. Normalized GD settles into a 2-cycle
    :math:`x \in \{a, a - \eta\}` and drifts by :math:`-\tfrac{\eta^2}4\lambda'/\lambda` per step;
    GD on :math:`\sqrt E` by :math:`-\tfrac{\eta^2}8\lambda'` (the book page *Normalized GD and GD on √loss*).

    Example:
      >>> import jax.numpy as jnp, gdflows as gf, gdflows.problems as gp
      >>> p = gp.valley_2d()
      >>> float(p.sharpness(jnp.array([0.0, 2.0]))), float(gf.sharpness(p.loss, jnp.array([0.0, 2.0])))
      (5.0, 5.0)
    """

    def loss(theta):
        return 0.5 * (1 + theta[1] ** 2) * theta[0] ** 2

    def sharpness(theta):
        return 1 + theta[1] ** 2

    return ManifoldProblem("2-D valley", loss, 0.0, sharpness, np.asarray(start, dtype=float), 1, {})


def scalar_factorisation(*, start=(2.2, 0.3)) -> ManifoldProblem:
    r"""The scalar factorisation :math:`E(a, b) = \tfrac14(ab - 1)^2`: :math:`\Gamma = \{ab = 1\}`.

    On :math:`\Gamma` the Hessian is :math:`\tfrac12(b, a)(b, a)^\top`, so :math:`\lambda_1 = (a^2 + b^2)/2`,
    least at the balanced point :math:`a = b = 1` (or :math:`-1`), where both flows end.

    Example:
      >>> import jax.numpy as jnp, gdflows as gf, gdflows.problems as gp
      >>> p, x = gp.scalar_factorisation(), jnp.array([2.0, 0.5])
      >>> float(p.sharpness(x)), round(float(gf.sharpness(p.loss, x)), 12)
      (2.125, 2.125)
    """

    def loss(theta):
        return 0.25 * (theta[0] * theta[1] - 1) ** 2

    def sharpness(theta):
        return 0.5 * (theta[0] ** 2 + theta[1] ** 2)

    return ManifoldProblem("scalar factorisation", loss, 0.0, sharpness, np.asarray(start, dtype=float), 1, {})


def diagonal_network(*, features: int = 20, examples: int = 5, seed: int = 0, scale: float = 1.0) -> ManifoldProblem:
    r"""Regression with a diagonal linear network, :math:`E(u, v) = \tfrac1{2n}\|X(u\odot v) - y\|^2`.

    :math:`X` is :math:`n\times d` standard normal (``examples`` :math:`n` < ``features`` :math:`d`),
    :math:`y = Xw_*` with :math:`w_*` standard normal on its first :math:`n` coordinates and 0 elsewhere;
    :math:`\theta = (u, v)\in\mathbb R^{2d}`. Every interpolating :math:`w = u\odot v` is a minimiser,
    so :math:`\Gamma = \{X(u\odot v) = y\}` has dimension :math:`2d - n` where the Jacobian has full rank.
    With :math:`J = [\mathrm{diag}(v)\ \mathrm{diag}(u)]` the Hessian there is
    :math:`\tfrac1n J^\top X^\top XJ`, whose nonzero eigenvalues are those of
    :math:`\tfrac1n X\,\mathrm{diag}(u^2 + v^2)X^\top`: along :math:`\Gamma`, :math:`\lambda_1` falls as
    :math:`u^2 + v^2` does at fixed :math:`w` (balancing :math:`|u_i| = |v_i|`, where
    :math:`u_i^2 + v_i^2 = 2|w_i|`) and as :math:`w` moves within the interpolating set towards a smaller
    weighted :math:`\sum_i |w_i|\,x_i x_i^\top`. The start is :math:`u_0, v_0` standard normal times ``scale``.

    Example:
      >>> import jax.numpy as jnp, gdflows as gf, gdflows.problems as gp
      >>> p = gp.diagonal_network()
      >>> x = gf.flows.project_to_manifold(p.loss, jnp.asarray(p.start)).theta
      >>> abs(float(p.sharpness(x)) - float(gf.sharpness(p.loss, x))) < 1e-9
      True
    """
    d = check_positive_int("features", features, example="features=20")
    n = check_positive_int("examples", examples, example="examples=5")
    if n >= d:
        raise ValueError(
            f"examples must be fewer than features for a manifold of interpolating solutions, got "
            f"examples={n}, features={d}; e.g. features=20, examples=5."
        )
    keys = jax.random.split(jax.random.key(seed), 3)
    X = jax.random.normal(keys[0], (n, d), dtype=jnp.float64)
    w_star = jnp.zeros(d, dtype=jnp.float64).at[:n].set(jax.random.normal(keys[1], (n,), dtype=jnp.float64))
    y = X @ w_star
    start = check_number("scale", scale) * jax.random.normal(keys[2], (2 * d,), dtype=jnp.float64)

    def loss(theta):
        return 0.5 / n * jnp.sum((X @ (theta[:d] * theta[d:]) - y) ** 2)

    def sharpness(theta):
        weights = theta[:d] ** 2 + theta[d:] ** 2
        return jnp.linalg.eigvalsh((X * weights) @ X.T / n)[-1]

    parameters = dict(features=d, examples=n, seed=seed, scale=scale)
    return ManifoldProblem("diagonal linear network", loss, 0.0, sharpness, np.asarray(start), n, parameters)
