r"""The principal flow (PF) of Dherin, Qin, Rosca & Wu (2023).

Backward error analysis of GD keeps, at every order :math:`h^k`, the one term that
involves no derivative of :math:`E` beyond the Hessian: :math:`-\frac{h^k}{k+1}H^k\nabla E`.
Summed, these *principal terms* give

.. math:: \dot\theta = -\sum_{k\ge0}\frac{h^k}{k+1}H^k\nabla E
          = \frac{\log(I - hH)}{hH}\,\nabla E
          = \sum_i c(h\lambda_i)\,(\nabla E\cdot u_i)\,u_i,
   \qquad c(x) = \frac{\log(1-x)}{x}.

Along an eigenvector the component grows by :math:`e^{h\lambda c(h\lambda)} = 1 - h\lambda`
per time :math:`h`, exactly GD's factor, so the PF passes through every GD iterate on a
quadratic. For :math:`h\lambda > 1` the coefficient is complex, and the flow lives in
complex parameter space (the analytic continuation of :math:`E`).
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp

from gdflows._checks import check_lr, check_number, check_positive_int
from gdflows._exponential import DenseLinearPart, etdrk4, krylov_etd2
from gdflows.errors import NotHolomorphicError
from gdflows.flows._base import Flow, bind, first, flow_factory, parameter_flow, precision_checked
from gdflows.flows._loss_checks import check_holomorphic
from gdflows.spectral import eig, gradient_and_hvp_operator, hessian, krylov_apply

_SERIES_RADIUS = 1e-3  # below it, six series terms are exact to ~1e-19


def _complex(x) -> jax.Array:
    x = jnp.asarray(x)
    if jnp.issubdtype(x.dtype, jnp.complexfloating):
        return x
    return jax.lax.complex(x, jnp.zeros_like(x))  # a +0 imaginary part, never -0


def _log_one_minus(z: jax.Array, floor: float = 0.0, branch: str = "shifted") -> jax.Array:
    r""":math:`\log(1 - z)` with the cut moved off the real axis.

    The principal logarithm has its cut on :math:`z > 1`, exactly where eigenvalues with
    :math:`h\lambda > 1` sit, so round-off in :math:`\operatorname{Im}z` would flip
    :math:`\operatorname{Im}\log(1-z)` between :math:`\pm\pi`. For :math:`\operatorname{Re}z > 1`
    we use :math:`\log(z - 1) + i\pi` instead: it equals the principal value on the real axis
    (approached from :math:`\operatorname{Im}z \le 0`) and is analytic around it, so the cut lies
    on the half-line :math:`\{1 + is : s > 0\}`. ``floor`` bounds :math:`|1 - z|` from below.
    ``branch="principal"`` keeps the principal logarithm and its cut on :math:`z > 1` (for comparison).
    """
    if floor > 0.0:
        z = jnp.where(jnp.abs(1.0 - z) < floor, 1.0 - floor, z)
    if branch == "principal":
        return jnp.log1p(-z)
    right = jnp.real(z) > 1.0
    return jnp.where(right, jnp.log(jnp.where(right, z - 1.0, 1.0)) + 1j * jnp.pi, jnp.log1p(-z))


def _coefficient(x, floor: float = 0.0, branch: str = "shifted", winding=None) -> jax.Array:
    r""":math:`c(x)` on ``branch``; with ``winding`` :math:`n` (shifted branch), :math:`(\log(1-x) + 2\pi in)/x`."""
    z = _complex(x)
    small = jnp.abs(z) < _SERIES_RADIUS
    safe = jnp.where(small, 0.5, z)
    direct = _log_one_minus(safe, floor, branch) / safe
    series = -(1.0 + z * (1 / 2 + z * (1 / 3 + z * (1 / 4 + z * (1 / 5 + z / 6)))))
    if floor == 0.0:  # c(1) = -inf, without a 0/0 in the imaginary part
        direct = jnp.where(z == 1.0, jnp.asarray(-jnp.inf, dtype=z.dtype), direct)
    c = jnp.where(small, series, direct)
    if winding is None:
        return c
    wound = winding != 0
    return c + jnp.where(wound, 2j * jnp.pi * winding / jnp.where(wound, z, 1.0), 0.0)


# A reference exactly pi away (an eigenvalue crossing h lambda = 1 on the real axis, where the
# two neighbouring branches are equally near) keeps the shifted branch: the tie is broken by this margin.
_TIE = 1e-6


class BranchReference(NamedTuple):
    r"""Where ``branch="continued"`` last chose the branch of :math:`\log(1 - h\lambda_i)`: the last step's end."""

    x_real: jax.Array  # (d,) Re of the eigenvalues h lambda_i there
    x_imag: jax.Array  # (d,) Im of the eigenvalues h lambda_i there
    log_imag: jax.Array  # (d,) Im of the continued log(1 - h lambda_i) there


