r"""Two-player games: simultaneous and alternating GD, their flows, and the drift-cancelling regulariser.

A game has two players, :math:`\phi` (loss :math:`L_1`) and :math:`\theta` (loss :math:`L_2`), with
the fields :math:`f(\phi,\theta) = -\nabla_\phi L_1` and :math:`g(\phi,\theta) = -\nabla_\theta L_2`.
Each player may be any pytree of float arrays; the library works on the concatenated vector
:math:`z = (\phi, \theta)` (:func:`game` ravels them, :meth:`Game.split` maps back).

**Time convention.** One learning rate :math:`h` (the flows' ``lr``) and per-player factors
:math:`\alpha, \lambda`: a *step* (simultaneous) or *round* (alternating) sits at time
:math:`t_n = nh`, like every GD of the library, and the players' learning rates are :math:`\alpha h`
and :math:`\lambda h`. Simultaneous GD maps

.. math:: \phi \leftarrow \phi + \alpha h f(\phi,\theta), \qquad \theta \leftarrow \theta + \lambda h g(\phi,\theta);

an alternating round takes :math:`m` Euler steps of size :math:`\alpha h/m` in :math:`\phi`
(:math:`\theta` held), then :math:`k` steps of size :math:`\lambda h/k` in :math:`\theta` at the
updated :math:`\phi`. The flows are ODEs in :math:`t` on :math:`z`; the plain one is
:math:`\dot\phi = \alpha f`, :math:`\dot\theta = \lambda g` (:func:`game_flow`).

**Modified flows** (backward error analysis of the one-step maps; ``book/games.md`` has the
derivation). Write :math:`f_\phi = \partial f/\partial\phi` and so on. Simultaneous
(:func:`simultaneous_flow`):

.. math::
   \dot\phi = \alpha\big[f - \tfrac h2(\alpha f_\phi f + \lambda f_\theta g)\big],\qquad
   \dot\theta = \lambda\big[g - \tfrac h2(\alpha g_\phi f + \lambda g_\theta g)\big];

alternating, :math:`\phi` first (:func:`alternating_flow`):

.. math::
   \dot\phi = \alpha\big[f - \tfrac h2(\tfrac{\alpha}{m} f_\phi f + \lambda f_\theta g)\big],\qquad
   \dot\theta = \lambda\big[g - \tfrac h2(\tfrac{\lambda}{k} g_\theta g - \alpha g_\phi f)\big].

Their one-step error against the discrete map is :math:`O(h^3)`, the plain flow's :math:`O(h^2)`.
For :math:`\alpha = \lambda` they agree with the formulas of the authors' released code (Rosca et
al. 2021); for :math:`\alpha \ne \lambda` the interaction coefficients differ (there the released
form uses :math:`\alpha h/2` for :math:`\lambda h/2` in the :math:`\phi` equation and
:math:`(2\alpha/\lambda - 1)` for :math:`\alpha/\lambda` in the :math:`\theta` equation), and it is
:math:`O(h^2)` accurate only (``tests/test_games.py`` measures both). The drift terms are
Jacobian–vector products of the joint field :math:`F = (f, g)`: no Jacobian is formed.

**Regulariser** (:func:`drift_regularised`): the losses
:math:`L_1 + \tfrac{\lambda h}{4}\|\nabla_\theta L_2\|^2` and
:math:`L_2 + \tfrac{\alpha h}{4}\|\nabla_\phi L_1\|^2` cancel the interaction terms
:math:`-\tfrac{\lambda h}2 f_\theta g` and :math:`-\tfrac{\alpha h}2 g_\phi f` of the
simultaneous drift exactly when :math:`\nabla_\phi\nabla_\theta(L_1 + L_2) = 0` (zero-sum games,
up to terms of one player only), since then :math:`f_\theta g = -\tfrac12\nabla_\phi\|\nabla_\theta L_2\|^2`
and :math:`g_\phi f = -\tfrac12\nabla_\theta\|\nabla_\phi L_1\|^2`.

Reference: Rosca, Wu, Dherin & Barrett, "Discretization drift in two-player games", ICML 2021.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.tree_util import Partial

from gdflows._checks import check_lr, check_number, check_positive_int, check_steps, check_theta0
from gdflows._pytree import Unravel, ravel
from gdflows._results import GDRun
from gdflows.errors import DivergenceWarning
from gdflows.flows._base import Flow, bind, parameter_flow

__all__ = [
    "Game",
    "alternating_flow",
    "alternating_gd",
    "dirac_gan",
    "drift_regularised",
    "game",
    "game_flow",
    "linear_game",
    "simultaneous_flow",
    "simultaneous_gd",
]


@jax.tree_util.register_static
@dataclasses.dataclass(frozen=True)
class _Players:
    """How :math:`z` splits into the players: static under ``jit``."""

    unravel: Unravel  # z -> (phi, theta) pytrees
    d_phi: int  # the number of phi's parameters; z[:d_phi] is phi


def _joint_loss(loss, players: _Players, z):
    return loss(*players.unravel(z))


class Game(NamedTuple):
    r"""A two-player game on the concatenated parameters :math:`z = (\phi, \theta)`; build with :func:`game`.

    Attributes:
      loss1: :math:`L_1(z)`, the loss of the first player :math:`\phi`.
      loss2: :math:`L_2(z)`, the loss of the second player :math:`\theta`.
      z0: the players' starting parameters, ravelled and concatenated (1-D).
      players: how ``z`` splits (static).
    """

    loss1: Callable[[jax.Array], jax.Array]
    loss2: Callable[[jax.Array], jax.Array]
    z0: jax.Array
    players: _Players

    def split(self, z):
        """``(phi, theta)`` in the players' structures; ``z`` may carry leading axes (a trajectory)."""
        return self.players.unravel(jnp.asarray(z))

    def field(self, z) -> jax.Array:
        r"""The joint field :math:`F(z) = (f, g) = (-\nabla_\phi L_1, -\nabla_\theta L_2)`."""
        return _field(self.loss1, self.loss2, self.players, z)


