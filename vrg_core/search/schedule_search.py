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
   the way the model's response to the sampler's deviations is measured (`refine.response_curve`,
   and the part of it no single factor explains, `refine.mismatch_curve`), which predicts the final
   error of any schedule from the Gram matrix (`refine.linearised_error`).
   The pool is ranked by that prediction and the best `FULL_CHECKS` are sampled too (all but one
   of them the best fixed ones, so the schedule to beat is measured, not predicted).
5. **Refinement** (`refine`): the `REFINED` best measured schedules are refined on the
   prediction (kept in `screened` as predicted then) and sampled; the response is measured
   again along them, and they are refined once more (`ROUNDS`).
6. **Out-of-sample choice** (`selection`): on held-back noises the refinement never fitted, the
   best searched schedule and the two best fixed ones are sampled; the rival is the fixed one
   closest over every noise, and the searched one is kept only when it is closer than the rival
   by more than the paired noise; the gain measured there is what is reported.

With an error table and `variance_weight` > 0, VRG's prediction-error term (propagated to the
final sample) is added to every measure. The sampler (`samplers.Sampler`) is the host's own
sampler function: every check samples with it and the refinement runs it on the teacher's
vectors; only the dynamic programme proposes paths with a simpler step (`Sampler.proxy`).
Stochastic samplers are searched and checked on their noise-free part (eta 0) and not refined,
except a pathwise one (an SDE sampler whose noise is a Brownian path the host gives,
`Sampler.pathwise`): each noise gets its own path (`pathwise.Paths`), and every check after
`FIRST_CHECKS`' noise-free runs (which measure the response for the prediction), and the
out-of-sample choice, run the sampler as the user does, with its noise on that path, judged
against the same SDE solved on the `Plan.reference`-point fine grid on the same path (its
pathwise limit) instead of the ODE's converged result.

