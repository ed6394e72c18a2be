r"""What a loss supports: the checks that refuse a loss a flow cannot use.

* :func:`check_holomorphic`: the complex-space principal flow evaluates the loss at complex
  parameters and needs its analytic continuation (a Cauchy–Riemann test near :math:`\theta_0`).
* :func:`check_smooth`: the central flow needs third derivatives, so no primitive with a
  discontinuous derivative (ReLU, ``abs``, ...) may appear in the loss (a test on its jaxpr).

Both raise an error from :mod:`gdflows.errors` that names the way out.
"""

from __future__ import annotations

import jax
import jax.extend.core as jax_core
import jax.numpy as jnp
import numpy as np

from gdflows.errors import NotHolomorphicError, NotSmoothError
from gdflows.spectral import _start_vector


def check_holomorphic(loss, theta0: jax.Array, *, rtol: float = 1e-6) -> None:
    r"""Raise :class:`NotHolomorphicError` unless ``loss`` passes a Cauchy–Riemann test near ``theta0``.

    At two complex points :math:`z = \theta_0 + s(a + ib)` (random probe directions
    :math:`a, b`, :math:`s = 10^{-2}(1 + \|\theta_0\|_\infty)`) a holomorphic :math:`E` has
    :math:`dE(z)[iu] = i\,dE(z)[u]` for every :math:`u`; this is checked with two ``jvp``\ s.
    Functions built from ``abs``, ``conj``, ``real``/``imag`` or real-only primitives fail it.
    A piecewise-holomorphic loss (ReLU, ``max``) would pass it wherever it is smooth, so the loss's
    jaxpr is read first (:func:`nonsmooth_primitives`) and such a loss is refused up front.

    Example:
      >>> import jax.numpy as jnp, gdflows as gf
      >>> gf.check_holomorphic(lambda th: jnp.sum(jnp.tanh(th) ** 2), jnp.ones(3))  # passes: returns None
      >>> gf.check_holomorphic(lambda th: jnp.sum(jnp.abs(th) ** 2), jnp.ones(3))
      Traceback (most recent call last):
      ...
      gdflows.errors.NotHolomorphicError: principal_flow(space='complex') needs a holomorphic loss, ...
    """
    theta0 = jnp.asarray(theta0)
    fix = (
        "use principal_flow(loss, lr=..., space='real') for the real-part PF on real parameters; if you know "
        "the loss is holomorphic, set loss.holomorphic = True (or flatten(..., holomorphic=True)), which "
        "principal_flow trusts without this test"
    )
    found = nonsmooth_primitives(loss, theta0)
    if found:  # piecewise losses pass the probe wherever they are smooth, so they are refused by their jaxpr
        raise NotHolomorphicError(
            f"principal_flow(space='complex') needs a holomorphic loss, but the loss uses {', '.join(found)} "
            f"(ReLU is max(x, 0)), which has no analytic continuation; {fix}, or a smooth activation (tanh, GELU)."
        )
    scale = 1e-2 * (1.0 + float(jnp.max(jnp.abs(theta0)))) if theta0.size else 1e-2
    for seed in (1, 2):
        a, b, u = _start_vector(theta0, seed), _start_vector(theta0, seed + 10), _start_vector(theta0, seed + 20)
        z = theta0 + scale * (a + 1j * b)
        try:
            value, along_u = jax.jvp(loss, (z,), (u.astype(z.dtype),))
            _, along_iu = jax.jvp(loss, (z,), (1j * u,))
        except Exception as error:  # the loss cannot even be evaluated at complex parameters
            raise NotHolomorphicError(
                f"principal_flow(space='complex') evaluates the loss at complex parameters, which failed "
                f"({type(error).__name__}: {error}); {fix}."
            ) from error
        if not jnp.issubdtype(jnp.asarray(value).dtype, jnp.complexfloating):
            raise NotHolomorphicError(
                "principal_flow(space='complex') needs a holomorphic loss, but this loss returns a real "
                f"value at complex parameters (it uses abs, real, conj or similar); {fix}."
            )
        mismatch = float(jnp.abs(along_iu - 1j * along_u))
        size = float(jnp.abs(along_u) + jnp.abs(value) + 1.0)
        if not np.isfinite(mismatch) or mismatch > rtol * size:
            raise NotHolomorphicError(
                "principal_flow(space='complex') needs a loss that is holomorphic in the parameters "
                f"(polynomials, exp, tanh, softplus, GELU networks with MSE); this one fails the "
                f"Cauchy-Riemann identity dE[iu] = i dE[u] by {mismatch:.3g} (relative {mismatch / size:.3g}) "
                f"near theta0; {fix}."
            )