def _windings(x: jax.Array, log: jax.Array, reference: BranchReference) -> jax.Array:
    r"""Integers :math:`n_i` that bring :math:`\log(1 - x_i) + 2\pi i n_i` nearest the reference's branch.

    ``log`` is the shifted-branch :math:`\log(1 - x_i)`. Each eigenvalue :math:`x_i` is matched
    with the nearest reference eigenvalue, and :math:`n_i` makes the imaginary part of the log
    nearest that eigenvalue's reference; at a tie (a gap of exactly :math:`\pi`) :math:`n_i = 0`.
    """
    x_ref = jax.lax.complex(reference.x_real, reference.x_imag)
    nearest = jnp.argmin(jnp.abs(x[:, None] - x_ref[None, :]), axis=1)
    gap = jnp.imag(log) - reference.log_imag[nearest]
    return -jnp.sign(gap) * jnp.floor((jnp.abs(gap) + jnp.pi - _TIE) / (2 * jnp.pi))


def pf_coefficient(x) -> jax.Array:
    r"""The PF's per-direction coefficient :math:`c(x) = \log(1 - x)/x`, as a complex array.

    * :math:`c(0) = -1` (the gradient flow); near 0 the series :math:`-\sum_k x^k/(k+1)` is used.
    * :math:`0 < x < 1`: real, below :math:`-1` (faster than gradient flow).
    * :math:`x = 1`: :math:`-\infty` (GD removes that component in one step).
    * :math:`x > 1`: :math:`\operatorname{Re}c = \log|1-x|/x`, :math:`\operatorname{Im}c = \pi/x`;
      :math:`\operatorname{Re}c` vanishes at :math:`x = 2` and is positive beyond (growth).
    * :math:`x < 0` (negative curvature): real and above :math:`-1`; growth rate
      :math:`x\,c(x) = \log(1 + |x|)`.

    For complex ``x`` the branch cut of :math:`\log(1-x)` is :math:`\{1 + is: s > 0\}`, which
    keeps :math:`c` analytic around the real axis (see ``_log_one_minus``).

    Example:
      >>> import math, gdflows as gf
      >>> float(gf.pf_coefficient(0.0).real)  # c(0) = -1: the gradient flow
      -1.0
      >>> c = complex(gf.pf_coefficient(3.0))  # log|1 - 3|/3 + i pi/3
      >>> math.isclose(c.real, math.log(2) / 3), math.isclose(c.imag, math.pi / 3)
      (True, True)
    """
    return _coefficient(x)