def game(loss1: Callable, loss2: Callable, phi0, theta0) -> Game:
    r"""The game where :math:`\phi` minimises ``loss1(phi, theta)`` and :math:`\theta` minimises ``loss2(phi, theta)``.

    Args:
      loss1, loss2: real scalar functions of both players' parameters.
      phi0, theta0: starting parameters, each a 1-D float array or any pytree of float arrays.

    Returns:
      A :class:`Game`; ``game.z0`` is the start for :func:`simultaneous_gd`, :func:`alternating_gd`
      and :func:`gdflows.solve` of the flows built on it.

    Example:
      >>> import jax.numpy as jnp
      >>> G = game(lambda p, t: p[0] * t[0], lambda p, t: -p[0] * t[0], jnp.array([1.0]), jnp.array([2.0]))
      >>> [float(v) for v in G.field(G.z0)]  # f = -theta, g = phi
      [-2.0, 1.0]
    """
    for name, loss in (("loss1", loss1), ("loss2", loss2)):
        if not callable(loss):
            raise TypeError(f"{name} must be a function (phi, theta) -> scalar, got {name}={loss!r}.")
    z0, unravel = ravel((phi0, theta0))
    z0 = check_theta0(z0, entry="game")
    d_phi = int(ravel(phi0)[0].size)
    if d_phi == 0 or d_phi == z0.size:
        raise ValueError(
            f"both players need parameters, got {d_phi} for phi and {z0.size - d_phi} for theta; pass a non-empty "
            "phi0 and theta0."
        )
    players = _Players(unravel, d_phi)
    losses = [Partial(_joint_loss, loss, players) for loss in (loss1, loss2)]
    for name, loss in zip(("loss1", "loss2"), losses, strict=True):
        out = jax.eval_shape(loss, z0)
        if out.shape != () or not jnp.issubdtype(out.dtype, jnp.floating):
            raise ValueError(f"{name} must return a real scalar, got shape {out.shape} and dtype {out.dtype}.")
    return Game(losses[0], losses[1], z0, players)


