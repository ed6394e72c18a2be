r"""Parameters as any pytree of arrays: ravelled into the flat vector the library works on, and back.

Every entry point (:func:`gdflows.gd`, :func:`gdflows.solve`, the flows, the spectra) runs on a
flat parameter vector :math:`\theta \in \mathbb{R}^d`. A user's parameters may be any pytree of
float arrays (an ``nnx.State``, nested dicts, tuples, 0-d leaves) and their loss may take extra
arguments, ``loss(params, *args)`` (a batch, as in optax's ``value_fn`` convention).
:func:`ravel` turns the parameters into :math:`\theta` and an :class:`Unravel` that maps
:math:`\theta` (or a trajectory of them) back; :func:`flat_loss` turns the loss into
:math:`E(\theta) = \text{loss}(\text{unravel}(\theta), *\text{args})`.

A 1-D float array with no ``args`` passes through untouched: the flat loss is the loss itself; so does a
list or tuple of Python numbers, read as the vector ``jnp.asarray`` makes of it (a list of arrays is a pytree).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.tree_util import Partial


@jax.tree_util.register_static
@dataclasses.dataclass(frozen=True)
class Unravel:
    """The map from a flat vector back to the parameters' pytree; hashable, and static under ``jit``.

    ``unravel(theta)`` splits the last axis of ``theta`` into the leaves (in ``jax.tree`` order),
    so a trajectory ``(T, d)`` comes back as the pytree with a leading axis ``T`` on every leaf.
    Each leaf gets its own dtype back, except that a complex ``theta`` keeps its imaginary part
    (a float32 leaf becomes complex64, a float64 one complex128): the complex principal flow
    evaluates the loss at complex parameters.
    """

    treedef: Any  # jax.tree_util.PyTreeDef of the parameters
    shapes: tuple[tuple[int, ...], ...]  # each leaf's shape
    dtypes: tuple[np.dtype, ...]  # each leaf's dtype

    @property
    def size(self) -> int:
        """The number of parameters :math:`d`."""
        return sum(math.prod(shape) for shape in self.shapes)

    def __call__(self, theta):
        """The pytree whose leaves are the slices of ``theta``'s last axis, reshaped (leading axes kept)."""
        lead = theta.shape[:-1]
        complex_theta = np.issubdtype(theta.dtype, np.complexfloating)
        leaves, start = [], 0
        for shape, dtype in zip(self.shapes, self.dtypes, strict=True):
            stop = start + math.prod(shape)
            if complex_theta:
                dtype = np.result_type(dtype, np.complex64)
            leaves.append(theta[..., start:stop].reshape(lead + shape).astype(dtype))
            start = stop
        return jax.tree.unflatten(self.treedef, leaves)


def _is_flat(params) -> bool:
    return isinstance(params, (jax.Array, np.ndarray)) and params.ndim == 1


def _numbers_as_vector(params):
    """A list or tuple of Python numbers is the vector ``jnp.asarray`` reads from it, as it always was
    (a notebook's parameter cell gives a start as ``[-0.35, -0.2]``); a list of arrays stays a pytree."""
    if (
        isinstance(params, (list, tuple))
        and params
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in params)
    ):
        return jnp.asarray(params, dtype=float)
    return params


def ravel(params) -> tuple[jax.Array, Unravel]:
    """``(theta, unravel)``: the leaves of ``params`` flattened and concatenated (their common dtype).

    Raises:
      ValueError: a leaf is not a float (or complex) array, e.g. an integer counter; the message
        names its path in the tree.
    """
    with_paths, treedef = jax.tree_util.tree_flatten_with_path(params)
    leaves = [jnp.asarray(leaf) for _, leaf in with_paths]
    for (path, _), leaf in zip(with_paths, leaves, strict=True):
        if not jnp.issubdtype(leaf.dtype, jnp.inexact):
            raise ValueError(
                f"parameters must be float arrays, got the leaf {jax.tree_util.keystr(path) or 'params'} of dtype "
                f"{leaf.dtype}; cast it (e.g. jnp.asarray(x, jnp.float64)) or keep it out of the parameters and "
                "pass it to the loss through args=."
            )
    unravel = Unravel(treedef, tuple(leaf.shape for leaf in leaves), tuple(leaf.dtype for leaf in leaves))
    if not leaves:
        return jnp.zeros(0), unravel
    dtype = jnp.result_type(*leaves)
    return jnp.concatenate([jnp.ravel(leaf).astype(dtype) for leaf in leaves]), unravel


def _with_args(loss, args, params):
    return loss(params, *args)


def _unravelled(loss, unravel, theta):
    return loss(unravel(theta))


def _marked(new, loss):
    """``new`` carrying the ``holomorphic`` mark of ``loss`` (set by :func:`gdflows.models.flatten`), if any."""
    if hasattr(loss, "holomorphic"):
        new.holomorphic = loss.holomorphic
    return new


def bind_args(loss: Callable, args: tuple) -> Callable:
    """``params -> loss(params, *args)``; ``loss`` itself when ``args`` is empty.

    A :class:`~jax.tree_util.Partial` of a module-level function, so the arrays in ``args`` are
    leaves: a compiled run is reused for a new batch of the same shape.
    """
    if not isinstance(args, tuple):
        raise TypeError(
            f"args must be a tuple of the loss's extra arguments, loss(params, *args), got args={args!r} of type "
            f"{type(args).__name__}; pass e.g. args=(batch,)."
        )
    return _marked(Partial(_with_args, loss, args), loss) if args else loss


@functools.lru_cache(maxsize=64)
def _unravelled_loss(loss, unravel: Unravel):
    # one object per (loss, structure), so caches keyed on the loss (jit's static arguments, the central
    # flow's compiled runs) hit again; not used with args, whose arrays it would keep alive
    return _marked(Partial(_unravelled, loss, unravel), loss)


def flat_problem(loss: Callable, params, args: tuple = ()) -> tuple[Callable, Any, Unravel | None]:
    r"""``(flat loss, theta, unravel)``: :math:`E(\theta) = \text{loss}(\text{unravel}(\theta), *\text{args})`.

    A 1-D array ``params`` with no ``args`` passes through untouched, with ``unravel`` None.
    """
    bound = bind_args(loss, args)
    params = _numbers_as_vector(params)
    if _is_flat(params):
        return bound, params, None
    theta, unravel = ravel(params)
    flat = _marked(Partial(_unravelled, bound, unravel), loss) if args else _unravelled_loss(loss, unravel)
    return flat, theta, unravel


def structured(unravel: Unravel | None, theta):
    """``theta`` (flat, with any leading axes) in the parameters' structure; ``theta`` itself without one."""
    return theta if unravel is None else unravel(theta)