@flow_factory
def principal_flow(
    loss,
    *,
    lr: float,
    space: Literal["complex", "real"] = "complex",
    spectrum: Literal["auto", "dense", "krylov"] = "auto",
    krylov_dim: int = 32,
    krylov_tol: float | None = None,
    branch: Literal["shifted", "continued", "principal"] = "shifted",
) -> Flow:
    r"""The principal flow :math:`\dot\theta = \frac{\log(I - hH)}{hH}\nabla E`, from a dense or a Krylov spectrum.

    Args:
      loss: the loss :math:`E(\theta)`; for ``space="complex"`` it must be holomorphic
        (checked by :func:`check_holomorphic` the first time the flow's ``init`` is called on
        concrete parameters).
      lr: the learning rate :math:`h` of the GD being modelled.
      args: extra arguments of the loss, ``loss(theta, *args)`` (e.g. a batch), held fixed.
      space: ``"complex"`` integrates the PF on complex parameters :math:`z`, with the
        holomorphic gradient and Hessian of the continued loss and an eigendecomposition of the
        complex-symmetric :math:`H(z)`; the state is the pair :math:`(\operatorname{Re}z,
        \operatorname{Im}z)` and ``position`` returns :math:`\operatorname{Re}z`. ``"real"`` is the
        real-part PF :math:`\dot\theta = \sum_i \operatorname{Re}c(h\lambda_i)(\nabla E\cdot u_i)u_i`
        on real parameters, which needs no holomorphy.
      spectrum: ``"dense"`` (the reference: eigendecomposition of the full Hessian) or
        ``"krylov"`` (Lanczos on Hessian-vector products, below).
        ``"auto"`` (the default) takes the dense spectrum up to ``KRYLOV_ABOVE`` = 100 parameters and the Krylov
        one above (chosen when the field is traced, from the parameters' length): measured on 2
        shared cores (tanh MLP, real PF, float64, one jitted evaluation), dense and Krylov
        (:math:`m = 32`) cost 1.0 and 1.1 ms at 51 parameters, 826 and 3 ms at 201, 5.6 s and
        3.8 ms at 1,001, 31 s and 12 ms at 2,001. Above the crossover the field is then the
        Krylov approximation with ``krylov_dim``, not the dense reference.
      krylov_dim: the Krylov dimension :math:`m` for ``spectrum="krylov"`` (and ``"auto"``): the
        number of Lanczos steps per evaluation, or with ``krylov_tol`` the most.
      krylov_tol: None (the default) for exactly ``krylov_dim`` steps. Else each Lanczos run stops
        once its approximation has settled: when the change of :math:`c(hT_k)e_1` over the last four
        steps is at most ``krylov_tol`` times its norm (:func:`gdflows.spectral.settled`), so the
        dimension follows the spectrum: few steps where :math:`c(h\lambda)` is smooth on it, up to
        ``krylov_dim`` near :math:`h\lambda = 1`.
      branch: the branch of :math:`\log(1 - h\lambda)` for ``space="complex"``. ``"shifted"`` (the
        default) moves the cut off the real axis to :math:`\{1 + is: s > 0\}` (see
        :func:`pf_coefficient`); ``"principal"`` keeps the principal logarithm, whose cut is the
        real half-line :math:`h\lambda > 1`, so the sign of the round-off in
        :math:`\operatorname{Im}\lambda` picks the direction of rotation. Both give GD's iterates
        on a quadratic (:math:`e^{n\log z} = z^n` on any branch); ``"principal"`` is offered only
        to measure how much the choice matters off quadratics (figure F4). ``"continued"`` has no
        cut: it continues each :math:`\log(1 - h\lambda_i)` along the solve's path (below).

    At :math:`h\lambda = 1` the coefficient is :math:`-\infty`; the vector field bounds
    :math:`|1 - h\lambda|` below by the machine epsilon, so such a component shrinks by a factor
    :math:`\varepsilon` per time :math:`h` instead of vanishing (GD's 0, to round-off).
    The dense Hessian limits this to a few thousand parameters.

    ``branch="continued"`` (``spectrum="dense"`` only; ``"auto"`` means dense with it) carries a
    :class:`BranchReference` in the state, the third entry beside
    :math:`(\operatorname{Re}z, \operatorname{Im}z)`: the eigenvalues
    :math:`h\lambda_i` and the imaginary parts of their logs at the end of the last solver step.
    Its derivative is zero, so every stage of a step sees the step start's reference; the flow's
    ``after_step`` renews it at the step's end. At each evaluation, each eigenvalue is matched with
    the nearest reference eigenvalue and its log is the one of :math:`\log(1 - h\lambda_i) + 2\pi
    i n` (shifted branch, integer :math:`n`) nearest in imaginary part to that reference, so
    the vector field is continuous along the path wherever eigenvalues move by less than a half
    turn around :math:`h\lambda = 1` per step: an eigenvalue that winds around 1 carries its
    winding on, where a fixed cut would make the field jump and an adaptive solver stall. It
    starts on the shifted branch and agrees with it as long as no eigenvalue crosses the cut
    :math:`\{1 + is: s > 0\}`; on a quadratic the spectrum is fixed, so it gives GD's iterates.
    Its cost: one more Hessian and ``eig`` per solver step.

    ``spectrum="krylov"`` never forms :math:`H`: each evaluation runs ``krylov_dim`` steps of
    Lanczos with full reorthogonalisation on Hessian-vector products, started from
    :math:`\nabla E`, and returns :math:`\|\nabla E\|\,V_m^\top c(hT_m)e_1`
    (:func:`gdflows.spectral.krylov_apply`): ``krylov_dim`` products with :math:`H` and one
    gradient per evaluation, whatever the number of parameters. For ``space="real"`` the
    Lanczos process is the symmetric one and :math:`\operatorname{Re}c` is applied; for
    ``space="complex"`` it is the complex-symmetric Lanczos process (bilinear form
    :math:`a^\top b`, since :math:`H(z)^\top = H(z)`) and :math:`c` is applied through ``eig`` of
    the small tridiagonal :math:`T_m`. Both are exact when ``krylov_dim`` reaches the number of
    parameters; below that the error depends on how well a polynomial of degree
    :math:`m - 1` fits :math:`c(h\lambda)` on the spectrum (see the networks benchmark page).

    A loss that says it is not holomorphic (``loss.holomorphic is False``, as set by
    :func:`gdflows.models.flatten` for ReLU networks) is refused for ``space="complex"`` with
    :class:`~gdflows.NotHolomorphicError`; one that says it is (``loss.holomorphic is True``) is
    trusted, and :func:`check_holomorphic` is not run on it.

    Cost per evaluation: dense, one gradient plus a :math:`d \times d` Hessian (:math:`d`
    Hessian-vector products) and its eigendecomposition (``eigh``, or ``eig`` and a solve in
    complex space): :math:`O(d^3)`, seconds at :math:`d` in the thousands; krylov,
    one gradient and ``krylov_dim`` Hessian-vector products (each about two gradients) plus
    :math:`O(d\,m^2)` reorthogonalisation. A Dopri8 step takes 13 evaluations, and steps shrink
    where an eigenvalue crosses :math:`h\lambda = 1`, so on networks expect thousands of
    evaluations per GD step: use ``spectrum="krylov"``, ``space="real"``, and ``progress`` /
    ``max_wall_time`` of :func:`gdflows.solve` to watch and bound it. ``solve(..., solver="exponential")``
    integrates the linear part :math:`\log(I - hH)/h` exactly (ETDRK4 on the dense spectrum, ETD2RK by
    Lanczos on the Krylov one, three Lanczos runs per step): exact on quadratics in one step per GD
    step; on F7's network it spends fewer Hessian-vector products than the explicit solvers at equal
    accuracy, and it does not help where an eigenvalue of :math:`hH` crosses 1 within a step (the
    benchmarks page measures both).

    Example:
      On :math:`E = \tfrac a2\theta^2` the PF is linear, :math:`\dot\theta = \tfrac1h\log(1 - ha)\,\theta`,
      whose time-:math:`h` map is GD's factor :math:`1 - ha` (here :math:`a = 1`, :math:`h = 0.5`):

      >>> import math, jax.numpy as jnp, gdflows as gf
      >>> loss = lambda th: 0.5 * jnp.sum(th**2)
      >>> flow = gf.principal_flow(loss, lr=0.5, space="real")
      >>> velocity = flow.vector_field(0.0, flow.init(jnp.array([1.0])))
      >>> math.isclose(float(velocity[0]), math.log(0.5) / 0.5)
      True
      >>> complex_flow = gf.principal_flow(loss, lr=0.5)  # space="complex": state (Re z, Im z)
      >>> [float(part[0]) for part in complex_flow.init(jnp.array([1.0]))]
      [1.0, 0.0]
      >>> sol = gf.solve(flow, jnp.array([1.0]), steps=3)
      >>> [round(float(v), 9) for v in sol.theta[:, 0]]  # GD's iterates 0.5^n
      [1.0, 0.5, 0.25, 0.125]
    """
    h = check_lr(lr)
    if space not in ("complex", "real"):
        raise ValueError(f"space must be 'complex' or 'real', got space={space!r}.")
    if spectrum not in ("dense", "krylov", "auto"):
        raise ValueError(f"spectrum must be 'dense', 'krylov' or 'auto', got spectrum={spectrum!r}.")
    krylov_dim = check_positive_int("krylov_dim", krylov_dim)
    if krylov_tol is not None:
        krylov_tol = check_number("krylov_tol", krylov_tol, example="krylov_tol=1e-8")
    if branch not in ("shifted", "continued", "principal"):
        raise ValueError(f"branch must be 'shifted', 'continued' or 'principal', got branch={branch!r}.")
    if branch == "continued" and spectrum == "auto":
        spectrum = "dense"  # the continued branch tracks every eigenvalue of hH, which only the dense route forms
    if branch == "continued" and spectrum != "dense":
        raise ValueError(
            "branch='continued' needs spectrum='dense' (it tracks every eigenvalue of hH between solver steps, "
            "which the Krylov route does not form); use spectrum='dense', or branch='shifted' with spectrum='krylov'."
        )
    if branch != "shifted" and space != "complex":
        raise ValueError(
            f"branch={branch!r} applies to space='complex' only (the real-part PF uses Re c, the same on "
            "both branches); leave branch at its default for space='real'."
        )
    if space == "complex" and getattr(loss, "holomorphic", None) is False:
        raise NotHolomorphicError(
            "principal_flow(space='complex') needs a loss that is holomorphic in the parameters, and this "
            "loss is marked loss.holomorphic = False (flatten's test found a ReLU, abs or another kink, or "
            "the caller said so); use principal_flow(loss, lr=..., space='real') for the real-part PF on real "
            "parameters, or, if the loss is holomorphic after all, build it with flatten(..., holomorphic=True) "
            "or set loss.holomorphic = True (gdflows.check_holomorphic(loss, theta0) tests it)."
        )
    holomorphic = space == "complex"
    dense = bind(_dense_field, loss, jnp.asarray(h), holomorphic, branch)
    krylov = bind(_krylov_field, loss, jnp.asarray(h), holomorphic, krylov_dim, krylov_tol, branch)
    field = {"dense": dense, "krylov": krylov, "auto": bind(_auto_field, dense, krylov)}[spectrum]
    spectrum_at = {
        "dense": bind(_spectrum_at, loss, jnp.asarray(h), holomorphic),
        "auto": bind(_auto_spectrum_at, bind(_spectrum_at, loss, jnp.asarray(h), holomorphic)),
    }.get(spectrum)
    # solve(..., solver="exponential"): ETDRK4 on the dense route, ETD2 by Lanczos on the Krylov one
    exponential = bind(_exponential_method, loss, jnp.asarray(h), holomorphic, branch, spectrum, krylov_dim, krylov_tol)
    if not holomorphic:
        flow = parameter_flow("PF (real part)", loss, field, lr=h)
        return flow._replace(stall_spectrum=spectrum_at, exponential=exponential)

    # the holomorphy test runs once per flow, at its first concrete initial point, unless the loss
    # says it is holomorphic (loss.holomorphic = True: flatten tested it, or the caller knows)
    checked = [True] if getattr(loss, "holomorphic", None) is True else []

    def init(theta0):
        if not checked and not isinstance(theta0, jax.core.Tracer):
            check_holomorphic(loss, theta0)
            checked.append(True)
        return (theta0, jnp.zeros_like(theta0))

    name = {"shifted": "PF", "continued": "PF (continued log)", "principal": "PF (principal log)"}[branch]
    if branch == "continued":
        reference = bind(_reference, loss, jnp.asarray(h))

        def init_continued(theta0):
            z = init(theta0)
            return (*z, reference(z, None))

        return Flow(
            name=name,
            lr=h,
            loss=loss,
            init=precision_checked(name, init_continued),
            vector_field=bind(_continued_field, loss, jnp.asarray(h)),
            position=first,
            after_step=bind(_renew_reference, reference),
            stall_spectrum=spectrum_at,
        )
    return Flow(
        name=name,
        lr=h,
        loss=loss,
        init=precision_checked(name, init),
        vector_field=bind(_complex_field, field),
        position=first,
        stall_spectrum=spectrum_at,
        exponential=exponential,
    )