def _field(loss1, loss2, players: _Players, z):
    d = players.d_phi
    phi, theta = z[:d], z[d:]
    f = -jax.grad(lambda p: loss1(jnp.concatenate([p, theta])))(phi)
    g = -jax.grad(lambda q: loss2(jnp.concatenate([phi, q])))(theta)
    return jnp.concatenate([f, g])


def _rates(players: _Players, z, alpha, lam):
    """The vector :math:`(\\alpha, \\dots, \\lambda, \\dots)` that scales each player's part of :math:`z`."""
    return jnp.where(jnp.arange(z.size) < players.d_phi, alpha, lam)


def _plain(loss1, loss2, players, alpha, lam, z):
    return _rates(players, z, alpha, lam) * _field(loss1, loss2, players, z)


def _simultaneous(loss1, loss2, players, alpha, lam, h, z):
    field = Partial(_field, loss1, loss2, players)
    rates = _rates(players, z, alpha, lam)
    F, JDF = jax.jvp(field, (z,), (rates * field(z),))  # (f_phi, f_theta; g_phi, g_theta) (alpha f, lambda g)
    return rates * (F - 0.5 * h * JDF)


def _alternating(loss1, loss2, players, alpha, lam, m, k, h, z):
    field = Partial(_field, loss1, loss2, players)
    F = field(z)
    is_phi = jnp.arange(z.size) < players.d_phi
    rates = jnp.where(is_phi, alpha, lam)
    # phi's drift: J (alpha f / m, lambda g); theta's: J (-alpha f, lambda g / k); each keeps its own rows
    _, J_phi = jax.jvp(field, (z,), (jnp.where(is_phi, alpha / m, lam) * F,))
    _, J_theta = jax.jvp(field, (z,), (jnp.where(is_phi, -alpha, lam / k) * F,))
    return rates * (F - 0.5 * h * jnp.where(is_phi, J_phi, J_theta))


def _check_game(G) -> Game:
    if not isinstance(G, Game):
        raise TypeError(
            f"expected a gdflows.games.Game, got {type(G).__name__}; build one with "
            "gdflows.games.game(loss1, loss2, phi0, theta0)."
        )
    return G


def _factors(alpha, lam):
    return (
        check_number("alpha", alpha, example="alpha=1.0 (phi's learning rate is alpha * lr)"),
        check_number("lam", lam, example="lam=1.0 (theta's learning rate is lam * lr)"),
    )


def game_flow(G: Game, *, lr: float, alpha: float = 1.0, lam: float = 1.0) -> Flow:
    r"""The plain flow :math:`\dot\phi = \alpha f`, :math:`\dot\theta = \lambda g`: the :math:`h \to 0` limit of GD.

    Args:
      G: the :class:`Game`.
      lr: :math:`h`; :func:`gdflows.solve` reads the flow at :math:`t_n = nh`.
      alpha, lam: the players' factors; their learning rates are :math:`\alpha h` and :math:`\lambda h`.

    The flow's ``loss`` is :math:`L_1` (what :func:`gdflows.solve` records as ``loss``), its state :math:`z`.
    """
    G = _check_game(G)
    h = check_lr(lr)
    alpha, lam = _factors(alpha, lam)
    field = bind(_plain, G.loss1, G.loss2, G.players, jnp.asarray(alpha), jnp.asarray(lam))
    return parameter_flow("game flow", G.loss1, field, lr=h)


