r"""The typed results of the library's entry points: one type per entry point, every field named.

Shapes: :math:`N` GD steps, :math:`d` parameters, :math:`K` tracked steps, :math:`S` save times
(:math:`S = N + 1` unless ``saves_per_step > 1`` or the run stopped early).

Parameters given as a pytree come back in its structure: ``theta`` is always the flat view
``(..., d)``, ``params`` the same values as the user's pytree with the leading axes on every leaf
(``unravel`` holds the map; None for flat parameters, when ``params`` is ``theta``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import numpy as np

from gdflows._pytree import Unravel, structured


class GDRun(NamedTuple):
    """A GD run read at the times :math:`t_n = nh` (:func:`gdflows.gd`).

    If the loss or iterate became non-finite, the arrays stop at the last finite step and
    ``stopped_at`` is the time of the first non-finite one.
    """

    times: np.ndarray  # (N+1,) t_n = n h
    theta: np.ndarray  # (N+1, d) iterates theta_n
    loss: np.ndarray  # (N+1,) E(theta_n)
    stopped_at: float | None = None  # time of the first non-finite value; None if the run finished
    unravel: Unravel | None = None  # flat -> the parameters' pytree; None for flat parameters

    @property
    def diverged(self) -> bool:
        """Whether the run stopped at a non-finite value."""
        return self.stopped_at is not None

    @property
    def params(self):
        """The iterates in the parameters' structure, a leading axis N+1 on every leaf."""
        return structured(self.unravel, self.theta)

    @property
    def final_params(self):
        """The last iterate in the parameters' structure."""
        return structured(self.unravel, self.theta[-1])


class GDScan(NamedTuple):
    """Raw output of :func:`gdflows.gd_scan`: fixed-length arrays, safe under ``vmap``."""

    theta: jax.Array  # (N+1, d); frozen at the last finite iterate after a divergence
    loss: jax.Array  # (N+1,); +inf from the first non-finite step on
    finite_steps: jax.Array  # () number of steps completed with a finite loss and iterate


class SharpnessRun(NamedTuple):
    """A GD run with the top Hessian eigenvalues tracked every ``every`` steps (:func:`gdflows.gd` with
    ``sharpness_every``, :func:`gdflows.gd_with_sharpness`).

    If the run diverged (``stopped_at`` is set), every entry from the first non-finite step on is
    NaN: ``loss`` at that step and after, and ``eigenvalues``, ``residuals``, ``top_vector`` and
    ``theta`` at every tracked step at or after it (GD never reached a finite iterate there);
    ``final_theta`` is the last finite iterate. ``top_vector`` is in the flat view (an
    eigenvector of the Hessian with respect to ``theta``).
    """

    times: np.ndarray  # (N+1,) t_n = n h
    loss: np.ndarray  # (N+1,) loss at every step; NaN from the first non-finite one
    tracked_steps: np.ndarray  # (K,) the steps 0, every, 2 every, ... at which the spectrum was computed
    eigenvalues: np.ndarray  # (K, top) largest Hessian eigenvalues there, descending
    residuals: np.ndarray  # (K, top) Lanczos residuals ||H u - lambda u|| of those pairs
    top_vector: np.ndarray  # (K, d) unit eigenvector of the largest eigenvalue
    theta: np.ndarray  # (K, d) parameters at the tracked steps (the checkpoints)
    final_theta: np.ndarray  # (d,) parameters after the last step
    matvecs_per_track: int  # Hessian-vector products per spectrum (Lanczos steps + residuals)
    stopped_at: float | None = None  # time of the first non-finite value, if any
    unravel: Unravel | None = None  # flat -> the parameters' pytree; None for flat parameters

    @property
    def sharpness(self) -> np.ndarray:
        """The largest eigenvalue at each tracked step, shape ``(K,)``."""
        return self.eigenvalues[:, 0]

    @property
    def params(self):
        """The parameters at the tracked steps in their structure, a leading axis K on every leaf."""
        return structured(self.unravel, self.theta)

    @property
    def final_params(self):
        """The parameters after the last (finite) step, in their structure."""
        return structured(self.unravel, self.final_theta)


class SolverStats(NamedTuple):
    """What an integration cost."""

    accepted_steps: int  # steps taken (all of them for a fixed-step scheme)
    rejected_steps: int  # steps rejected by the error control (0 for a fixed-step scheme)
    vector_field_evaluations: int  # exact without rejected steps, else short by at most rejected_steps
    # accepted steps no longer than solve's dtmin: the controller keeps a step at that floor whatever its error
    # estimate, so these steps are not error-controlled (0 without a dtmin)
    floor_steps: int = 0


