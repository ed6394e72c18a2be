"""A diffrax solver that applies a flow's ``after_step`` to the state at the end of every step.

Some flows carry, beside the quantities they integrate, a piece of state that only records where
the solve has been (the principal flow's ``branch="continued"`` keeps the branch of
:math:`\\log(1 - h\\lambda)` chosen at the last step's end). Its derivative is zero, so every stage
of a Runge–Kutta step sees the value of the step's start; after the step, ``after_step`` brings it
up to date from the step's end point. A rejected step's end point is discarded with it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import diffrax


class AfterStep(diffrax.AbstractWrappedSolver):
    """``solver``, followed by ``update(y1)`` on the state at the end of every step it takes."""

    solver: diffrax.AbstractSolver
    update: Callable[[Any], Any]

    @property
    def term_structure(self):
        return self.solver.term_structure

    @property
    def interpolation_cls(self):  # pyright: ignore
        return self.solver.interpolation_cls

    @property
    def term_compatible_contr_kwargs(self):
        return self.solver.term_compatible_contr_kwargs

    def order(self, terms):
        return self.solver.order(terms)

    def strong_order(self, terms):
        return self.solver.strong_order(terms)

    def error_order(self, terms):
        return self.solver.error_order(terms)

    def init(self, terms, t0, t1, y0, args):
        return self.solver.init(terms, t0, t1, y0, args)

    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        y1, y_error, dense_info, solver_state, result = self.solver.step(
            terms, t0, t1, y0, args, solver_state, made_jump
        )
        y1 = self.update(y1)
        if "y1" in dense_info:  # so that a save at the step's end reads the updated state
            dense_info = dict(dense_info, y1=y1)
        return y1, y_error, dense_info, solver_state, result

    def func(self, terms, t0, y0, args):
        return self.solver.func(terms, t0, y0, args)