def simultaneous_flow(G: Game, *, lr: float, alpha: float = 1.0, lam: float = 1.0) -> Flow:
    r"""The modified flow of simultaneous GD, :math:`O(h^3)` close to one step of it.

    .. math::
       \dot z = D\big[F - \tfrac h2 J_F(z)\, D F\big], \qquad D = \operatorname{diag}(\alpha I_\phi, \lambda I_\theta),

    that is :math:`\dot\phi = \alpha[f - \tfrac h2(\alpha f_\phi f + \lambda f_\theta g)]`,
    :math:`\dot\theta = \lambda[g - \tfrac h2(\alpha g_\phi f + \lambda g_\theta g)]`.
    Cost per evaluation: one Jacobian–vector product of the joint field (about three gradients).

    Args: as :func:`game_flow`.
    """
    G = _check_game(G)
    h = check_lr(lr)
    alpha, lam = _factors(alpha, lam)
    field = bind(_simultaneous, G.loss1, G.loss2, G.players, jnp.asarray(alpha), jnp.asarray(lam), jnp.asarray(h))
    return parameter_flow("simultaneous modified flow", G.loss1, field, lr=h)


def alternating_flow(G: Game, *, lr: float, alpha: float = 1.0, lam: float = 1.0, m: int = 1, k: int = 1) -> Flow:
    r"""The modified flow of alternating GD (:math:`m` steps of :math:`\phi`, then :math:`k` of :math:`\theta`).

    .. math::
       \dot\phi = \alpha\big[f - \tfrac h2(\tfrac{\alpha}{m} f_\phi f + \lambda f_\theta g)\big],\qquad
       \dot\theta = \lambda\big[g - \tfrac h2(\tfrac{\lambda}{k} g_\theta g - \alpha g_\phi f)\big].

    The sign of :math:`g_\phi f` is flipped against the simultaneous flow: :math:`\theta` moves after
    :math:`\phi` has, and sees its update. Cost per evaluation: two Jacobian–vector products.

    Args:
      G, lr, alpha, lam: as :func:`game_flow`.
      m, k: the updates of :math:`\phi` and :math:`\theta` per round (each of size :math:`\alpha h/m`,
        :math:`\lambda h/k`).
    """
    G = _check_game(G)
    h = check_lr(lr)
    alpha, lam = _factors(alpha, lam)
    m = check_positive_int("m", m, example="m=1 (phi's updates per round)")
    k = check_positive_int("k", k, example="k=1 (theta's updates per round)")
    field = bind(
        _alternating,
        G.loss1,
        G.loss2,
        G.players,
        jnp.asarray(alpha),
        jnp.asarray(lam),
        float(m),
        float(k),
        jnp.asarray(h),
    )
    return parameter_flow("alternating modified flow", G.loss1, field, lr=h)


def _sq_grad_other(own, other, players: _Players, coefficient, which: int, z):
    """``own(z) + coefficient * |grad of other w.r.t. the player `which` is not|^2``."""
    d = players.d_phi
    if which == 0:  # phi's loss penalises theta's gradient of L2
        grad = jax.grad(lambda q: other(jnp.concatenate([z[:d], q])))(z[d:])
    else:
        grad = jax.grad(lambda p: other(jnp.concatenate([p, z[d:]])))(z[:d])
    return own(z) + coefficient * jnp.sum(grad**2)


def drift_regularised(G: Game, *, lr: float, alpha: float = 1.0, lam: float = 1.0) -> Game:
    r"""The game with the losses :math:`L_1 + \tfrac{\lambda h}4\|\nabla_\theta L_2\|^2` and
    :math:`L_2 + \tfrac{\alpha h}4\|\nabla_\phi L_1\|^2`.

    Each player penalises the *other* player's gradient norm, with the other's learning rate over
    four. Simultaneous GD on it has no first-order interaction drift when
    :math:`\nabla_\phi\nabla_\theta(L_1+L_2) = 0` (zero-sum games; the linear game and the
    Dirac-GAN qualify); the self terms :math:`f_\phi f`, :math:`g_\theta g` remain.

    Args: ``lr``, ``alpha``, ``lam`` of the simultaneous GD it is run with.
    """
    G = _check_game(G)
    h = check_lr(lr)
    alpha, lam = _factors(alpha, lam)
    loss1 = Partial(_sq_grad_other, G.loss1, G.loss2, G.players, lam * h / 4, 0)
    loss2 = Partial(_sq_grad_other, G.loss2, G.loss1, G.players, alpha * h / 4, 1)
    return G._replace(loss1=loss1, loss2=loss2)


