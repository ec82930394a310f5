"""VRG+: a schedule searched on the model itself for the error at the final sample.

`schedule_search.search_schedule` is the search (its stages are described there); a host asks
for one with a `request.SearchRequest` and runs it through `request.cached_search`, which owns
the plan, the cache and the memory check; `family.Family` serves a range of step counts from
searches at a few of them (`request.cached_family`).
"""

from .cache import SearchCache, cache_settings
from .coefficients import step_coefficients
from .path import best_path, step_errors
from .refine import linearised_error, mismatch_curve, refine, response_curve
from .family import Family, StepRange
from .request import DEFAULT_BATCH, Run, SearchRequest, Start, cached_family, cached_search
from .result import Objective, SearchResult
from .samplers import SAMPLERS, Sampler, as_sampler, sample
from .schedule_search import (DEFAULT_EVALUATIONS, DEFAULT_GRID, DEFAULT_VARIANCE_WEIGHT, MAX_STEPS, METHOD, Plan,
                              plan_for, search_schedule)
from .survival import error_survival, propagated_variance
from .teacher import Teacher, check, run_teacher

__all__ = ["SAMPLERS", "Sampler", "as_sampler", "METHOD", "MAX_STEPS", "DEFAULT_EVALUATIONS",
           "DEFAULT_VARIANCE_WEIGHT", "DEFAULT_GRID", "SearchCache", "SearchResult", "Objective", "Teacher",
           "cache_settings", "search_schedule", "plan_for", "Plan", "run_teacher", "check", "sample",
           "step_coefficients", "step_errors", "best_path", "linearised_error", "refine", "response_curve", "mismatch_curve",
           "propagated_variance", "error_survival", "SearchRequest", "cached_search", "cached_family", "Family", "StepRange",
           "Run", "Start", "DEFAULT_BATCH"]
