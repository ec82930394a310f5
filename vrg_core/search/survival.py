"""How an error made at σ reaches the final sample, and VRG's prediction-error term as it does."""

from __future__ import annotations

import numpy as np

from ..error_table import ErrorTable
from ..objective import as_schedule, cumulative_error
from ..parameterization import ModelKind


def error_survival(sigma: np.ndarray, kind: ModelKind, data_variance: float) -> np.ndarray:
    """Share of a squared error made at σ that reaches the final sample along the ODE.

    Exact for Gaussian data of per-dimension variance c²: x_σ = α·x0 + σ·n (α = 1, or
    1 − σ for flow models) is carried to x0 scaled by c/√(α²c² + σ²); so an error at a high
    σ is mostly undone by the remaining steps and one near σ = 0 is kept whole.
    """
    alpha = 1.0 - sigma if kind.is_flow else np.ones_like(sigma)
    return data_variance / (alpha**2 * data_variance + sigma**2)


def propagated_variance(sigmas: np.ndarray, table: ErrorTable | None, data_variance: float, weight: float) -> float:
    """`weight` · Σ_k (σ_k − σ_{k+1})²·w(σ_k)·survival(σ_{k+1}): VRG's CPE terms as they reach the final sample.

    0 without a table or at weight 0.
    """
    if table is None or weight == 0:
        return 0.0
    s = as_schedule(sigmas)
    terms = cumulative_error(s, table).per_step * error_survival(s[1:], table.kind, data_variance)
    return float(weight * terms.sum())