def _sim_step(loss1, loss2, players, alpha, lam, h, z):
    return z + h * _rates(players, z, alpha, lam) * _field(loss1, loss2, players, z)


def _alt_step(loss1, loss2, players, alpha, lam, m, k, h, z):
    d = players.d_phi

    def phi_step(p, _):
        theta = z[d:]
        return p - (alpha * h / m) * jax.grad(lambda q: loss1(jnp.concatenate([q, theta])))(p), None

    phi, _ = jax.lax.scan(phi_step, z[:d], None, length=m)

    def theta_step(t, _):
        return t - (lam * h / k) * jax.grad(lambda q: loss2(jnp.concatenate([phi, q])))(t), None

    theta, _ = jax.lax.scan(theta_step, z[d:], None, length=k)
    return jnp.concatenate([phi, theta])


@eqx.filter_jit
def _run(step, loss1, z0, steps_array):
    def body(z, _):
        new = step(z)
        return new, (new, loss1(new))

    _, (zs, losses) = jax.lax.scan(body, z0, steps_array)
    return jnp.concatenate([z0[None], zs]), jnp.concatenate([loss1(z0)[None], losses])


def _game_run(G: Game, step, steps: int, h: float, name: str) -> GDRun:
    zs, losses = _run(step, G.loss1, G.z0, jnp.zeros(steps))
    zs, losses = np.asarray(zs), np.asarray(losses)
    t = h * np.arange(steps + 1)
    finite = np.isfinite(losses) & np.all(np.isfinite(zs), axis=1)
    if finite.all():
        return GDRun(t, zs, losses, unravel=G.players.unravel)
    first = int(np.argmin(finite))
    warnings.warn(
        f"{name} with lr={h} became non-finite at step {first} (t = {t[first]:.6g}); steps 0..{first - 1} are "
        "returned. Lower lr (or alpha, lam) to stay stable.",
        DivergenceWarning,
        stacklevel=3,
    )
    return GDRun(t[:first], zs[:first], losses[:first], stopped_at=float(t[first]), unravel=G.players.unravel)


def simultaneous_gd(G: Game, *, lr: float, steps: int, alpha: float = 1.0, lam: float = 1.0) -> GDRun:
    r"""GD: :math:`\phi_{n+1} = \phi_n + \alpha h f(z_n)`, :math:`\theta_{n+1} = \theta_n + \lambda h g(z_n)`.

    Returns:
      A :class:`~gdflows.GDRun` at :math:`t_n = nh`: ``theta[n]`` is :math:`z_n = (\phi_n, \theta_n)`
      flat, ``loss[n]`` is :math:`L_1(z_n)`, ``params`` the pair of trajectories in the players'
      structures. A run that becomes non-finite stops there, with a :class:`~gdflows.DivergenceWarning`.

    Example:
      >>> import jax.numpy as jnp
      >>> G = game(lambda p, t: p[0] * t[0], lambda p, t: -p[0] * t[0], jnp.array([1.0]), jnp.array([0.0]))
      >>> run = simultaneous_gd(G, lr=0.5, steps=2)
      >>> [[float(v) for v in z] for z in run.theta]  # rotation by I + h R: the radius grows
      [[1.0, 0.0], [1.0, 0.5], [0.75, 1.0]]
    """
    G = _check_game(G)
    h = check_lr(lr)
    steps = check_steps(steps)
    alpha, lam = _factors(alpha, lam)
    step = Partial(_sim_step, G.loss1, G.loss2, G.players, jnp.asarray(alpha), jnp.asarray(lam), jnp.asarray(h))
    return _game_run(G, step, steps, h, "simultaneous GD")


