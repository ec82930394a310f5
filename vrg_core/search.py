"""VRG+: a schedule searched on the model itself for the total error at the final sample.

VRG alone moves each step of a base schedule to lower the propagated *prediction* error
(CPE). At 5–10 steps the *discretisation* error of the sampler dominates, and it depends on
the model. The search measures both on the user's model:

1. **Teacher.** B trajectories from noise are solved with DPM-Solver++(2M) on a fine grid
   g_0 > g_1 > … > g_{G−1} > 0 (g_0 = σ_0 of the base schedule, held; g_{G−1} the table's
   least σ; uniform in log-SNR, σ descending, the start first). Every grid state X_m and its prediction D_m = D(X_m, g_m)
   are kept only through their Gram matrix, so memory does not grow with the latent size.
2. **Step costs.** One step of the chosen sampler from grid point a to b (previous point p)
   is x̂_b = c_x·X_a + c_D·D_a + c_old·D_p (`step_coefficients`, ComfyUI's formulas). Its
   error against the teacher's X_b, per dimension and sample, is a quadratic form in the
   Gram matrix; the model is not called again. The last step (to σ = 0) returns D_a and is
   compared with the teacher's final sample. VRG's variance term
   `variance_weight`·(g_a − g_b)²·w(g_a) from the error table is in the same units (squared
   latent units per dimension) and is added to every step.
3. **Search.** An error made at σ_b is partly undone by the remaining steps
   (`error_survival`); for each damping exponent d in `DAMPING`, a dynamic programme over
   (previous, current) grid points finds the schedule of exactly `steps` steps with the
   least Σ (step error · survival^d + variance term · survival) — in well under a second,
   with no model calls.
4. **Check.** The searched schedules, VRG alone and the base are sampled from the same B
   noises and their measured total (final-sample error against the teacher + the propagated
   variance term) is kept. On the way, each sampler state is compared with the teacher's at
   the same σ: how much of that deviation the model's prediction follows (j(σ), about 0 at
   high σ, about 1 near 0; `response_curve`) is measured along the sampler's own errors.
5. **Refine.** With that measured response, the final-sample error of any schedule (any σ,
   not only grid points) follows from the Gram matrix alone (`linearised_error`): an error
   made early is carried to the end as the model carries it, which the per-step costs of the
   dynamic programme cannot see. Nelder–Mead on it + the variance term refines the
   `REFINED` best checked schedules; they are checked too, and the least measured total wins,
   so the result is never worse than VRG alone on that measure.

Ancestral samplers inject fresh noise, so their result cannot be compared path by path
with a teacher: `euler_ancestral` is searched and checked on its noise-free part (Euler), and
not refined (`refinements`).

The model is seen only as `denoise(x, sigma, index) -> D` (as in `vrg_core.profile`):
`index` are the sample numbers 0..B−1, so a host can pick per-sample conditioning.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from typing import Callable

import numpy as np
import torch
from scipy.optimize import minimize

from .errors import Cancelled, VRGError
from .error_table import ErrorTable
from .objective import as_schedule, cumulative_error
from .optimize import optimize_sigmas
from .parameterization import ModelKind, noise_level_grid
from .profile import Denoise
from .table_io import table_to_bytes

SAMPLERS = ("euler", "dpmpp_2m", "euler_ancestral")
METHOD = 2  # raised whenever the search changes, so a cached result of an older search is not reused
MAX_STEPS = 50
DEFAULT_EVALUATIONS = 2000
DEFAULT_GRID = 100
MIN_SAMPLES = 4
DEFAULT_VARIANCE_WEIGHT = 1.0
# Exponents of `error_survival` tried by the search: 0 counts every local error whole, 1 damps
# it as for Gaussian data; each gives one searched schedule, and the check keeps the best.
DAMPING = (0.0, 0.25, 0.5, 0.75, 1.0)
REFINED = 2  # the best checked schedules are refined on the linearised error, then checked too
RESPONSE_WIDTH = 5.0  # grid points over which the model's measured response is pooled
REFINE_EVALUATIONS = 3000  # Nelder–Mead evaluations of the linearised error per refined schedule


def step_coefficients(sampler: str, sigma_prev, sigma, sigma_next) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(c_x, c_D, c_old) of one noise-free step x_next = c_x·x + c_D·D(x, σ) + c_old·D_prev.

    ComfyUI's (k-diffusion's) `sample_euler` and `sample_dpmpp_2m`; `euler_ancestral` uses
    Euler's. Arrays broadcast; `sigma_prev` NaN means "no previous step" (the first step,
    where DPM++2M is first order). A step to σ_next = 0 returns D.
    """
    sp, s, sn = (np.asarray(v, dtype=np.float64) for v in (sigma_prev, sigma, sigma_next))
    ratio = sn / s
    c_x, c_d = ratio, 1.0 - ratio
    c_old = np.zeros(np.broadcast_shapes(sp.shape, s.shape, sn.shape))
    if sampler == "dpmpp_2m":
        second_order = np.isfinite(sp) & (sn > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.log(sp / s) / np.log(s / sn)  # h_last / h
            half = np.where(second_order, 1.0 / (2.0 * r), 0.0)
        c_old = -c_d * half
        c_d = c_d * (1.0 + half)
    elif sampler not in ("euler", "euler_ancestral"):
        raise VRGError(f"sampler {sampler!r} cannot be searched; use one of: {', '.join(SAMPLERS)}")
    return np.broadcast_to(c_x, c_old.shape), np.broadcast_to(c_d, c_old.shape), c_old


def sample(denoise: Denoise, x: torch.Tensor, sigmas: np.ndarray, sampler: str, index: torch.Tensor | None = None,
           visit: Callable[[int, torch.Tensor, torch.Tensor], None] | None = None) -> torch.Tensor:
    """The noise-free part of `sampler` on schedule `sigmas` (descending) from states `x` (float64 result).

    The model sees `x`'s dtype and `index` (default 0..B−1); `visit(k, x_k, D_k)` is called
    after each of its evaluations.
    """
    index = torch.arange(x.shape[0]) if index is None else index
    dtype, x, old = x.dtype, x.to(torch.float64), None
    for k in range(len(sigmas) - 1):
        with torch.no_grad():
            d = denoise(x.to(dtype), torch.full((x.shape[0],), float(sigmas[k])), index).to(torch.float64)
        if not torch.isfinite(d).all():
            raise VRGError(f"the model returned NaN or infinity at sigma {sigmas[k]:.4g}; check the model and its inputs")
        if visit is not None:
            visit(k, x, d)
        prev = sigmas[k - 1] if k > 0 else np.nan
        c_x, c_d, c_old = (float(c) for c in step_coefficients(sampler, prev, sigmas[k], sigmas[k + 1]))
        x = c_x * x + c_d * d + (c_old * old if old is not None and c_old else 0.0)
        old = d
    return x


def batches(count: int, size: int):
    """Sample index ranges of at most `size`, covering 0..count−1 in order."""
    for lo in range(0, count, size):
        yield torch.arange(lo, min(lo + size, count))


@dataclasses.dataclass(frozen=True)
class Teacher:
    """What the search keeps of the teacher trajectories.

    `grid` — σ of the grid points, descending from σ_0, without the final 0 (length G).
    `gram` — [2G, 2G] sums over samples of dot products of the vectors X_0..X_{G−1},
    D_0..D_{G−1} (the teacher's final sample is D_{G−1}). `numel` — samples × dimensions.
    `start` — the B starting states; `final` — the teacher's B final samples (float64).
    `probe` — the first batch's vectors themselves [2G, its samples × dimensions] (float64),
    to compare a checked schedule's states with the teacher's (`check`).
    """

    grid: np.ndarray
    gram: np.ndarray
    numel: int
    start: torch.Tensor
    final: torch.Tensor
    probe: torch.Tensor

    def brackets(self, sigma) -> tuple[np.ndarray, np.ndarray]:
        """(i, f) per σ: it lies a fraction f of the way from grid point i to i + 1, linearly in log σ."""
        position = np.interp(-np.log(sigma), -np.log(self.grid), np.arange(len(self.grid)))
        lower = np.minimum(position.astype(int), len(self.grid) - 2)
        return lower, position - lower


def run_teacher(denoise: Denoise, start: torch.Tensor, grid: np.ndarray, batch_size: int,
                on_eval: Callable[[int], None]) -> Teacher:
    """Solve trajectories from `start` on `grid` (σ descending, then 0) with DPM++2M, `batch_size` at a time.

    Only the Gram matrix of each batch's states and predictions is kept, and the first batch's
    vectors (`Teacher.probe`), so memory is at most 2 × 2G × batch_size latents whatever the
    number of samples.
    """
    G = len(grid)
    gram, finals, probe = np.zeros((2 * G, 2 * G)), [], None
    for index in batches(len(start), batch_size):
        count = len(index)
        vectors = torch.empty((2 * G, count * start[0].numel()), dtype=torch.float64)

        def keep(k: int, x: torch.Tensor, d: torch.Tensor, vectors=vectors, count=count) -> None:
            vectors[k], vectors[G + k] = x.reshape(-1), d.reshape(-1)
            on_eval(count)

        finals.append(sample(denoise, start[index], np.append(grid, 0.0), "dpmpp_2m", index, keep))
        gram += (vectors @ vectors.T).numpy()
        probe = vectors if probe is None else probe
    return Teacher(grid, gram, start.numel(), start, torch.cat(finals), probe)


def step_errors(teacher: Teacher, sampler: str) -> np.ndarray:
    """E[p, a, b]: squared error per dimension of one step a → b after p, against the teacher's state at b.

    Indices are grid points 0..G−1; p = G means "no previous step" (allowed only at a = 0)
    and b = G means σ = 0. Entries breaking p < a < b are +inf.
    """
    G, M = len(teacher.grid), teacher.gram
    sig = np.append(teacher.grid, 0.0)
    p, a, b = np.meshgrid(np.arange(G + 1), np.arange(G), np.arange(G + 1), indexing="ij")
    valid = (a < b) & ((p < a) | ((p == G) & (a == 0)))
    prev_sigma = np.where(p < G, sig[np.minimum(p, G - 1)], np.nan)
    c_x, c_d, c_old = step_coefficients(sampler, prev_sigma, sig[a], sig[b])
    # vector indices: X_m -> m, D_m -> G + m; target X_b, or the teacher's final sample D_{G-1} at b = G
    ix, id_, iold = a, G + a, G + np.minimum(p, G - 1)
    it = np.where(b < G, np.minimum(b, G - 1), 2 * G - 1)
    c_old = np.where(p < G, c_old, 0.0)
    coef = (c_x, c_d, c_old, -np.ones_like(c_x))
    idx = (ix, id_, iold, it)
    err = np.zeros(a.shape)
    with np.errstate(invalid="ignore", over="ignore"):  # invalid entries are masked below
        for i in range(4):
            for j in range(4):
                err += coef[i] * coef[j] * M[idx[i], idx[j]]
    err = np.maximum(err / teacher.numel, 0.0)
    return np.where(valid, err, np.inf)


def error_survival(sigma: np.ndarray, kind: ModelKind, data_variance: float) -> np.ndarray:
    """Share of a squared error made at σ that reaches the final sample along the ODE.

    Exact for Gaussian data of per-dimension variance c²: x_σ = α·x0 + σ·n (α = 1, or
    1 − σ for flow models) is carried to x0 scaled by c/√(α²c² + σ²); so an error at a high
    σ is mostly undone by the remaining steps and one near σ = 0 is kept whole.
    """
    alpha = 1.0 - sigma if kind.is_flow else np.ones_like(sigma)
    return data_variance / (alpha**2 * data_variance + sigma**2)


def best_path(costs: np.ndarray, steps: int) -> list[int]:
    """Grid indices 0 = i_0 < … < i_{steps} = G minimising Σ costs[i_{k−1}, i_k, i_{k+1}] (dynamic programme)."""
    G = costs.shape[1]
    if steps > G:
        raise VRGError(f"{steps} steps need a finer search grid than {G} points")
    f = np.full((G, G + 1), np.inf)  # f[current, previous]: least cost so far
    f[0, G] = 0.0
    back = []
    for k in range(1, steps + 1):
        targets = np.arange(G) if k < steps else np.array([G])
        total = f.T[:, :, None] + costs[:, :, targets]  # [previous, current, next]
        arg = np.argmin(total, axis=0)
        best = np.take_along_axis(total, arg[None], axis=0)[0]  # [current, next]
        f = np.full((G, G + 1), np.inf)
        f[: len(targets), :G] = best.T
        back.append(arg)
    current = int(np.argmin(f[0, :G]))
    if not np.isfinite(f[0, current]):
        raise VRGError(f"no {steps}-step path through the search grid; lower the steps")
    path, nxt = [G, current], 0
    for k in range(steps - 1, 0, -1):
        prev = int(back[k][current, nxt])
        path.append(prev)
        current, nxt = prev, current
    return path[::-1]


@dataclasses.dataclass(frozen=True)
class Objective:
    """Total error of one schedule, per dimension: final-sample error against the teacher + `propagated_variance`."""

    discretisation: float
    variance: float

    @property
    def total(self) -> float:
        return self.discretisation + self.variance


@dataclasses.dataclass(frozen=True)
class SearchResult:
    """The schedule chosen (descending, σ_0 held, ending at 0) and what every candidate measured.

    `chosen` names one of `candidates`; `evaluations` counts model evaluations per sample
    summed over samples (teacher + checks).
    """

    sigmas: np.ndarray
    sampler: str
    steps: int
    chosen: str
    objectives: dict[str, Objective]
    candidates: dict[str, np.ndarray]
    evaluations: int
    samples: int
    grid: int
    variance_weight: float
    model_seconds: float
    search_seconds: float

    def to_record(self) -> dict:
        """A JSON-able record (the bundle's `searched` entries)."""
        return {"sigmas": self.sigmas.tolist(), "sampler": self.sampler, "steps": self.steps, "chosen": self.chosen,
                "objectives": {k: [o.discretisation, o.variance] for k, o in self.objectives.items()},
                "candidates": {k: v.tolist() for k, v in self.candidates.items()},
                "evaluations": self.evaluations, "samples": self.samples, "grid": self.grid,
                "variance_weight": self.variance_weight, "model_seconds": self.model_seconds,
                "search_seconds": self.search_seconds}

    @classmethod
    def from_record(cls, record: dict) -> "SearchResult":
        try:
            return cls(as_schedule(record["sigmas"], "searched sigmas"), str(record["sampler"]), int(record["steps"]),
                       str(record["chosen"]),
                       {k: Objective(float(v[0]), float(v[1])) for k, v in record["objectives"].items()},
                       {k: as_schedule(v, f"{k} sigmas") for k, v in record["candidates"].items()},
                       int(record["evaluations"]), int(record["samples"]), int(record["grid"]),
                       float(record["variance_weight"]), float(record["model_seconds"]),
                       float(record["search_seconds"]))
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise VRGError(f"a stored searched schedule is damaged ({type(e).__name__}: {e}); search again") from None


def cache_settings(table: ErrorTable, base_sigmas, model_fingerprint: str, evaluations: int,
                   variance_weight: float, seed: int, cfg: float) -> dict:
    """What a cached search must have been made with to be reused (the table by content digest)."""
    digest = hashlib.sha256(table_to_bytes(table)).hexdigest()[:16]
    return {"method": METHOD, "table": digest, "model_fingerprint": model_fingerprint,
            "base": as_schedule(base_sigmas).tolist(),
            "evaluations": int(evaluations), "variance_weight": float(variance_weight), "seed": int(seed),
            "cfg": float(cfg)}


def search_grid_size(steps: int, grid_size: int = DEFAULT_GRID) -> int:
    """Points of the teacher grid: `grid_size`, at least two per step."""
    return max(grid_size, 2 * steps)


def refinements(sampler: str) -> int:
    """Checked schedules refined for `sampler`: none for euler_ancestral, whose fresh noise at every step
    takes it too far from the noise-free `linearised_error` (refining made its 5-step cells worse by FD)."""
    return 0 if sampler == "euler_ancestral" else REFINED


def checks(sampler: str) -> int:
    """Schedules sampled per teacher noise: the searched ones, VRG alone, the base and the refined ones."""
    return len(DAMPING) + 2 + refinements(sampler)


def samples_for(evaluations: int, steps: int, sampler: str, grid_size: int = DEFAULT_GRID) -> int:
    """Teacher trajectories affordable: each costs a grid's evaluations and `steps` per checked schedule."""
    return evaluations // (search_grid_size(steps, grid_size) + checks(sampler) * steps)


def search_schedule(
    denoise: Denoise,
    noise: Callable[[int], torch.Tensor],
    base_sigmas,
    table: ErrorTable,
    sampler: str,
    evaluations: int = DEFAULT_EVALUATIONS,
    grid_size: int = DEFAULT_GRID,
    variance_weight: float = DEFAULT_VARIANCE_WEIGHT,
    batch_size: int = 64,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> SearchResult:
    """Search a `len(base_sigmas) − 1`-step schedule for `sampler` on the model behind `denoise`.

    `base_sigmas` — the host's base schedule (descending, ending at 0); its σ_0 is held and
    the other levels are searched between σ_0 and the table's least σ (the model's σ_min
    for a table profiled over the whole range). It and its VRG-alone version (`optimize_sigmas`, start held) are checked beside the searched
    schedules. `noise(B)` gives B starting states at σ_0 exactly as the host's sampler forms
    them (for an empty latent: noise·σ_0 for EPS, noise for flow at σ_0 = 1). At most
    `evaluations` model evaluations (per sample) are spent, `batch_size` samples at a time
    (memory: at most 4·`grid_size` latents per batch sample). Deterministic for deterministic
    `denoise` and `noise`.
    """
    base = as_schedule(base_sigmas, "base sigmas")
    steps = len(base) - 1
    if sampler not in SAMPLERS:
        raise VRGError(f"sampler {sampler!r} cannot be searched; use one of: {', '.join(SAMPLERS)}")
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
    grid_size = search_grid_size(steps, grid_size)
    samples = samples_for(evaluations, steps, sampler, grid_size)
    if samples < MIN_SAMPLES:
        raise VRGError(f"{evaluations} evaluations are too few for {steps} steps on a {grid_size}-point grid; "
                       f"allow at least {MIN_SAMPLES * (grid_size + checks(sampler) * steps)}")
    kind: ModelKind = table.kind
    if not table.sigma_min < base[0]:
        raise VRGError(f"the error table starts at sigma {table.sigma_min:.4g}, above the schedule's start "
                       f"{base[0]:.4g}; use a table profiled over the model's whole noise range")
    grid = noise_level_grid(table.sigma_min, float(base[0]), grid_size, kind)[::-1].copy()
    noise_free = "euler" if sampler == "euler_ancestral" else sampler
    vrg = optimize_sigmas(base, table, start="fixed").sigmas  # also refuses a base outside the table's range
    w, _ = table.interpolate(grid)
    done, planned = [0], samples * (grid_size + checks(sampler) * steps)

    def on_eval(count: int) -> None:
        if should_stop is not None and should_stop():
            raise Cancelled("schedule search cancelled; nothing was saved")
        done[0] += count
        if progress is not None:
            progress(done[0], planned)

    started = time.perf_counter()
    start = noise(samples)
    if start.shape[0] != samples:
        raise VRGError(f"the noise function gave {start.shape[0]} starting states for {samples}")
    teacher = run_teacher(denoise, start, grid, batch_size, on_eval)
    model_seconds = time.perf_counter() - started

    started = time.perf_counter()
    data_variance = float(teacher.final.var(dim=0).mean())
    sig = np.append(grid, 0.0)
    survival = error_survival(sig, kind, data_variance)
    variance = variance_weight * np.subtract.outer(grid, sig) ** 2 * w[:, None] * survival
    errors = step_errors(teacher, noise_free)
    candidates = {f"search@{d:g}": sig[best_path(errors * survival**d + variance, steps)] for d in DAMPING}
    candidates.update(vrg=vrg, base=base)
    search_seconds = time.perf_counter() - started

    objectives: dict[str, Objective] = {}
    measured: list[np.ndarray] = []

    def check_all() -> None:
        for name, sigmas in candidates.items():
            if name in objectives:
                continue
            same = next((k for k in objectives if np.array_equal(candidates[k], sigmas)), None)
            if same is not None:
                objectives[name] = objectives[same]
                continue
            error, response = check(denoise, teacher, sigmas, noise_free, batch_size, on_eval)
            measured.append(response)
            objectives[name] = Objective(error, propagated_variance(sigmas, table, data_variance, variance_weight))

    started = time.perf_counter()
    check_all()
    model_seconds += time.perf_counter() - started
    started = time.perf_counter()
    response = response_curve(np.concatenate(measured), len(grid))
    starts: list[str] = []
    for name in sorted(objectives, key=lambda k: objectives[k].total):
        if len(starts) < refinements(sampler) and not any(np.array_equal(candidates[k], candidates[name]) for k in starts):
            starts.append(name)
    for name in starts:
        candidates[f"refined:{name}"] = refine(candidates[name], teacher, noise_free, response, table,
                                               data_variance, variance_weight)
    search_seconds += time.perf_counter() - started
    started = time.perf_counter()
    check_all()
    model_seconds += time.perf_counter() - started
    if progress is not None:
        progress(planned, planned)  # fewer evaluations than planned when candidates coincide
    chosen = min(objectives, key=lambda k: objectives[k].total)
    return SearchResult(candidates[chosen], sampler, steps, chosen, objectives, candidates, done[0], samples,
                        grid_size, float(variance_weight), model_seconds, search_seconds)


def check(denoise: Denoise, teacher: Teacher, sigmas: np.ndarray, sampler: str, batch_size: int,
          on_eval: Callable[[int], None]) -> tuple[float, np.ndarray]:
    """Sample `sigmas` with the noise-free `sampler` from the teacher's starting states.

    Returns the squared error per dimension against the teacher's final samples, and the
    model's response along the sampler's own deviations, measured on the teacher's first batch:
    one row (grid position, ⟨ΔD, Δx⟩, |Δx|²) per step after the first, where Δx is the state's
    distance to the teacher's state at that σ and ΔD its prediction's (`response_curve`).
    """
    G, total, rows = len(teacher.grid), 0.0, []
    lower, frac = teacher.brackets(sigmas[:-1])
    for n, index in enumerate(batches(len(teacher.start), batch_size)):
        count = len(index)

        def visit(k: int, x: torch.Tensor, d: torch.Tensor, count=count, first=n == 0) -> None:
            on_eval(count)
            if first and k > 0:
                i, f = lower[k], frac[k]
                dx = x.reshape(-1) - ((1 - f) * teacher.probe[i] + f * teacher.probe[i + 1])
                dd = d.reshape(-1) - ((1 - f) * teacher.probe[G + i] + f * teacher.probe[G + i + 1])
                rows.append((i + f, float(dd @ dx), float(dx @ dx)))

        final = sample(denoise, teacher.start[index], sigmas, sampler, index, visit)
        total += float((final - teacher.final[index]).pow(2).sum())
    return total / teacher.numel, np.array(rows, dtype=np.float64).reshape(-1, 3)


def response_curve(rows: np.ndarray, size: int, width: float = RESPONSE_WIDTH) -> np.ndarray:
    """j at each grid point: the least-squares fit of ΔD ≈ j·Δx to the `check` rows, each weighted
    by a Gaussian `width` grid points wide (the nearest row's own ratio where no row is near).

    It is how much of a state error the model's prediction follows at that noise level: about 0
    at high σ (the prediction ignores it), about 1 near σ = 0 (the state is the image).
    """
    t = np.arange(size)[:, None]
    weight = np.exp(-0.5 * ((t - rows[:, 0]) / width) ** 2)
    num, den = weight @ rows[:, 1], weight @ rows[:, 2]
    nearest = rows[np.abs(t - rows[:, 0]).argmin(axis=1)]
    tiny = 1e-12 * max(float(rows[:, 2].max()), 1e-300)
    return np.where(den > tiny, num / np.maximum(den, tiny), nearest[:, 1] / np.maximum(nearest[:, 2], tiny))


def linearised_error(sigmas: np.ndarray, teacher: Teacher, sampler: str, response: np.ndarray) -> float:
    """Squared error per dimension at the final sample of `sampler` on `sigmas`, from the teacher's Gram matrix alone.

    The sampler's state is followed as a combination of the teacher's vectors; the model's
    prediction at it is the teacher's prediction at that σ plus j(σ)·(state − teacher's state)
    (`response_curve`), so an error made early is carried, and partly undone, as the model
    carries it. Teacher vectors between grid points are interpolated linearly in log σ.
    """
    G, s = len(teacher.grid), np.asarray(sigmas, dtype=np.float64)
    lower, frac = teacher.brackets(s[:-1])
    j = np.interp(lower + frac, np.arange(G), response)
    c_x, c_d, c_old = step_coefficients(sampler, np.r_[np.nan, s[:-2]], s[:-1], s[1:])
    state, old = np.zeros(2 * G), np.zeros(2 * G)
    state[0] = 1.0  # X_0: the start is held at the teacher's σ_0
    for k, (i, f) in enumerate(zip(lower, frac)):
        x, d = np.zeros(2 * G), np.zeros(2 * G)
        x[i], x[i + 1], d[G + i], d[G + i + 1] = 1 - f, f, 1 - f, f
        prediction = d + j[k] * (state - x)
        state = c_x[k] * state + c_d[k] * prediction + c_old[k] * old
        old = prediction
    state[2 * G - 1] -= 1.0  # against the teacher's final sample D_{G-1}
    return float(state @ teacher.gram @ state / teacher.numel)


def refine(start: np.ndarray, teacher: Teacher, sampler: str, response: np.ndarray, table: ErrorTable,
           data_variance: float, variance_weight: float) -> np.ndarray:
    """Nelder–Mead from schedule `start` on `linearised_error` + `propagated_variance`, with no model calls.

    The levels between σ_0 (held) and the final 0 move in log σ within the grid's range and
    stay strictly descending; deterministic.
    """
    top, low = float(teacher.grid[0]), float(teacher.grid[-1])

    def schedule(z: np.ndarray) -> np.ndarray:
        return np.r_[top, np.exp(np.sort(np.clip(z, np.log(low), np.log(top)))[::-1]), 0.0]

    def objective(z: np.ndarray) -> float:
        sigmas = schedule(z)
        if not np.all(np.diff(sigmas) < 0):
            return np.inf
        return (linearised_error(sigmas, teacher, sampler, response)
                + propagated_variance(sigmas, table, data_variance, variance_weight))

    result = minimize(objective, np.log(start[1:-1]), method="Nelder-Mead",
                      options={"maxfev": REFINE_EVALUATIONS, "xatol": 1e-3, "fatol": 1e-9})
    return schedule(result.x)


def propagated_variance(sigmas: np.ndarray, table: ErrorTable, data_variance: float, weight: float) -> float:
    """`weight` · Σ_k (σ_k − σ_{k+1})²·w(σ_k)·survival(σ_{k+1}): VRG's CPE terms as they reach the final sample."""
    s = as_schedule(sigmas)
    terms = cumulative_error(s, table).per_step * error_survival(s[1:], table.kind, data_variance)
    return float(weight * terms.sum())
