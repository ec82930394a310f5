"""The error table: a model's measured prediction error per noise level.

For a clean latent x0, noise ε and level σ the sampler's true direction is
d* = (x − x0)/σ; the model's is d̂ = (x − D̂(x, σ))/σ. Per sample the table records

    mse        = ‖D̂ − x0‖² / (σ² · dim)       (= ‖d̂ − d*‖² / dim)
    mean_error = mean(D̂ − x0) / σ             (bias of d̂ per dimension)

and per level σ_i (ascending) the sums count, Σ mse, Σ mse², Σ mean_error, so that
tables merge exactly by adding and give standard errors. w(σ) = Σ mse / count.
For EPS models mse is exactly the paper's per-dimension MSE of ε̂ − ε.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import json
import math
from typing import Literal

import numpy as np
from scipy.linalg import LinAlgError, solveh_banded

from .errors import VRGError
from .parameterization import ModelKind, alpha_bar_from_sigma, dalpha_bar_dsigma

Interp = Literal["loglog", "paper"]
INTERPOLATIONS: tuple[str, ...] = ("loglog", "paper")


@dataclasses.dataclass(frozen=True)
class TableInfo:
    """Where a table came from. Strings and numbers only (stored as JSON metadata)."""

    model_fingerprint: str = ""
    cfg: float = 1.0
    dataset_size: int = 0
    seed: int = 0
    created: str = ""
    source: str = ""

    def merged_with(self, other: "TableInfo") -> "TableInfo":
        return dataclasses.replace(
            self,
            dataset_size=self.dataset_size + other.dataset_size,
            source=" + ".join(s for s in (self.source, other.source) if s),
        )


@dataclasses.dataclass(frozen=True, eq=False)
class ErrorTable:
    """Per-level error statistics; `sigmas` ascending (clean end first), float64 arrays."""

    kind: ModelKind
    sigmas: np.ndarray
    count: np.ndarray
    sum_mse: np.ndarray
    sum_mse_sq: np.ndarray
    sum_mean_error: np.ndarray
    info: TableInfo = TableInfo()

    def __post_init__(self) -> None:
        validate_table(self)

    # ---- construction -------------------------------------------------------------
    @classmethod
    def empty(cls, kind: ModelKind, sigmas: np.ndarray, info: TableInfo = TableInfo()) -> "ErrorTable":
        zeros = np.zeros(len(sigmas))
        return cls(kind, np.asarray(sigmas, np.float64), zeros.copy(), zeros.copy(), zeros.copy(), zeros.copy(), info)

    @classmethod
    def from_samples(
        cls,
        kind: ModelKind,
        sigmas: np.ndarray,
        level: np.ndarray,
        mse: np.ndarray,
        mean_error: np.ndarray,
        info: TableInfo = TableInfo(),
    ) -> "ErrorTable":
        """Table of per-sample results; `level[j]` is the index into `sigmas` of sample j."""
        n = len(sigmas)
        level = np.asarray(level, dtype=np.int64)
        mse = np.asarray(mse, dtype=np.float64)
        return cls(
            kind,
            np.asarray(sigmas, np.float64),
            np.bincount(level, minlength=n).astype(np.float64),
            np.bincount(level, weights=mse, minlength=n),
            np.bincount(level, weights=mse * mse, minlength=n),
            np.bincount(level, weights=np.asarray(mean_error, np.float64), minlength=n),
            info,
        )

    @classmethod
    def from_mean_error(cls, kind: ModelKind, sigmas: np.ndarray, mse: np.ndarray, info: TableInfo = TableInfo()) -> "ErrorTable":
        """A table known only by its mean per-dimension error (one 'sample' a level, no spread)."""
        mse = np.asarray(mse, np.float64)
        ones = np.ones_like(mse)
        return cls(kind, np.asarray(sigmas, np.float64), ones, mse, mse * mse, np.zeros_like(mse), info)

    # ---- statistics ---------------------------------------------------------------
    @property
    def sigma_min(self) -> float:
        return float(self.sigmas[0])

    @property
    def sigma_max(self) -> float:
        return float(self.sigmas[-1])

    @property
    def mean_mse(self) -> np.ndarray:
        """w(σ_i): mean per-dimension squared error of the direction d at each level."""
        return self.sum_mse / self.count

    @property
    def standard_error(self) -> np.ndarray:
        """Standard error of `mean_mse` (0 where a level has fewer than 2 samples)."""
        n = self.count
        var = (self.sum_mse_sq - self.sum_mse**2 / n) / np.maximum(n - 1, 1)
        return np.where(n > 1, np.sqrt(np.maximum(var, 0.0) / n), 0.0)

    @functools.cached_property
    def smoothed_mse(self) -> np.ndarray:
        """w(σ_i) pooled with its neighbours by their standard errors: what interpolation uses.

        A penalised fit of log w over the levels (weights 1/var(log w_i) = (w_i/se_i)², penalty λ
        on second differences along the grid, which is uniform in log-SNR) with λ as large as
        keeps the fit within the noise: mean weighted squared residual 1 (the discrepancy
        principle). A measured 32-sample level has a relative standard error of 5–10 %; its
        neighbours carry most of the same information. Tables without spread (any level with
        fewer than 2 samples or zero standard error, e.g. the official text tables) are used as
        measured. The stored sums are unchanged.
        """
        return smooth_levels(self.mean_mse, self.standard_error)

    @property
    def mean_bias(self) -> np.ndarray:
        """Mean per-dimension error of d at each level (the paper assumes 0)."""
        return self.sum_mean_error / self.count

    # ---- combination ----------------------------------------------------------------
    def merge(self, other: "ErrorTable") -> "ErrorTable":
        """Sum of two tables measured on the same model kind and noise-level grid."""
        if other.kind != self.kind:
            raise VRGError(f"cannot merge a table of {other.kind.label} models into one of {self.kind.label} models; "
                           "merge tables of one model")
        if len(other.sigmas) != len(self.sigmas) or not np.allclose(other.sigmas, self.sigmas, rtol=1e-9, atol=0):
            raise VRGError("cannot merge tables with different noise-level grids; profile both with the same grid size and model")
        fps = {self.info.model_fingerprint, other.info.model_fingerprint} - {""}
        if len(fps) > 1:
            raise VRGError(f"cannot merge tables of different models (fingerprints {sorted(fps)}); merge tables of one model")
        return ErrorTable(
            self.kind,
            self.sigmas,
            self.count + other.count,
            self.sum_mse + other.sum_mse,
            self.sum_mse_sq + other.sum_mse_sq,
            self.sum_mean_error + other.sum_mean_error,
            self.info.merged_with(other.info),
        )

    # ---- interpolation ----------------------------------------------------------------
    def interpolate(self, sigma: np.ndarray, interp: Interp = "loglog") -> tuple[np.ndarray, np.ndarray]:
        """w(σ) and dw/dσ at arbitrary σ > 0 (clamped to the end values outside the table).

        `loglog` (default): piecewise linear in (log σ, log w).
        `paper`: the official VRG code's rule, piecewise linear in ᾱ.
        Both through `smoothed_mse` (the measured w where the table has no spread).
        """
        sigma = np.asarray(sigma, dtype=np.float64)
        w = self.smoothed_mse
        if interp == "loglog":
            x, y = np.log(self.sigmas), np.log(w)
            xq = np.log(sigma)
        elif interp == "paper":
            # ᾱ falls as σ rises: reverse so x ascends.
            x, y = alpha_bar_from_sigma(self.sigmas, self.kind)[::-1], w[::-1]
            xq = alpha_bar_from_sigma(sigma, self.kind)
        else:
            raise VRGError(f"interpolation {interp!r} is unknown; use one of {INTERPOLATIONS}")
        i = np.clip(np.searchsorted(x, xq, side="right") - 1, 0, len(x) - 2)
        slope = (y[i + 1] - y[i]) / (x[i + 1] - x[i])
        inside = (xq >= x[0]) & (xq <= x[-1])
        yq = np.where(inside, y[i] + slope * (xq - x[i]), np.where(xq < x[0], y[0], y[-1]))
        dy_dxq = np.where(inside, slope, 0.0)
        if interp == "loglog":
            wq = np.exp(yq)
            return wq, dy_dxq * wq / sigma
        dab_dsigma = dalpha_bar_dsigma(sigma, self.kind)
        return yq, dy_dxq * dab_dsigma


def smooth_levels(w: np.ndarray, se: np.ndarray, residual: float = 1.0) -> np.ndarray:
    """Penalised least squares of log w on second differences, weights (w/se)², λ by the discrepancy principle."""
    n = len(w)
    if n < 3 or np.any(se <= 0) or np.any(w <= 0):
        return w
    y, v = np.log(w), (w / se) ** 2
    penalty = np.zeros((3, n))  # DᵀD for D the second differences (rows 1, −2, 1), upper banded form
    taps = np.array([1.0, -2.0, 1.0])
    rows = np.arange(n - 2)
    for k in range(3):
        np.add.at(penalty[2], rows + k, taps[k] ** 2)
    for k in range(2):
        np.add.at(penalty[1], rows + k + 1, taps[k] * taps[k + 1])
    penalty[0, 2:] = taps[0] * taps[2]

    def fit(lam: float) -> np.ndarray:
        bands = lam * penalty
        bands[2] += v
        return solveh_banded(bands, v * y, check_finite=False)

    lo, hi = -6.0, 10.0  # log10 λ; the fit loosens as λ falls
    try:
        if np.mean(v * (fit(10.0**lo) - y) ** 2) > residual:
            return w
        for _ in range(40):
            mid = 0.5 * (lo + hi)
            lo, hi = (lo, mid) if np.mean(v * (fit(10.0**mid) - y) ** 2) > residual else (mid, hi)
        return np.exp(fit(10.0**lo))
    except (LinAlgError, ValueError):
        return w


def validate_table(t: ErrorTable) -> None:
    """Raise VRGError unless the table is usable: ascending finite σ > 0, counts ≥ 1, finite w > 0."""
    arrays = (t.sigmas, t.count, t.sum_mse, t.sum_mse_sq, t.sum_mean_error)
    if any(a.ndim != 1 or len(a) != len(t.sigmas) for a in arrays):
        raise VRGError("error table arrays must be 1-D and of one length")
    if len(t.sigmas) < 2:
        raise VRGError(f"error table has {len(t.sigmas)} noise level(s); profile with a grid of at least 2 levels")
    if not all(np.all(np.isfinite(a)) for a in arrays):
        raise VRGError("error table holds NaN or infinite values; profile the model again")
    if np.any(t.sigmas <= 0) or np.any(np.diff(t.sigmas) <= 0):
        raise VRGError("error table noise levels must be positive and strictly ascending")
    if t.kind.is_flow and t.sigmas[-1] > 1.0:
        raise VRGError("a flow (CONST) error table cannot have noise levels above 1")
    if np.any(t.count < 1):
        empty = np.flatnonzero(t.count < 1)
        raise VRGError(
            f"error table has {len(empty)} level(s) with no samples (first at sigma={t.sigmas[empty[0]]:.4g}); "
            "profile with more samples per level"
        )
    if np.any(t.sum_mse <= 0):
        raise VRGError("error table has a level with zero error; a real model's error is positive — profile again")


def now_iso() -> str:
    """UTC creation time, second precision."""
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()


def info_to_json(info: TableInfo) -> str:
    return json.dumps(dataclasses.asdict(info), sort_keys=True)


def info_from_dict(d: dict) -> TableInfo:
    fields = {f.name: f for f in dataclasses.fields(TableInfo)}
    kwargs = {}
    for name, value in d.items():
        if name not in fields:
            continue
        want = type(getattr(TableInfo(), name))
        if want is float and isinstance(value, (int, float)) and math.isfinite(value):
            kwargs[name] = float(value)
        elif want is int and isinstance(value, int) and not isinstance(value, bool):
            kwargs[name] = value
        elif want is str and isinstance(value, str):
            kwargs[name] = value
        else:
            raise VRGError(f"table metadata field {name!r} has a value of the wrong type ({value!r})")
    return TableInfo(**kwargs)
