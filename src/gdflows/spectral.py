r"""Curvature: Hessian-vector products, dense Hessians and their spectra.

Everything here works on a pure loss :math:`E` of a flat parameter vector.
Dense Hessians are built column block by column block from Hessian-vector
products, which needs far less temporary memory than ``jax.hessian`` on networks.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

Loss = Callable[[jax.Array], jax.Array]


def gradient(loss: Loss, *, holomorphic: bool = False) -> Callable[[jax.Array], jax.Array]:
    r""":math:`\nabla E`, or the complex derivative of the analytic continuation if ``holomorphic``."""
    return jax.grad(loss, holomorphic=holomorphic)


def hvp(loss: Loss, theta: jax.Array, v: jax.Array, *, holomorphic: bool = False) -> jax.Array:
    r"""Hessian-vector product :math:`H(\theta)v = \frac{d}{d\epsilon}\nabla E(\theta + \epsilon v)|_0`.

    Forward-over-reverse (``jvp`` of ``grad``): one gradient's cost, a few times over.
    """
    return jax.jvp(gradient(loss, holomorphic=holomorphic), (theta,), (v,))[1]


def hessian(loss: Loss, theta: jax.Array, *, holomorphic: bool = False, block: int = 256) -> jax.Array:
    r"""Dense Hessian :math:`H_{ij} = \partial_i\partial_j E(\theta)`, symmetrised.

    Columns are Hessian-vector products against basis vectors, ``block`` at a time.
    The exact Hessian is symmetric; the returned :math:`(H + H^\top)/2` removes the
    round-off asymmetry so that ``eigh`` sees a symmetric matrix.
    """
    d = theta.shape[0]
    basis = jnp.eye(d, dtype=theta.dtype)
    column = lambda e: hvp(loss, theta, e, holomorphic=holomorphic)  # noqa: E731
    columns = jax.lax.map(column, basis, batch_size=min(block, d))
    return 0.5 * (columns + columns.T)


def third_derivative_vv(loss: Loss, theta: jax.Array, v: jax.Array, *, holomorphic: bool = False) -> jax.Array:
    r"""The vector :math:`\nabla^3 E(\theta)[v, v] = \frac{d}{d\epsilon} H(\theta + \epsilon v)\,v\,|_0`."""
    return jax.jvp(lambda x: hvp(loss, x, v, holomorphic=holomorphic), (theta,), (v,))[1]


def sharpness(loss: Loss, theta: jax.Array) -> jax.Array:
    r"""Largest Hessian eigenvalue :math:`\lambda_{\max}(H(\theta))` from the dense spectrum."""
    return jnp.linalg.eigvalsh(hessian(loss, theta))[-1]