def _spectrum_at(loss, h, holomorphic: bool, state):
    r"""The eigenvalues :math:`h\lambda_i` of :math:`hH` at the state's point (``solve`` reports them at a stall)."""
    x = jax.lax.complex(state[0], state[1]) if holomorphic else state
    return h * jnp.linalg.eigvals(hessian(loss, x, holomorphic=holomorphic))


# spectrum="auto" uses the Krylov field above this many parameters (measurements in principal_flow's docstring)
KRYLOV_ABOVE = 100


def _auto_field(dense, krylov, x):
    return krylov(x) if x.shape[0] > KRYLOV_ABOVE else dense(x)


def _auto_spectrum_at(spectrum_at, state):
    """The stall report's spectrum where ``"auto"`` is dense; None above (no dense eigensolve of a network)."""
    position = state[0] if isinstance(state, tuple) else state
    return spectrum_at(state) if position.shape[-1] <= KRYLOV_ABOVE else None


def _complex_field(field, t, state):
    velocity = field(jax.lax.complex(*state))
    return (jnp.real(velocity), jnp.imag(velocity))


def _dense_field(loss, h, holomorphic: bool, branch: str, x):
    r""":math:`c(hH(x))\nabla E(x)` from the dense Hessian (see :func:`_dense_parts`)."""
    return _dense_parts(loss, h, holomorphic, branch, x)[0]


