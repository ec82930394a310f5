"""VRG+: a schedule searched on the model itself for the error at the final sample.

A few-step sampler's result differs from the model's converged result (its own ODE solved
finely) mostly by discretisation error, which depends on the model. The search measures it on
the user's model and returns the schedule whose samples come closest to the converged ones:

1. **Teacher** (`teacher`): B trajectories from the host's own starting noise, solved with
   DPM++2M on a fine grid from σ_0 to the model's σ_min; kept as a Gram matrix.
2. **Searched candidates** (`path`): for each damping exponent a dynamic programme over the grid
   finds the N-step path with the least step errors, no model calls.
3. **Pool**: those, the base schedule, VRG alone (with a table) and every schedule the host
   offers (its schedulers and shipped tables at this step count).
4. **Checks**: the base and one searched schedule are sampled from the teacher's noise; along
   the way the model's response to the sampler's deviations is measured (`refine.response_curve`),
   which predicts the final error of any schedule from the Gram matrix (`refine.linearised_error`).
   The pool is ranked by that prediction and the best `FULL_CHECKS` are sampled too.
5. **Refinement** (`refine`): the `REFINED` best measured schedules are refined on the
   prediction and sampled; the response is measured again along them, and they are refined
   once more (`ROUNDS`). The least measured error wins, so the result is never worse, on the
   search's own noise, than any schedule it measured.

With an error table and `variance_weight` > 0, VRG's prediction-error term (propagated to the
final sample) is added to every measure. The sampler (`samplers.Sampler`) is the host's own
sampler function: every check samples with it and the refinement runs it on the teacher's
vectors; only the dynamic programme proposes paths with a simpler step (`Sampler.proxy`).
Stochastic samplers are searched and checked on their noise-free part (eta 0) and not refined.

The model is seen only as `denoise(x, sigma, index) -> D`: `index` are the sample numbers
0..B−1, so a host can pick per-sample conditioning. `start(count, sigma)` gives the first
`count` starting states at σ exactly as the host's sampler forms them, from the same seeded
noise whatever σ.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable

import numpy as np
import torch

from ..errors import Cancelled, VRGError
from ..error_table import ErrorTable
from ..objective import as_schedule
from ..optimize import optimize_sigmas
from ..parameterization import ModelKind, noise_level_grid
from ..profile import Denoise
from .cache import SearchCache, cache_settings
from .coefficients import step_coefficients
from .path import best_path, step_errors
from .refine import linearised_error, refine, response_curve
from .result import Objective, SearchResult
from .samplers import SAMPLERS, Sampler, as_sampler, sample
from .survival import error_survival, propagated_variance
from .teacher import Teacher, check, run_teacher

__all__ = ["SAMPLERS", "Sampler", "as_sampler", "METHOD", "MAX_STEPS", "DEFAULT_EVALUATIONS", "DEFAULT_VARIANCE_WEIGHT", "DEFAULT_GRID",
           "SearchCache", "SearchResult", "Objective", "Teacher", "cache_settings", "search_schedule",
           "plan_for", "run_teacher", "check", "sample", "step_coefficients", "step_errors", "best_path",
           "linearised_error", "refine", "response_curve", "propagated_variance", "error_survival"]

METHOD = 6  # raised whenever the search changes, so a cached result of an older search is not reused
MAX_STEPS = 50
DEFAULT_EVALUATIONS = 2000
DEFAULT_GRID = 40
DEFAULT_VARIANCE_WEIGHT = 0.0
MIN_SAMPLES = 4
# Exponents of `error_survival` tried by the dynamic programme: 0 counts every local error whole,
# 1 damps it as for Gaussian data; each gives one searched schedule.
DAMPING = (0.0, 0.25, 0.5, 0.75, 1.0)
FIRST_CHECKS = ("base", "dp@0.5")  # sampled first, to measure the model's response
FULL_CHECKS = 3  # further pool schedules sampled, the best by the predicted error
REFINED = 2  # the best measured schedules refined on the predicted error, then sampled
ROUNDS = 2  # refinements of each, the response measured again in between


@dataclasses.dataclass(frozen=True)
class Plan:
    """How the budget is spent: `samples` teacher noises, `grid` points, `checks` sampled schedules of `calls` model
    calls, of which `rounds` rounds of `REFINED` refined ones."""

    samples: int
    grid: int
    calls: int
    checks: int
    rounds: int

    @property
    def evaluations(self) -> int:
        return self.samples * (self.grid + self.checks * self.calls)


def plan_for(evaluations: int, steps: int, sampler: str | Sampler, grid_size: int = DEFAULT_GRID) -> Plan:
    """The largest plan within `evaluations` (per sample, summed over samples); the grid has ≥ 2 points a step.

    A budget too small for `MIN_SAMPLES` teacher noises with every refinement round (many steps)
    refines fewer rounds, down to none, before it is refused.
    """
    sampler = as_sampler(sampler)
    grid = max(grid_size, 2 * steps)
    calls = steps * sampler.calls_per_step
    for rounds in range(0 if sampler.stochastic else ROUNDS, -1, -1):
        checks = len(FIRST_CHECKS) + FULL_CHECKS + REFINED * rounds
        plan = Plan(evaluations // (grid + checks * calls), grid, calls, checks, rounds)
        if plan.samples >= MIN_SAMPLES:
            break
    return plan


class Budget:
    """Counts evaluations for the progress bar and stops on cancel."""

    def __init__(self, planned: int, progress: Callable[[int, int], None] | None, should_stop: Callable[[], bool] | None):
        self.done, self.planned, self.progress, self.should_stop = 0, planned, progress, should_stop

    def spend(self, count: int) -> None:
        if self.should_stop is not None and self.should_stop():
            raise Cancelled("schedule search cancelled; nothing was saved")
        self.done += count
        if self.progress is not None:
            self.progress(min(self.done, self.planned), self.planned)


def usable(name: str, sigmas, steps: int, sigma0: float) -> np.ndarray | None:
    """A host schedule as a candidate: `steps` steps, ending at 0, starting at or below σ_0; else None."""
    try:
        s = as_schedule(sigmas, name)
    except VRGError:
        return None
    if len(s) != steps + 1 or s[-1] != 0 or s[0] > sigma0 * (1 + 1e-6):
        return None
    return s


def search_schedule(
    denoise: Denoise,
    start: Callable[[int, float], torch.Tensor],
    base_sigmas,
    sampler: str | Sampler,
    kind: ModelKind,
    sigma_min: float,
    *,
    table: ErrorTable | None = None,
    candidates: dict[str, np.ndarray] | None = None,
    evaluations: int = DEFAULT_EVALUATIONS,
    grid_size: int = DEFAULT_GRID,
    variance_weight: float = DEFAULT_VARIANCE_WEIGHT,
    batch_size: int = 64,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> SearchResult:
    """Search a `len(base_sigmas) − 1`-step schedule for `sampler` on the model behind `denoise`.

    `sampler` — a `Sampler` (the host's function), or the name of one of vrg_core's own (`SAMPLERS`).

    `base_sigmas` — the host's base schedule (descending, ending at 0); its σ_0 is held and the
    teacher's grid runs from it down to `sigma_min` (the model's least σ). `candidates` — other
    schedules of the same length to beat (the host's schedulers and shipped tables); one that does
    not fit (another length, not ending at 0, starting above σ_0) is left out. `table` — an error
    table of this model: adds VRG alone as a candidate and, with `variance_weight` > 0, VRG's
    term to every measure. At most `evaluations` model evaluations (per sample) are spent,
    `batch_size` samples at a time (memory: at most 4·`grid_size` latents per batch sample).
    Deterministic for deterministic `denoise` and `start`.
    """
    base = as_schedule(base_sigmas, "base sigmas")
    steps, sigma0 = len(base) - 1, float(base[0])
    sampler = as_sampler(sampler)
    if base[-1] != 0:
        raise VRGError("the base schedule must end at sigma 0 (a full denoise); give a scheduler's whole output")
    if steps < 2:
        raise VRGError("a 1-step schedule has nothing to search (its start is held); use 2 or more steps")
    if steps > MAX_STEPS:
        raise VRGError(f"{steps} steps: the search is for few-step sampling (at most {MAX_STEPS}); "
                       "use VRG Optimize Sigmas for longer schedules")
    if not (np.isfinite(variance_weight) and variance_weight >= 0):
        raise VRGError(f"variance weight must be a number >= 0, got {variance_weight}")
    if batch_size < 1:
        raise VRGError(f"batch size must be at least 1, got {batch_size}")
    if table is not None and table.kind != kind:
        raise VRGError(f"the error table is for {table.kind.label} models but the model is {kind.label}; "
                       "use a table profiled on this model, or none")
    if not 0 < sigma_min < base[0]:
        raise VRGError(f"the model's least sigma {sigma_min:.4g} must be above 0 and below the schedule's start "
                       f"{base[0]:.4g}")
    plan = plan_for(evaluations, steps, sampler, grid_size)
    if plan.samples < MIN_SAMPLES:
        raise VRGError(f"{evaluations} evaluations are too few for {steps} steps; allow at least "
                       f"{MIN_SAMPLES * (plan.grid + plan.checks * plan.calls)}")
    pool = {"base": base}
    if table is not None:
        pool["vrg"] = optimize_sigmas(base, table, start="fixed").sigmas  # also refuses a base outside the table
    for name, sigmas in (candidates or {}).items():
        fitting = usable(name, sigmas, steps, sigma0)
        if fitting is not None and name not in pool:
            pool[name] = fitting
    budget = Budget(plan.evaluations, progress, should_stop)
    model_seconds, search_seconds = 0.0, 0.0

    tick = time.perf_counter()
    starts = {sigma0: start(plan.samples, sigma0)}
    if starts[sigma0].shape[0] != plan.samples:
        raise VRGError(f"the start function gave {starts[sigma0].shape[0]} starting states for {plan.samples}")
    grid = noise_level_grid(sigma_min, sigma0, plan.grid, kind)[::-1].copy()
    teacher = run_teacher(denoise, starts[sigma0], grid, batch_size, budget.spend)
    model_seconds += time.perf_counter() - tick

    tick = time.perf_counter()
    data_variance = float(teacher.final.var(dim=0).mean())
    sig = np.append(grid, 0.0)
    survival = error_survival(sig, kind, data_variance)
    local = step_errors(teacher, sampler.proxy)
    if table is not None and variance_weight > 0:
        w, _ = table.interpolate(grid)
        local = local + variance_weight * np.subtract.outer(grid, sig) ** 2 * w[:, None] * survival
    for d in DAMPING:
        pool.setdefault(f"dp@{d:g}", sig[best_path(local * survival**d, steps)])
    search_seconds += time.perf_counter() - tick

    objectives: dict[str, Objective] = {}
    rows: list[np.ndarray] = []

    def measure(name: str) -> None:
        nonlocal model_seconds
        sigmas = pool[name]
        same = next((k for k in objectives if np.array_equal(pool[k], sigmas)), None)
        if same is not None:
            objectives[name] = objectives[same]
            return
        if float(sigmas[0]) not in starts:
            starts[float(sigmas[0])] = start(plan.samples, float(sigmas[0]))
        tick = time.perf_counter()
        error, response = check(denoise, teacher, sigmas, sampler, starts[float(sigmas[0])], batch_size,
                                budget.spend)
        model_seconds += time.perf_counter() - tick
        rows.append(response)
        objectives[name] = Objective(error, propagated_variance(sigmas, table, data_variance, variance_weight))

    def predicted(name: str, response: np.ndarray) -> float:
        sigmas = pool[name]
        return (linearised_error(sigmas, teacher, sampler, response)
                + propagated_variance(sigmas, table, data_variance, variance_weight))

    for name in FIRST_CHECKS:
        measure(name)
    tick = time.perf_counter()
    response = response_curve(np.concatenate(rows), len(grid))
    screened = {name: predicted(name, response) for name in pool}
    search_seconds += time.perf_counter() - tick
    for name in sorted((k for k in screened if k not in objectives), key=screened.get)[:FULL_CHECKS]:
        measure(name)

    if not sampler.stochastic:
        leaders = distinct_best(objectives, pool, REFINED)
        for round_ in range(1, plan.rounds + 1):
            tick = time.perf_counter()
            response = response_curve(np.concatenate(rows), len(grid))
            refined = {}
            for origin in leaders:
                name = f"refined{round_}:{origin.split(':')[-1]}"
                pool[name] = refine(pool[origin], teacher, sampler, response, table, data_variance,
                                    variance_weight)
                refined[name] = pool[name]
            search_seconds += time.perf_counter() - tick
            for name in refined:
                measure(name)
            leaders = list(refined)
    if progress is not None:
        progress(plan.evaluations, plan.evaluations)  # fewer evaluations than planned when candidates coincide
    chosen = min(objectives, key=lambda k: objectives[k].total)
    return SearchResult(pool[chosen], sampler.name, steps, chosen, objectives, screened, pool, budget.done, plan.samples,
                        plan.grid, float(variance_weight), model_seconds, search_seconds)


def distinct_best(objectives: dict[str, Objective], pool: dict[str, np.ndarray], count: int) -> list[str]:
    """The `count` measured schedules with the least totals, no two the same."""
    best: list[str] = []
    for name in sorted(objectives, key=lambda k: objectives[k].total):
        if len(best) < count and not any(np.array_equal(pool[k], pool[name]) for k in best):
            best.append(name)
    return best