class Solution(NamedTuple):
    r"""A flow integrated by :func:`gdflows.solve`, read at its save times (GD's times :math:`t_n = nh`).

    If the flow blew up, left the region where the loss is finite or exhausted the solver's step
    budget, the arrays stop at the last finite save time, ``stopped_at`` is the first lost one and
    ``stop_reason`` says why. A solve stopped by its ``max_wall_time`` is cut at the last save
    time it reached, with ``stop_kind == "wall-time"``.
    """

    times: np.ndarray  # (S,) save times; GD's times are times[::saves_per_step]
    theta: np.ndarray  # (S, d) the flow's position (parameters) at those times
    loss: np.ndarray  # (S,) E(theta) there
    state: Any  # the flow's full state there: a pytree of arrays with leading axis S (e.g. (Re z, Im z))
    stats: SolverStats  # steps and vector-field evaluations the solve took
    solver: str  # the solver's name, e.g. "dopri8" or "euler"
    rtol: float | None  # relative tolerance of the step control; None for a fixed-step scheme
    atol: float | None  # absolute tolerance of the step control; None for a fixed-step scheme
    dt: float | None  # the fixed step h/m of "euler" or "rk4"; None for an adaptive solver
    stopped_at: float | None = None  # time of the first save time not reached; None if the solve finished
    stop_reason: str | None = None  # why it stopped (diffrax's message, or a non-finite state)
    unravel: Unravel | None = None  # flat -> the parameters' pytree; None for flat parameters
    # what stopped it: "non-finite" (state or loss), "blow-up" (a stall at an unbounded field),
    # "step-collapse" (a stall at a moderate field: a jump or a singularity), "budget" (max_steps
    # spent on ordinary steps), "wall-time" (max_wall_time spent); None if the solve finished
    stop_kind: str | None = None
    dtmin: float | None = None  # the adaptive solver's floor on its step (see solve); None: no floor

    @property
    def diverged(self) -> bool:
        """Whether the solve stopped before its last save time."""
        return self.stopped_at is not None

    @property
    def params(self):
        """The position at the save times in the parameters' structure, a leading axis S on every leaf."""
        return structured(self.unravel, self.theta)


class FlowScan(NamedTuple):
    """Raw output of :func:`gdflows.solve_scan`: fixed-length arrays, safe under ``jit`` and ``vmap``."""

    theta: jax.Array  # (S, d) positions at the save times; non-finite after a failure
    loss: jax.Array  # (S,) E(theta) there
    state: Any  # the flow's state there: a pytree of arrays with leading axis S
    successful: jax.Array  # () bool: whether diffrax reported success
    accepted_steps: jax.Array  # () int: steps taken
    rejected_steps: jax.Array  # () int: steps rejected by the error control
    result: Any  # diffrax's RESULTS code of the solve (its message says why a failed solve stopped)
    # () int: what stopped it, an index into gdflows.STOP_KINDS (None, "non-finite", "blow-up",
    # "step-collapse", "budget"); solve_scan(..., diagnose=False) tells only 0 (finished) from 1
    stop_kind: Any = None
    floor_steps: Any = 0  # () int: accepted steps no longer than solve_scan's dtmin (kept without error control)


class CentralInfo(NamedTuple):
    """What one evaluation of the central flow found (all arrays; batched over time in runs)."""

    eigenvalues: jax.Array  # (tracked,) top Hessian eigenvalues, descending
    vectors: jax.Array  # (d, tracked) their orthonormal eigenvectors; U is the first k columns
    X: jax.Array  # (k, k) Sigma = U X U^T, X PSD
    predicted_loss: jax.Array  # E + <U^T H U, X>/2 = E + tr(Sigma)/h at lambda = 2/h: GD's time-averaged loss
    sdcp_residual: jax.Array  # relative KKT residual of the SDCP solution
    sdcp_iterations: jax.Array  # projected-gradient iterations spent on it (0: closed form)
    eig_residual: jax.Array  # max_i |H u_i - lambda_i u_i| / |lambda_1|
    hvps: jax.Array  # Hessian-vector products spent on the eigenpairs and H U (a dense Hessian counts d)
    active: jax.Array  # rank of X: the directions whose constraint is active (oscillating at the edge)


class CentralRun(NamedTuple):
    r"""The central flow by forward Euler substeps (:func:`gdflows.central_flow_run`), at :math:`t_n = nh`."""

    times: np.ndarray  # (N+1,) t_n = n h
    theta: np.ndarray  # (N+1, d) the central flow's theta(t_n)
    loss: np.ndarray  # (N+1,) E(theta(t_n))
    diagnostics: CentralInfo  # CentralInfo batched over n < N (leading axis N), at the first substep of each step
    hvps: int  # Hessian-vector products spent on eigenpairs, in all
    third_derivative_products: int  # N * substeps * k(k+1)/2
    gradients: int  # N * substeps
    sdcp_residual_max: float  # worst relative KKT residual of the SDCP over the run
    eig_residual_max: float  # worst relative eigen-residual over the run
    substeps: int  # Euler substeps per GD step
    unravel: Unravel | None = None  # flat -> the parameters' pytree; None for flat parameters

    @property
    def params(self):
        """``theta`` in the parameters' structure, a leading axis N+1 on every leaf."""
        return structured(self.unravel, self.theta)


class Projection(NamedTuple):
    """A point projected onto the manifold of minimisers (:func:`gdflows.flows.project_to_manifold`)."""

    theta: jax.Array  # (d,) the projected point, Phi(theta)
    loss: jax.Array  # () E - E_* there: the residual of being on the manifold
    grad_norm: jax.Array  # () ||grad E|| there


class TrainRun(NamedTuple):
    r"""An optimiser run on a flat loss (:func:`gdflows.optim.train`), :math:`N` steps.

    A step whose new iterate is not finite ends the run: ``theta`` stays at the last finite
    iterate, the later losses are :math:`+\infty` and the later learning rates NaN.
    """

    theta: jax.Array  # (d,) the last finite iterate
    loss: jax.Array  # (N+1,) objective(theta_t), t = 0..N; +inf after a divergence
    learning_rate: jax.Array  # (N,) h_t of each step read from the optimiser state; NaN where the state has none
    evaluations: jax.Array  # (N // every,) evaluate(theta) after every `every` steps; empty without evaluate

    @property
    def diverged(self) -> bool:
        """Whether an iterate became non-finite."""
        return not bool(np.isfinite(np.asarray(self.loss[-1])))