def _dense_parts(loss, h, holomorphic: bool, branch: str, x) -> tuple[jax.Array, DenseLinearPart]:
    r"""The field :math:`c(hH)\nabla E` at ``x`` and its linear part :math:`A = \log(I - hH)/h` there.

    ``eigh`` on real parameters (with :math:`\operatorname{Re}c` and :math:`\operatorname{Re}\log`),
    ``eig`` of the complex-symmetric :math:`H(z)` on complex ones (on ``branch``). The flow's
    ``exponential`` hook (``solve(..., solver="exponential")``).
    """
    grad = jax.grad(loss, holomorphic=holomorphic)
    eps = float(jnp.finfo(x.real.dtype).eps)
    H = hessian(loss, x, holomorphic=holomorphic)
    if not holomorphic:
        eigenvalues, vectors = jnp.linalg.eigh(H)
        coefficient = jnp.real(_coefficient(h * eigenvalues, eps))
        rates = jnp.real(_log_one_minus(h * eigenvalues, eps)) / h
        linear = DenseLinearPart(rates, vectors, vectors.T)
    else:
        eigenvalues, vectors = eig(H)
        coefficient = _coefficient(h * eigenvalues, eps, branch)
        rates = _log_one_minus(h * eigenvalues, eps, branch) / h
        linear = DenseLinearPart(rates, vectors, jnp.linalg.inv(vectors))
        # the field solves with V rather than multiplying by inv(V): equal to round-off, but a solve that creeps
        # along the fixed cut is sensitive to round-off, and this keeps the field's numbers as they always were
        return vectors @ (coefficient * jnp.linalg.solve(vectors, grad(x))), linear
    return linear.apply(lambda _: coefficient, grad(x)), linear