The model is seen only as `denoise(x, sigma, index) -> D`: `index` are the sample numbers
0..B−1, so a host can pick per-sample conditioning. `start(count, sigma)` gives the first
`count` starting states at σ exactly as the host's sampler forms them, from the same seeded
noise whatever σ.
"""

from __future__ import annotations

import dataclasses
import itertools
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
from .path import best_path, step_errors
from .pathwise import paths_for
from .refine import linearised_error, mismatch_curve, refine, response_curve
from .result import SEARCHED, Objective, SearchResult
from .samplers import Sampler, as_sampler
from .selection import judge, margin, solve
from .survival import error_survival, propagated_variance
from .teacher import check, per_noise_distance, run_teacher

METHOD = 11  # raised whenever the search changes, so a cached result of an older search is not reused
MAX_STEPS = 50
DEFAULT_EVALUATIONS = 2000
DEFAULT_GRID = 40
DEFAULT_VARIANCE_WEIGHT = 0.0
MIN_SAMPLES = 4
# Exponents of `error_survival` tried by the dynamic programme: 0 counts every local error whole,
# 1 damps it as for Gaussian data; each gives one searched schedule.
DAMPING = (0.0, 0.25, 0.5, 0.75, 1.0)
FIRST_CHECKS = ("base", "dp@0.5")  # sampled first, to measure the model's response
FULL_CHECKS = 5  # further pool schedules sampled, the best by the predicted error: one searched, and the best
# predicted fixed ones (what a user could pick), so the rival is measured. The prediction misranks fixed schedules
# far from the teacher's path: with 2 fixed checks AYS-SD1, the best on the demo EPS model, was never measured in
# 3 of 4 searches (Euler / 5), with 4 it was kept in 4 of 4. A short budget (many steps) samples `FEWER_CHECKS`.
FEWER_CHECKS = 3
PATH_CHECKS = 8  # a pathwise sampler's: the prediction is the noise-free run's, which misranks schedules for the SDE
# (demo EPS, DPM++ 2M SDE / 5: sgm_uniform, the closest to the SDE's limit, was never measured with 5)
REFINED = 2  # the best measured schedules refined on the predicted error, then sampled
ROUNDS = 2  # refinements of each, the response measured again in between
HOLD_SHARE = 0.3  # of the budget, for the held-back noises of the out-of-sample choice (`selection`)
HELD_FIXED = 2  # the best measured fixed schedules also sampled there: the rival is the best of them on all noises
REFERENCE_PER_STEP = 6  # the held-back noises' converged results are solved on 6 points a step, at most
MAX_REFERENCE = 60  # points (never fewer than the grid's): a searched schedule fits the teacher's grid, so judged
# against that grid's own solve it looked closer than it is (flow DPM++2M / 10: +92 % stated against +73 to +87 %
# measured on a 200-step reference)
MIN_HELD = 3  # held-back noises at the least (many steps: what the budget leaves)
START_TOLERANCE = 1e-4  # a candidate may start this much (relative) above σ_0: A1111's Align Your Steps starts at
# 14.615, SD 1.x's σ_max is 14.6146 (float32); with 1e-6 it was never a candidate in the webui (ComfyUI's AYS
# node starts at 14.6146412, within a rounding of σ_max)


@dataclasses.dataclass(frozen=True)
class Plan:
    """How the budget is spent: `samples` teacher noises, `grid` points, `checks` sampled schedules of `calls` model
    calls, of which `rounds` rounds of `REFINED` refined ones; `held` held-back noises, each solved on the grid and
    sampled with the best searched schedule and the `held_fixed` best fixed ones for the out-of-sample choice,
    their converged results solved on `reference` points; `path` — a pathwise sampler's evaluations per noise for its
    limit (the SDE itself on the `reference` points, teacher and held-back noises alike), else 0."""

    samples: int
    grid: int
    calls: int
    checks: int
    rounds: int
    held: int = 0
    held_fixed: int = HELD_FIXED
    reference: int = DEFAULT_GRID
    path: int = 0

    @property
    def full_checks(self) -> int:
        """Pool schedules sampled by the predicted error after `FIRST_CHECKS`, before any refinement."""
        return self.checks - len(FIRST_CHECKS) - REFINED * self.rounds

    @property
    def noise_free(self) -> int:
        """Noise-free runs of a pathwise sampler, to measure the response (`FIRST_CHECKS`); else 0."""
        return len(FIRST_CHECKS) if self.path else 0

    @property
    def per_sample(self) -> int:
        """Evaluations per teacher noise."""
        return self.grid + self.path + (self.checks + self.noise_free) * self.calls

    @property
    def held_evaluations(self) -> int:
        return self.held * ((self.path or self.reference) + (1 + self.held_fixed) * self.calls)

    @property
    def evaluations(self) -> int:
        return self.samples * self.per_sample + self.held_evaluations


def plan_for(evaluations: int, steps: int, sampler: str | Sampler, grid_size: int = DEFAULT_GRID) -> Plan:
    """The largest plan within `evaluations` (per sample, summed over samples); the grid has ≥ 2 points a step.

    `HOLD_SHARE` of the budget (at least `MIN_HELD` noises) goes to the held-back noises; a budget
    too small for `MIN_SAMPLES` teacher noises with every refinement round (many steps) refines
    fewer rounds, down to none, then checks `FEWER_CHECKS` pool schedules, then samples one fixed
    schedule on the held-back noises instead of `HELD_FIXED`, before it is refused.
    """
    sampler = as_sampler(sampler)
    grid = max(grid_size, 2 * steps)
    calls = steps * sampler.calls_per_step
    reference = max(grid, min(REFERENCE_PER_STEP * steps, MAX_REFERENCE))
    path = reference * sampler.calls_per_step if sampler.pathwise else 0
    full_checks = PATH_CHECKS if sampler.pathwise else FULL_CHECKS
    for held_fixed, full, rounds in itertools.product(range(HELD_FIXED, 0, -1), (full_checks, FEWER_CHECKS),
                                                      range(0 if sampler.stochastic else ROUNDS, -1, -1)):
        per_held = (path or reference) + (1 + held_fixed) * calls
        held = max(MIN_HELD, int(HOLD_SHARE * evaluations) // per_held)
        checks = len(FIRST_CHECKS) + full + REFINED * rounds
        per_sample = Plan(1, grid, calls, checks, rounds, path=path).per_sample
        plan = Plan(max(evaluations - held * per_held, 0) // per_sample, grid, calls, checks, rounds, held, held_fixed,
                    reference, path)
        if plan.samples >= MIN_SAMPLES:
            break
    return plan


class Budget:
    """Counts evaluations for the progress bar and stops on cancel (`Cancelled`: "`work` cancelled; …")."""

    def __init__(self, planned: int, progress: Callable[[int, int], None] | None, should_stop: Callable[[], bool] | None,
                 work: str = "schedule search"):
        self.done, self.planned, self.progress, self.should_stop, self.work = 0, planned, progress, should_stop, work

    def spend(self, count: int) -> None:
        if self.should_stop is not None and self.should_stop():
            raise Cancelled(f"{self.work} cancelled; nothing was saved")
        self.done += count
        if self.progress is not None:
            self.progress(min(self.done, self.planned), self.planned)


def usable(name: str, sigmas, steps: int, sigma0: float) -> np.ndarray | None:
    """A host schedule as a candidate: `steps` steps, ending at 0, starting at or below σ_0 (`START_TOLERANCE`);
    else None."""
    try:
        s = as_schedule(sigmas, name)
    except VRGError:
        return None
    if len(s) != steps + 1 or s[-1] != 0 or s[0] > sigma0 * (1 + START_TOLERANCE):
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
    seed: int = 0,
) -> SearchResult:
    """Search a `len(base_sigmas) − 1`-step schedule for `sampler` on the model behind `denoise`.

    `sampler` — a `Sampler` (the host's function), or the name of one of vrg_core's own (`SAMPLERS`).

    `base_sigmas` — the host's base schedule (descending, ending at 0); its σ_0 is held and the
    teacher's grid runs from it down to `sigma_min` (the model's least σ). `candidates` — other
    schedules of the same length to beat (the host's schedulers and shipped tables); one that does
    not fit (another length, not ending at 0, starting above σ_0) is left out. `table` — an error
    table of this model: adds VRG alone as a candidate and, with `variance_weight` > 0, VRG's
    term to every measure. At most `evaluations` model evaluations (per sample) are spent,
    `batch_size` samples at a time (memory: at most 4·`grid_size` latents per batch sample). `seed` — of a
    pathwise sampler's Brownian paths (`pathwise.Paths`; the host's `start` has its own).
    Deterministic for deterministic `denoise` and `start`. The stages are those of the module's docstring.
    """
    base = as_schedule(base_sigmas, "base sigmas")
    sampler = as_sampler(sampler)
    plan = checked_plan(base, sampler, kind, sigma_min, table, evaluations, grid_size, variance_weight, batch_size)
    pool = fixed_pool(base, table, candidates)
    run = _Run(denoise, start, sampler, plan, table, variance_weight, batch_size,
               Budget(plan.evaluations, progress, should_stop), seed)
    run.teach(float(base[0]), noise_level_grid(sigma_min, float(base[0]), plan.grid, kind)[::-1].copy(), kind)
    for name, sigmas in run.searched_paths(len(base) - 1).items():
        pool.setdefault(name, sigmas)
    run.check_best(pool)
    if not sampler.stochastic:
        run.refine_leaders(pool)
    run.choose_out_of_sample(pool)
    if progress is not None:
        progress(plan.evaluations, plan.evaluations)  # fewer evaluations than planned when candidates coincide
    return run.result(pool)


def checked_plan(base: np.ndarray, sampler: Sampler, kind: ModelKind, sigma_min: float, table: ErrorTable | None,
                 evaluations: int, grid_size: int, variance_weight: float, batch_size: int) -> Plan:
    """The plan for these inputs; VRGError naming the input when the search cannot run on them."""
    steps = len(base) - 1
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
                       f"{MIN_SAMPLES * plan.per_sample + plan.held_evaluations}")
    return plan


def fixed_pool(base: np.ndarray, table: ErrorTable | None, candidates: dict[str, np.ndarray] | None) -> dict:
    """{name: σ} of the schedules not searched here: the base, VRG alone (with a table) and every fitting candidate."""
    pool = {"base": base}
    if table is not None:
        pool["vrg"] = optimize_sigmas(base, table, start="fixed").sigmas  # also refuses a base outside the table
    for name, sigmas in (candidates or {}).items():
        fitting = usable(name, sigmas, len(base) - 1, float(base[0]))
        if fitting is not None and name not in pool:
            pool[name] = fitting
    return pool


class _Run:
    """One search's state between its stages: the teacher, the starting states per σ_0, what was measured
    (`objectives`, and the response rows measured along the way), the prediction and the timers; for a pathwise
    sampler its `paths` and the teacher noises' `limit`."""

    def __init__(self, denoise: Denoise, start: Callable[[int, float], torch.Tensor], sampler: Sampler, plan: Plan,
                 table: ErrorTable | None, variance_weight: float, batch_size: int, budget: Budget, seed: int = 0):
        self.denoise, self.start, self.sampler, self.plan = denoise, start, sampler, plan
        self.table, self.variance_weight, self.batch_size, self.budget = table, variance_weight, batch_size, budget
        self.seed, self.paths, self.limit = seed, None, None
        self.starts: dict[float, torch.Tensor] = {}
        self.objectives: dict[str, Objective] = {}
        self.per_noise: dict[str, np.ndarray] = {}  # each measured schedule's error per teacher noise
        self.rows: list[np.ndarray] = []
        self.screened: dict[str, float] = {}
        self.model_seconds = self.search_seconds = 0.0

    def starting_states(self, sigma0: float, held: bool = False) -> torch.Tensor:
        """The teacher noises' starting states at σ_0 (`held`: the held-back noises', which follow them)."""
        if sigma0 not in self.starts:
            self.starts[sigma0] = self.start(self.plan.samples + self.plan.held, sigma0)
        states = self.starts[sigma0]
        return states[self.plan.samples:] if held else states[:self.plan.samples]

    def teach(self, sigma0: float, grid: np.ndarray, kind: ModelKind) -> None:
        """Stage 1: the teacher trajectories from σ_0 on `grid` (σ descending, without the final 0)."""
        tick = time.perf_counter()
        first = self.starting_states(sigma0)
        if self.starts[sigma0].shape[0] != self.plan.samples + self.plan.held:
            raise VRGError(f"the start function gave {self.starts[sigma0].shape[0]} starting states for "
                           f"{self.plan.samples + self.plan.held}")
        self.teacher = run_teacher(self.denoise, first, grid, self.batch_size, self.budget.spend)
        self.model_seconds += time.perf_counter() - tick
        self.grid, self.kind, self.sigma0 = grid, kind, sigma0
        # the fine grid (σ descending from σ_0, then 0) of the held-back noises' converged results and of a
        # pathwise sampler's limit
        self.fine = np.append(noise_level_grid(float(grid[-1]), sigma0, self.plan.reference, kind)[::-1], 0.0)

    def searched_paths(self, steps: int) -> dict[str, np.ndarray]:
        """Stage 2: per damping exponent, the grid path of `steps` steps with the least (damped) step errors."""
        tick = time.perf_counter()
        self.data_variance = float(self.teacher.final.var(dim=0).mean())
        sig = np.append(self.grid, 0.0)
        survival = error_survival(sig, self.kind, self.data_variance)
        local = step_errors(self.teacher, self.sampler.proxy)
        if self.table is not None and self.variance_weight > 0:
            w, _ = self.table.interpolate(self.grid)
            local = local + self.variance_weight * np.subtract.outer(self.grid, sig) ** 2 * w[:, None] * survival
        paths = {f"dp@{d:g}": sig[best_path(local * survival**d, steps)] for d in DAMPING}
        self.search_seconds += time.perf_counter() - tick
        return paths

    def follow_paths(self, pool: dict[str, np.ndarray]) -> None:
        """A pathwise sampler's `paths` over every σ the pool and the fine grid run, and the teacher noises'
        `limit`: the SDE on the fine grid on each noise's path."""
        self.paths = paths_for(self.sampler, [self.fine, *pool.values()], self.seed)
        tick = time.perf_counter()
        self.limit = solve(self.denoise, self.starting_states(self.sigma0), self.fine, self.sampler, 0,
                           self.batch_size, self.budget.spend, self.paths)
        self.model_seconds += time.perf_counter() - tick

    def measure(self, name: str, pool: dict[str, np.ndarray], response: bool = True) -> None:
        """Sample `pool[name]` from every teacher noise: its error against the teacher (a pathwise sampler's: its
        run on each noise's path against the `limit`), and the response rows (noise-free; a pathwise sampler's
        only with `response`)."""
        sigmas = pool[name]
        same = next((k for k in self.objectives if np.array_equal(pool[k], sigmas)), None)
        if same is not None:
            self.objectives[name], self.per_noise[name] = self.objectives[same], self.per_noise[same]
            return
        states = self.starting_states(float(sigmas[0]))
        tick = time.perf_counter()
        if self.paths is None or response:
            errors, rows = check(self.denoise, self.teacher, sigmas, self.sampler, states, self.batch_size,
                                 self.budget.spend)
            self.rows.append(rows)
        if self.paths is not None:
            errors = per_noise_distance(solve(self.denoise, states, sigmas, self.sampler, 0, self.batch_size,
                                              self.budget.spend, self.paths), self.limit)
        self.model_seconds += time.perf_counter() - tick
        self.per_noise[name] = errors
        self.objectives[name] = Objective(float(errors.mean()), self.variance(sigmas))

    def variance(self, sigmas: np.ndarray) -> float:
        return propagated_variance(sigmas, self.table, self.data_variance, self.variance_weight)

    def response(self) -> tuple[np.ndarray, np.ndarray]:
        """The model's response j and its unexplained part ρ per grid point, from every row measured so far."""
        rows = np.concatenate(self.rows)
        return response_curve(rows, len(self.grid)), mismatch_curve(rows, len(self.grid))

    def predicted(self, sigmas: np.ndarray, response: tuple[np.ndarray, np.ndarray]) -> float:
        """The total error of `sigmas` predicted from the teacher and the measured `response` (`linearised_error`)."""
        follow, mismatch = response
        return linearised_error(sigmas, self.teacher, self.sampler, follow, mismatch) + self.variance(sigmas)

    def check_best(self, pool: dict[str, np.ndarray]) -> None:
        """Stages 3–4: sample `FIRST_CHECKS`, predict every pool schedule's error from the measured response,
        and sample the `plan.full_checks` best predicted: one searched, the rest fixed (a pathwise sampler: its
        paths and limit first, then these with its noise)."""
        if self.sampler.pathwise:
            self.follow_paths(pool)
        for name in FIRST_CHECKS:
            self.measure(name, pool)
        tick = time.perf_counter()
        response = self.response()
        self.screened = {name: self.predicted(sigmas, response) for name, sigmas in pool.items()}
        self.search_seconds += time.perf_counter() - tick
        unmeasured = sorted((k for k in self.screened if k not in self.objectives), key=self.screened.get)
        full = self.plan.full_checks
        fixed = [k for k in unmeasured if not k.startswith(SEARCHED)][:full - 1]
        for name in (fixed + [k for k in unmeasured if k not in fixed])[:full]:
            self.measure(name, pool, response=False)

    def refine_leaders(self, pool: dict[str, np.ndarray]) -> None:
        """Stage 5: `plan.rounds` rounds: refine the `REFINED` best measured on the prediction, sample them."""
        leaders = distinct_best(self.objectives, pool, REFINED)
        for round_ in range(1, self.plan.rounds + 1):
            tick = time.perf_counter()
            response = self.response()
            refined = {f"refined{round_}:{origin.split(':')[-1]}":
                       refine(pool[origin], self.teacher, self.sampler, response[0], self.table, self.data_variance,
                              self.variance_weight, response[1]) for origin in leaders}
            pool.update(refined)
            self.screened.update({name: self.predicted(sigmas, response) for name, sigmas in refined.items()})
            self.search_seconds += time.perf_counter() - tick
            for name in refined:
                self.measure(name, pool)
            leaders = list(refined)

    def choose_out_of_sample(self, pool: dict[str, np.ndarray]) -> None:
        """Stage 6 (`selection`): on the held-back noises, their converged results solved on `plan.reference` points
        (finer than the teacher's grid above 5 steps; a pathwise sampler's: its limit, the SDE on those points on
        each noise's path, the schedules run on it too), the best measured searched schedule and the
        `plan.held_fixed` best measured fixed ones are sampled. The rival is the fixed one closest over all noises
        (fixed schedules are not fitted, so the teacher's count too), its `Margin` over the other one measured
        there stated; the searched one is judged against it on the held-back noises alone."""
        tick = time.perf_counter()
        fixed = {k: v for k, v in self.objectives.items() if not k.startswith(SEARCHED)}
        searched = {k: v for k, v in self.objectives.items() if k.startswith(SEARCHED)}
        contenders = distinct_best(fixed, pool, self.plan.held_fixed)
        best = min(searched, key=lambda k: searched[k].total)
        first, batch, spend = self.plan.samples, self.batch_size, self.budget.spend
        converged = self.sampler if self.paths is not None else "dpmpp_2m"
        reference = solve(self.denoise, self.starting_states(self.sigma0, held=True), self.fine, converged, first,
                          batch, spend, self.paths)
        distance = {name: per_noise_distance(solve(self.denoise, self.starting_states(float(pool[name][0]), held=True),
                                                   pool[name], self.sampler, first, batch, spend, self.paths),
                                             reference)
                    for name in (best, *contenders)}
        every = {k: np.concatenate([self.per_noise[k], distance[k]]) for k in contenders}
        rival = min(contenders, key=lambda k: every[k].mean() + fixed[k].variance)
        others = [k for k in contenders if k != rival]
        next_best = margin(rival, others[0], every[rival], every[others[0]]) if others else None
        self.verdict = judge(best, rival, distance[best], distance[rival], next_best, self.paths is not None)
        self.model_seconds += time.perf_counter() - tick

    def result(self, pool: dict[str, np.ndarray]) -> SearchResult:
        """The schedule kept by the out-of-sample choice and what every candidate measured."""
        chosen = self.verdict.kept
        return SearchResult(pool[chosen], self.sampler.name, len(pool["base"]) - 1, chosen, self.objectives,
                            self.screened, pool, self.budget.done, self.plan.samples, self.plan.grid,
                            float(self.variance_weight), self.model_seconds, self.search_seconds, self.verdict)


def distinct_best(objectives: dict[str, Objective], pool: dict[str, np.ndarray], count: int) -> list[str]:
    """The `count` measured schedules with the least totals, no two the same (of equal ones, a named schedule
    rather than "base": the base is one of the host's schedulers under another name)."""
    best: list[str] = []
    for name in sorted(objectives, key=lambda k: (objectives[k].total, k == "base")):
        if len(best) < count and not any(np.array_equal(pool[k], pool[name]) for k in best):
            best.append(name)
    return best
