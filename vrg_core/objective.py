"""Cumulative prediction error (CPE) of a schedule.

For a schedule σ_0 > … > σ_N (σ_0 the start):

    CPE = Σ_{k=0}^{N−1} (σ_k − σ_{k+1})² · w(σ_k)

with w from the error table. This is the official `accumulate_variance`, term by term.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import torch

from .errors import VRGError
from .error_table import ErrorTable, Interp


@dataclasses.dataclass(frozen=True)
class CumulativeError:
    """CPE total and its per-step terms (step k goes from σ_k to σ_{k+1})."""

    total: float
    per_step: np.ndarray


def as_schedule(sigmas, name: str = "sigmas") -> np.ndarray:
    """Validate a schedule (descending, finite, ≥ 0, at least one step) as float64."""
    if isinstance(sigmas, torch.Tensor):
        sigmas = sigmas.detach().cpu().to(torch.float64).numpy()
    try:
        s = np.asarray(sigmas, dtype=np.float64)
    except (TypeError, ValueError):
        raise VRGError(f"{name} must be a list of numbers") from None
    if s.ndim != 1:
        raise VRGError(f"{name} must be 1-D, got shape {tuple(s.shape)}")
    if len(s) < 2:
        raise VRGError(f"{name} has {len(s)} value(s); a schedule needs at least 2 (one step), e.g. '14.6, 0'")
    if not np.all(np.isfinite(s)):
        raise VRGError(f"{name} contains NaN or infinity (at index {int(np.flatnonzero(~np.isfinite(s))[0])}); "
                       "give finite noise levels")
    if np.any(s < 0):
        raise VRGError(f"{name} contains a negative noise level (at index {int(np.flatnonzero(s < 0)[0])}); "
                       "noise levels are 0 or more")
    bad = np.flatnonzero(np.diff(s) >= 0)
    if len(bad):
        k = int(bad[0])
        raise VRGError(
            f"{name} must decrease strictly (start noisiest): sigma[{k}]={s[k]:.6g} <= sigma[{k + 1}]={s[k + 1]:.6g}; "
            "pass a sampler schedule such as the output of a scheduler node"
        )
    return s


_SEPARATORS = re.compile(r"[\s,;\[\]()]+")
MAX_SCHEDULE_TEXT = 100_000


def schedule_from_text(text: str, name: str = "sigmas text") -> np.ndarray:
    """A schedule from numbers separated by commas, semicolons or spaces (brackets allowed)."""
    if len(text) > MAX_SCHEDULE_TEXT:
        raise VRGError(f"{name} is {len(text)} characters long; a schedule fits in {MAX_SCHEDULE_TEXT}")
    values = []
    for token in filter(None, _SEPARATORS.split(text)):
        try:
            values.append(float(token))
        except ValueError:
            raise VRGError(f"{name}: {token[:40]!r} is not a number; give numbers separated by commas") from None
    if ";" in text and "." not in text and re.search(r"\d,\d", text):
        raise VRGError(f"{name} looks like decimal commas ({text[:40]!r}): write decimals with a point, e.g. "
                       "'14.6, 3.8, 0'")
    return as_schedule(values, name)


def cumulative_error(sigmas, table: ErrorTable, interp: Interp = "loglog") -> CumulativeError:
    """CPE of a schedule (descending σ, any length ≥ 2)."""
    s = as_schedule(sigmas)
    w, _ = table.interpolate(s[:-1], interp)
    terms = (s[:-1] - s[1:]) ** 2 * w
    return CumulativeError(float(terms.sum()), terms)


def cumulative_error_grad(s: np.ndarray, table: ErrorTable, interp: Interp) -> tuple[float, np.ndarray]:
    """CPE and its gradient with respect to every σ_k of a descending schedule `s`."""
    w, dw = table.interpolate(s[:-1], interp)
    step = s[:-1] - s[1:]
    grad = np.zeros_like(s)
    grad[:-1] += 2.0 * step * w + step**2 * dw
    grad[1:] -= 2.0 * step * w
    return float(np.sum(step**2 * w)), grad