def _exponential_method(loss, h, holomorphic: bool, branch: str, spectrum: str, krylov_dim: int, krylov_tol, d: int):
    r"""The exponential integrator for ``d`` parameters: :func:`~gdflows._exponential.etdrk4` on the dense spectrum
    (the linear part from ``eigh``/``eig``), :func:`~gdflows._exponential.krylov_etd2` on the Krylov one."""
    if spectrum == "dense" or (spectrum == "auto" and d <= KRYLOV_ABOVE):
        return etdrk4(bind(_dense_parts, loss, h, holomorphic, branch))
    coefficient = bind(_pf_functions, h, holomorphic, branch, False)
    rate = bind(_pf_functions, h, holomorphic, branch, True)
    operator = bind(_gradient_and_operator, loss, holomorphic)
    symmetric = "complex" if holomorphic else "real"
    return krylov_etd2(operator, coefficient, rate, min(krylov_dim, d), symmetric, krylov_tol)


def _gradient_and_operator(loss, holomorphic: bool, x):
    return gradient_and_hvp_operator(loss, x, holomorphic=holomorphic)


def _pf_functions(h, holomorphic: bool, branch: str, rate: bool, lam):
    r"""Elementwise on eigenvalues :math:`\lambda` of :math:`H`: the PF's coefficient :math:`c(h\lambda)`, or with
    ``rate`` the linear part's :math:`\log(1 - h\lambda)/h` (real parts for the real-part PF; :math:`|1 - h\lambda|`
    floored at the machine epsilon)."""
    eps = float(jnp.finfo(jnp.real(lam).dtype).eps)
    value = _log_one_minus(h * lam, eps, branch) / h if rate else _coefficient(h * lam, eps, branch)
    return value if holomorphic else jnp.real(value)


