"""One search as a host asks for it, and the one way it runs: cache, memory check, search, store.

A host (the ComfyUI node, the demo host of the command line and the benchmarks) states a
`SearchRequest` — what it offers at this step count — and a `Run`: a function that calls
`search(denoise, start, sampler)` inside its own sampling context (ComfyUI: inside
`CFGGuider.sample`, where the sampler function sees the guider; `sampler` None: the request's
own). `cached_search` owns the rest; `cached_family` runs one per anchor of a step range.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np
import torch

from ..error_table import ErrorTable
from ..memory import check_search_memory
from ..parameterization import ModelKind
from ..profile import Denoise
from .cache import SearchCache, cache_settings, table_digest
from .family import Family, StepRange, anchor_budgets
from .result import SearchResult
from .samplers import Sampler
from .schedule_search import DEFAULT_EVALUATIONS, DEFAULT_VARIANCE_WEIGHT, METHOD, Plan, plan_for, search_schedule

DEFAULT_BATCH = 4  # samples per model call (the search node's default); results depend on it only by rounding
Start = Callable[[int, float], torch.Tensor]  # (count, σ) -> the first `count` starting states at σ
Search = Callable[[Denoise, Start, "Sampler | None"], SearchResult]
Run = Callable[[Search], SearchResult]  # the host calls search(denoise, start, sampler) in its sampling context


@dataclasses.dataclass(frozen=True)
class SearchRequest:
    """What a search is made with. `base` — the KSampler's sigmas for `sampler` at this step count (descending,
    ending at 0; its σ_0 is held); `candidates` — every other schedule the host offers at that step count
    (same convention); `kind`, `sigma_min` — the model's noise process and least σ; `model_fingerprint` —
    its weights' identity (for the cache); `latent_shape` — one latent [C, H, W, …] (for the memory check);
    `seed` — of the search's own noise; `cfg` — the guidance it samples with; `table` / `variance_weight`
    — an optional error table and VRG's term (see `search_schedule`); `prompts` — how many prompts the host
    alternates over the search's noises (1, or 2: the prompt and a second one, e.g. the empty prompt). The
    prompts themselves are not in the cache key: a schedule is reused for every prompt (the VRG+ benchmark's
    transfer table measures how well it holds)."""

    base: np.ndarray
    sampler: Sampler
    candidates: dict[str, np.ndarray]
    kind: ModelKind
    sigma_min: float
    model_fingerprint: str
    latent_shape: tuple[int, ...]
    seed: int
    cfg: float = 1.0
    evaluations: int = DEFAULT_EVALUATIONS
    batch_size: int = DEFAULT_BATCH
    table: ErrorTable | None = None
    variance_weight: float = DEFAULT_VARIANCE_WEIGHT
    prompts: int = 1

    @property
    def steps(self) -> int:
        return len(self.base) - 1

    @property
    def plan(self) -> Plan:
        return plan_for(self.evaluations, self.steps, self.sampler)

    def settings(self) -> dict:
        """What a cached search must have been made with to be reused (`cache_settings`)."""
        return cache_settings(METHOD, self.base, self.candidates, self.sampler.name, self.model_fingerprint,
                              table_digest(self.table), self.evaluations, self.variance_weight, self.seed, self.cfg,
                              self.prompts)


def cached_search(request: SearchRequest, run: Run, cache: SearchCache | None = None,
                  progress: Callable[[int, int], None] | None = None,
                  should_stop: Callable[[], bool] | None = None) -> tuple[SearchResult, bool]:
    """(result, whether it came from `cache`): a search made with the same settings, else a new one — after
    refusing, before any model call, a batch that would not fit in memory — stored in `cache`."""
    settings = request.settings()
    found = cache.find(settings) if cache is not None else None
    if found is not None:
        return found, True
    plan = request.plan
    check_search_memory((1, *request.latent_shape), request.batch_size, plan.grid, plan.samples)

    def search(denoise: Denoise, start: Start, sampler: Sampler | None) -> SearchResult:
        return search_schedule(denoise, start, request.base, sampler or request.sampler, request.kind, request.sigma_min,
                               table=request.table, candidates=request.candidates, evaluations=request.evaluations,
                               variance_weight=request.variance_weight, batch_size=request.batch_size,
                               progress=progress, should_stop=should_stop, seed=request.seed)

    result = run(search)
    if cache is not None:
        cache.store(result, settings)
    return result, False


def cached_family(step_range: StepRange, evaluations: int, sampler: Sampler,
                  request_at: Callable[[int, int], SearchRequest], run_for: Callable[[SearchRequest], Run],
                  cache: SearchCache | None = None, progress: Callable[[int, int], None] | None = None,
                  should_stop: Callable[[], bool] | None = None) -> tuple[Family, int]:
    """(the `Family` serving `step_range`, how many of its anchors came from `cache`). At each anchor the search
    `request_at(steps, budget)` states is run as `cached_search` (each cached on its own), with the anchors'
    share of `evaluations` (`anchor_budgets`, for `sampler`); every request is stated before any model call, so
    bad input is refused first. `progress` counts over the whole family."""
    requests = [request_at(steps, budget) for steps, budget in anchor_budgets(step_range.anchors(), evaluations,
                                                                             sampler).items()]
    planned, done, results, cached = sum(r.evaluations for r in requests), 0, {}, 0
    for request in requests:
        report = None if progress is None else (lambda d, _t, before=done: progress(before + d, planned))
        results[request.steps], hit = cached_search(request, run_for(request), cache, report, should_stop)
        cached, done = cached + hit, done + request.evaluations
    return Family(results), cached