# Elementwise primitives whose derivatives are discontinuous: a loss built from them (ReLU is
# ``max(x, 0)``) has no third derivative where the central flow needs one, and no analytic
# continuation for the complex PF. ``reduce_max`` (as in a stabilised log-sum-exp) is not listed:
# there it only shifts the argument.
_NONSMOOTH = frozenset({"max", "min", "abs", "sign", "floor", "ceil", "round", "clamp"})
# A function with its own derivative rule (``jax.custom_jvp``) is judged by its name, not by its
# body: JAX computes smooth functions such as softplus and logaddexp with a stabilising max and abs
# inside such a rule, while its ReLU is one too. These are the piecewise ones.
_PIECEWISE_CUSTOM = frozenset({"relu", "relu6"})
# A select on a comparison, ``where(x > 0, a, b)``, is piecewise too (leaky ReLU, ELU, hard tanh).
_COMPARISONS = frozenset({"gt", "lt", "ge", "le"})
_CUSTOM_CALLS = frozenset({"custom_jvp_call", "custom_vjp_call", "custom_vjp_call_jaxpr"})


def _subjaxprs(value):
    if isinstance(value, jax_core.ClosedJaxpr):
        yield value.jaxpr
    elif isinstance(value, jax_core.Jaxpr):
        yield value
    elif isinstance(value, (tuple, list)):
        for item in value:
            yield from _subjaxprs(item)


def _custom_name(eqn) -> str:
    call = eqn.params.get("call_jaxpr") or eqn.params.get("fun_jaxpr")
    info = getattr(getattr(call, "jaxpr", call), "debug_info", None)
    return getattr(info, "func_name", "") or ""


def _primitive_names(jaxpr) -> set[str]:
    """The primitives of ``jaxpr`` and its sub-jaxprs; a custom-derivative call counts by its name."""
    names = set()
    for eqn in jaxpr.eqns:
        if eqn.primitive.name in _CUSTOM_CALLS:
            names.add(_custom_name(eqn))
            continue
        names.add(eqn.primitive.name)
        for param in eqn.params.values():
            for sub in _subjaxprs(param):
                names |= _primitive_names(sub)
    return names


def nonsmooth_primitives(loss, theta0) -> list[str]:
    """What in ``loss`` (traced at ``theta0``) has jumping derivatives, sorted; empty if none.

    A syntactic test on the jaxpr: the primitives ``max``, ``min``, ``abs``, ``sign`` and rounding,
    a ``where`` on a comparison (leaky ReLU, ELU, hard tanh), and JAX's ReLU and ReLU6, which carry
    their own derivative rule. Other functions with their own rule (softplus, logaddexp) are trusted:
    JAX computes them with a stabilising ``max`` inside a smooth rule.
    """
    names = _primitive_names(jax.make_jaxpr(loss)(jnp.asarray(theta0)).jaxpr)
    found = names & (_NONSMOOTH | _PIECEWISE_CUSTOM)
    if "select_n" in names and names & _COMPARISONS:
        found.add("where on a comparison")
    return sorted(found)


def check_smooth(loss, theta0) -> None:
    r"""Raise :class:`NotSmoothError` if ``loss`` uses a primitive with a discontinuous derivative.

    The central flow differentiates the loss three times (:math:`\nabla^3E[u_i, u_j]`); for ReLU,
    ``abs``, elementwise ``max``/``min`` and rounding the third derivative is zero almost
    everywhere and infinite on the kinks, and the flow's :math:`\Sigma` is meaningless. The check
    reads the loss's jaxpr (a syntactic test: a smooth loss that happens to use ``max`` on
    constants is refused too; pass ``check_smoothness=False`` to the flow to skip it).
    """
    found = nonsmooth_primitives(loss, theta0)
    if found:
        raise NotSmoothError(
            f"central_flow needs third derivatives of the loss, but the loss uses {', '.join(found)} "
            "(ReLU is max(x, 0)), whose derivatives jump; use a smooth activation (tanh, GELU, swish, "
            "softplus), or the rod_flow, which needs gradients only."
        )