def _krylov_field(loss, h, holomorphic: bool, krylov_dim: int, krylov_tol, branch: str, x):
    r""":math:`c(hH(x))\nabla E(x)` by Lanczos on Hessian-vector products (see :func:`principal_flow`)."""
    coefficient = bind(_pf_functions, h, holomorphic, branch, False)
    gradient, operator = gradient_and_hvp_operator(loss, x, holomorphic=holomorphic)
    m = min(krylov_dim, x.shape[0])
    symmetric = "complex" if holomorphic else "real"
    velocity = krylov_apply(operator, gradient, coefficient, m, symmetric=symmetric, tol=krylov_tol)
    return velocity if holomorphic else velocity.real


def _continued_log(loss, h, z, reference: BranchReference | None):
    r"""Eigenvalues :math:`h\lambda_i`, eigenvectors of :math:`H(z)` and the windings :math:`n_i` (0: no reference)."""
    eigenvalues, vectors = eig(hessian(loss, z, holomorphic=True))
    x = h * eigenvalues
    eps = float(jnp.finfo(z.real.dtype).eps)
    if reference is None:
        return x, vectors, jnp.zeros(x.shape, z.real.dtype), eps
    return x, vectors, _windings(x, _log_one_minus(x, eps), reference), eps


def _reference(loss, h, state, reference: BranchReference | None) -> BranchReference:
    """The branch reference at ``state = (Re z, Im z, ...)``, continued from ``reference`` (None: shifted branch)."""
    x, _, winding, eps = _continued_log(loss, h, jax.lax.complex(state[0], state[1]), reference)
    log = _log_one_minus(x, eps) + 2j * jnp.pi * winding
    return BranchReference(jnp.real(x), jnp.imag(x), jnp.imag(log))


def _renew_reference(reference, state):
    return (state[0], state[1], reference(state, state[2]))


def _continued_field(loss, h, t, state):
    r""":math:`c(hH(z))\nabla E(z)` with each :math:`\log(1 - h\lambda_i)` continued from the state's reference."""
    z = jax.lax.complex(state[0], state[1])
    x, vectors, winding, eps = _continued_log(loss, h, z, state[2])
    coefficient = _coefficient(x, eps, "shifted", winding)
    velocity = vectors @ (coefficient * jnp.linalg.solve(vectors, jax.grad(loss, holomorphic=True)(z)))
    return (jnp.real(velocity), jnp.imag(velocity), jax.tree.map(jnp.zeros_like, state[2]))
