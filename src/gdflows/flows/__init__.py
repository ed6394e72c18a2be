"""Continuous-time models of gradient descent, all with the face of :class:`Flow`."""

from gdflows.errors import EigenTrackingError, NotSmoothError, SDCPError
from gdflows.flows._base import Flow, parameter_flow
from gdflows.flows._loss_checks import check_holomorphic, check_smooth
from gdflows.flows.central import (
    CentralInfo,
    EigenOptions,
    SDCPOptions,
    central_diagnostics,
    central_flow,
    central_flow_run,
)
from gdflows.flows.gradient import gradient_flow
from gdflows.flows.manifold import normalized_gd_flow, project_to_manifold, sqrt_loss_flow
from gdflows.flows.modified import modified_flow
from gdflows.flows.principal import pf_coefficient, principal_flow
from gdflows.flows.rod import rod_ends, rod_flow, rod_length

__all__ = [
    "CentralInfo",
    "EigenOptions",
    "EigenTrackingError",
    "Flow",
    "NotSmoothError",
    "SDCPError",
    "SDCPOptions",
    "central_diagnostics",
    "central_flow",
    "central_flow_run",
    "check_smooth",
    "check_holomorphic",
    "gradient_flow",
    "modified_flow",
    "normalized_gd_flow",
    "parameter_flow",
    "pf_coefficient",
    "principal_flow",
    "project_to_manifold",
    "rod_ends",
    "rod_flow",
    "rod_length",
    "sqrt_loss_flow",
]
