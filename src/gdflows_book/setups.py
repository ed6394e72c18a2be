r"""The experiment set-ups that several notebooks (and benchmarks) share, written once.

* :func:`digits_network`: the network of F6 and its successors, a ``flax.nnx`` MLP
  :math:`64 \to w_1 \to \dots \to 10` on standardised digits with the mean-squared error,
  flattened to ``loss(theta)``. :data:`DIGITS_NETWORK` is its paper size, :data:`SMOKE_NETWORK`
  its smoke size (also the paper size of F7).
* :func:`diagonal_quadratic`: the quadratic :math:`E(\theta) = \theta^\top \mathrm{diag}(c)\,\theta`
  of F1 and F2 (Hessian :math:`2\,\mathrm{diag}(c)`).
* :func:`flow_lineup` and :func:`run_lineup`: the flows compared with GD, by their names
  (the keys of :data:`gdflows_book.figures.FLOW_STYLE`), and GD with each of them run from one
  start.

Each set-up takes the notebook's parameters as arguments; nothing here reads a global or a
file outside the library's offline data.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

import gdflows as gf
from gdflows.data import Dataset, load
from gdflows.models import MLP, FlatModel, flatten

__all__ = [
    "DIGITS_NETWORK",
    "FLOW_NAMES",
    "SMOKE_NETWORK",
    "DigitsNetwork",
    "Lineup",
    "diagonal_quadratic",
    "digits_network",
    "flow_lineup",
    "run_lineup",
]

#: The paper size of the F6 network (F6, F9, F11): 1,000 training digits, two hidden layers of 32.
DIGITS_NETWORK = {"n_train": 1000, "hidden": [32, 32]}
#: Its smoke size (F6, F9, F11 in smoke mode), which is also F7's paper size.
SMOKE_NETWORK = {"n_train": 200, "hidden": [16, 16]}


class DigitsNetwork(NamedTuple):
    """The digits data and the MLP on them as a flat loss (:func:`digits_network`)."""

    data: Dataset  # the standardised digits split, one-hot targets, test labels
    net: FlatModel  # net.loss(theta), net.theta0, net.predict(theta, x), net.accuracy, net.size


def digits_network(
    n_train: int = DIGITS_NETWORK["n_train"],
    hidden: Sequence[int] = DIGITS_NETWORK["hidden"],
    *,
    activation: str = "tanh",
    seed: int = 0,
    loss: str = "mse",
) -> DigitsNetwork:
    r"""The F6 network: an MLP :math:`64 \to \text{hidden} \to 10` on ``n_train`` digits, flattened.

    :math:`E(\theta) = \frac1{2n}\sum_k \|f_\theta(x_k) - y_k\|^2` for ``loss="mse"`` (one-hot
    :math:`y_k`), on the first ``n_train`` of the standardised digits bundled with scikit-learn
    (the rest is the test set). The weights are drawn by ``flax.nnx`` from ``nnx.Rngs(seed)`` in
    float64, so the same ``seed`` gives the same :math:`\theta_0` (callers enable 64-bit mode).

    Args:
      n_train: training examples, 1 to 1,796.
      hidden: the hidden layers' widths.
      activation: ``"tanh"`` (holomorphic with the MSE, as the complex-space PF needs), or any
        activation :class:`gdflows.models.MLP` accepts.
      seed: the initialisation's PRNG seed.
      loss: ``"mse"`` or ``"cross_entropy"``.

    Returns:
      A :class:`DigitsNetwork` ``(data, net)``.
    """
    data = load("digits", n_train=n_train)
    model = MLP([data.x_train.shape[1], *hidden, data.classes], activation=activation, rngs=nnx.Rngs(seed))
    return DigitsNetwork(data, flatten(model, data.x_train, data.y_train, loss=loss))


def diagonal_quadratic(curvatures: Sequence[float]) -> Callable[[jax.Array], jax.Array]:
    r"""``loss(theta)`` for :math:`E(\theta) = \theta^\top \mathrm{diag}(c)\theta`, Hessian :math:`2\,\mathrm{diag}(c)`.

    F1 and F2 use :math:`c = (1, 0.01)`: GD at :math:`h` multiplies the component :math:`i` by
    :math:`1 - 2hc_i` per step, and the PF passes through the iterates exactly.
    """
    A = jnp.diag(jnp.asarray(curvatures))

    def loss(theta):
        return theta @ A @ theta

    return loss


#: The flows of the book's comparisons, in the order of the figures' legends.
FLOW_NAMES = ("PF", "PF (real part)", "NGF", "IGR", "MF3")

_FLOW_FACTORIES: dict[str, Callable[..., gf.Flow]] = {
    "PF": lambda loss, lr, pf: gf.principal_flow(loss, lr=lr, space="complex", **pf),
    "PF (real part)": lambda loss, lr, pf: gf.principal_flow(loss, lr=lr, space="real", **pf),
    "NGF": lambda loss, lr, pf: gf.gradient_flow(loss, lr=lr),
    "IGR": lambda loss, lr, pf: gf.modified_flow(loss, lr=lr, order=1),
    "MF3": lambda loss, lr, pf: gf.modified_flow(loss, lr=lr, order=2),
}


def flow_lineup(loss, lr: float, names: Sequence[str] = FLOW_NAMES, **pf_options: Any) -> list[gf.Flow]:
    """The flows called ``names`` on ``loss`` at learning rate ``lr``, in that order.

    ``PF`` is the complex-space principal flow, ``PF (real part)`` its real part, ``NGF`` the
    gradient flow, ``IGR`` and ``MF3`` the modified flows of orders one and two. ``pf_options``
    (``spectrum``, ``krylov_dim``, ...) go to both principal flows. Each flow's ``name`` is its
    name here.
    """
    unknown = [name for name in names if name not in _FLOW_FACTORIES]
    if unknown:
        raise ValueError(f"names={list(names)!r}: unknown flows {unknown}; choose from {list(FLOW_NAMES)}.")
    return [_FLOW_FACTORIES[name](loss, lr, pf_options) for name in names]


class Lineup(NamedTuple):
    """GD and flows run from one start (:func:`run_lineup`)."""

    runs: dict[str, Any]  # "GD": a GDRun; each flow's name: its Solution, in the line-up's order
    seconds: dict[str, float]  # each flow's solve time, compilation included


def run_lineup(
    loss,
    theta0,
    *,
    lr: float,
    steps: int,
    names: Sequence[str] = FLOW_NAMES,
    pf_options: dict | None = None,
    label: str = "",
    **solve_options: Any,
) -> Lineup:
    """GD for ``steps`` steps from ``theta0``, and each flow of :func:`flow_lineup` solved to the same time.

    ``solve_options`` (``rtol``, ``atol``, ``saves_per_step``, ``max_steps``, ...) go to every
    :func:`gdflows.solve`. A flow that stops (a :class:`gdflows.DivergenceWarning`) does not stop
    the others: its warning is printed, after ``label`` and the flow's name, and its
    ``Solution`` says where it stopped.
    """
    runs: dict[str, Any] = {"GD": gf.gd(loss, theta0, lr=lr, steps=steps)}
    seconds: dict[str, float] = {}
    for flow in flow_lineup(loss, lr, names, **(pf_options or {})):
        tic = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", gf.DivergenceWarning)
            runs[flow.name] = gf.solve(flow, theta0, steps=steps, **solve_options)
        seconds[flow.name] = time.perf_counter() - tic
        for warning in caught:
            print(f"{label}{flow.name}: {warning.message}")
    return Lineup(runs, seconds)