def alternating_gd(
    G: Game, *, lr: float, steps: int, alpha: float = 1.0, lam: float = 1.0, m: int = 1, k: int = 1
) -> GDRun:
    r"""Alternating GD: per round, :math:`m` steps :math:`\phi \leftarrow \phi + \tfrac{\alpha h}{m} f(\phi, \theta_n)`,
    then :math:`k` steps :math:`\theta \leftarrow \theta + \tfrac{\lambda h}{k} g(\phi_{n+1}, \theta)`.

    One round is one step of the returned :class:`~gdflows.GDRun` (at :math:`t_n = nh`), as in
    :func:`simultaneous_gd`.
    """
    G = _check_game(G)
    h = check_lr(lr)
    steps = check_steps(steps)
    alpha, lam = _factors(alpha, lam)
    m = check_positive_int("m", m, example="m=1 (phi's updates per round)")
    k = check_positive_int("k", k, example="k=1 (theta's updates per round)")
    step = _AltStep(m, k)
    step = Partial(_alt_bound, step, G.loss1, G.loss2, G.players, jnp.asarray(alpha), jnp.asarray(lam), jnp.asarray(h))
    return _game_run(G, step, steps, h, "alternating GD")


@jax.tree_util.register_static
@dataclasses.dataclass(frozen=True)
class _AltStep:
    m: int  # phi's updates per round (static: a scan length)
    k: int  # theta's updates per round


def _alt_bound(counts: _AltStep, loss1, loss2, players, alpha, lam, h, z):
    return _alt_step(loss1, loss2, players, alpha, lam, counts.m, counts.k, h, z)


def _linear_loss1(eps1, phi, theta):
    return jnp.sum(0.5 * eps1 * phi**2 - phi * theta)


def _linear_loss2(eps2, phi, theta):
    return jnp.sum(phi * theta + 0.5 * eps2 * theta**2)


def linear_game(eps1: float, eps2: float, phi0, theta0) -> Game:
    r"""The linear game :math:`f = -\varepsilon_1\phi + \theta`, :math:`g = -\phi - \varepsilon_2\theta`.

    Losses :math:`L_1 = \tfrac{\varepsilon_1}2\phi^2 - \phi\theta`,
    :math:`L_2 = \phi\theta + \tfrac{\varepsilon_2}2\theta^2`
    (elementwise, summed, for vector players); the equilibrium is :math:`0`.
    """
    eps1 = check_number("eps1", eps1, minimum=None, example="eps1=0.2")
    eps2 = check_number("eps2", eps2, minimum=None, example="eps2=0.2")
    return game(
        Partial(_linear_loss1, jnp.asarray(eps1)),
        Partial(_linear_loss2, jnp.asarray(eps2)),
        jnp.asarray(phi0, float),
        jnp.asarray(theta0, float),
    )


def _dirac_loss1(phi, theta):
    return jnp.sum(jax.nn.softplus(phi * theta)) + jnp.log(2.0)


def _dirac_loss2(phi, theta):
    return -_dirac_loss1(phi, theta)


def dirac_gan(phi0=1.0, theta0=1.0) -> Game:
    r"""The Dirac-GAN: data at 0, generator a point mass at :math:`\theta`, discriminator :math:`D(x) = \phi x`.

    The discriminator's GAN loss is :math:`L_1 = -\log\sigma(D(0)) - \log(1 - \sigma(D(\theta)))
    = \ell(\phi\theta) + \log 2` with :math:`\ell(s) = \log(1 + e^s)`, :math:`\ell' = \sigma`; the
    generator plays the zero-sum :math:`L_2 = -L_1`. Fields :math:`f = -\sigma(\phi\theta)\theta`,
    :math:`g = \sigma(\phi\theta)\phi`; equilibrium :math:`(0, 0)`; the flow conserves
    :math:`\phi^2 + \theta^2` (it cycles).
    """
    return game(
        _dirac_loss1, _dirac_loss2, jnp.atleast_1d(jnp.asarray(phi0, float)), jnp.atleast_1d(jnp.asarray(theta0, float))
    )
