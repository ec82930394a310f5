"""One search for a range of step counts: VRG+ searched at anchor step counts, interpolated between them.

A searched schedule serves the step count it was searched for. A `Family` serves every count of a
`StepRange`: the search runs at its anchors (the lowest count, doubled while at most ¾ of the highest,
and the highest), each an ordinary search with its own out-of-sample choice and cache entry; any other
count gets the two neighbouring anchors' kept schedules resampled to it (`resampled`: log σ linear
in the step's position, as AYS's log-linear interpolation of its tables) and blended in log σ with
a weight linear in log steps. The budget is shared out by `anchor_budgets`. `benchmarks.step_family`
measures a family against a search made for one count alone and against the best other schedule.
All schedules are σ descending, ending at 0.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np

from ..errors import VRGError
from .result import SearchResult
from .samplers import Sampler
from .schedule_search import DEFAULT_EVALUATIONS, MAX_STEPS, MIN_SAMPLES, plan_for

RANGE = re.compile(r"\s*(\d+)\s*(?:[-–]\s*(\d+)\s*)?")
DEFAULT_RANGE = "4-30"
DEFAULT_FAMILY_EVALUATIONS = 2 * DEFAULT_EVALUATIONS  # a 4-30 family at twice one search's default


@dataclasses.dataclass(frozen=True)
class StepRange:
    """The step counts `low`..`high` (inclusive) a family serves."""

    low: int
    high: int

    @classmethod
    def parse(cls, text: str) -> "StepRange":
        """"4-30" (or "4–30"), or one count "8"; VRGError naming the text otherwise."""
        found = RANGE.fullmatch(str(text))
        if found is None:
            raise VRGError(f"step range {text!r}: write the lowest and highest step count, e.g. 4-30, or one count")
        low, high = int(found[1]), int(found[2] or found[1])
        if not 2 <= low <= high <= MAX_STEPS:
            raise VRGError(f"step range {text!r}: the counts must run upwards from 2 to at most {MAX_STEPS}")
        return cls(low, high)

    def anchors(self) -> list[int]:
        """The counts searched: `low`, doubled while at most ¾ of `high`, and `high` (4-30: 4, 8, 16, 30)."""
        counts = [self.low]
        while counts[-1] * 2 <= 0.75 * self.high:  # not one just below `high`
            counts.append(counts[-1] * 2)
        return counts + [self.high] if self.high != self.low else counts

    def __contains__(self, steps: int) -> bool:
        return self.low <= steps <= self.high

    def __str__(self) -> str:
        return f"{self.low}-{self.high}" if self.high != self.low else str(self.low)


def served_range(text: str, steps: int) -> StepRange:
    """The step counts a search serves: `text` ("4-30", one count, or empty for `steps` alone), which must hold
    `steps` (the count a host shows); VRGError naming both otherwise."""
    served = StepRange(steps, steps) if not str(text).strip() else StepRange.parse(text)
    if steps not in served:
        raise VRGError(f"steps {steps} is outside the step range {served}: set steps inside it, or widen the range")
    return served


def least_evaluations(steps: int, sampler: Sampler) -> int:
    """The smallest budget (in 10s) a search of `steps` steps with `sampler` runs with (`plan_for`)."""
    budget = 100
    while plan_for(budget, steps, sampler).samples < MIN_SAMPLES:
        budget += 10
    return budget


def anchor_budgets(anchors: list[int], evaluations: int, sampler: Sampler) -> dict[int, int]:
    """`evaluations` shared out evenly over the anchors' searches, an anchor that needs more (many steps) getting
    its `least_evaluations` and the rest sharing what is left; VRGError when the total is below their least."""
    least = {n: least_evaluations(n, sampler) for n in anchors}
    if sum(least.values()) > evaluations:
        raise VRGError(f"{evaluations} evaluations are too few for searches at {', '.join(map(str, anchors))} steps; "
                       f"allow at least {sum(least.values())}, or serve fewer step counts")
    budgets, left, open_ = {}, evaluations, sorted(anchors, key=least.get, reverse=True)
    while open_ and least[open_[0]] > left // len(open_):
        budgets[open_[0]] = least[open_[0]]
        left -= least[open_.pop(0)]
    return {n: budgets.get(n, left // len(open_) if open_ else 0) for n in anchors}


def resampled(sigmas: np.ndarray, steps: int) -> np.ndarray:
    """`sigmas` as a `steps`-step schedule: log σ of its positive part interpolated linearly in the step's position
    (0 at σ_0, 1 at the last positive σ), then the final 0. σ_0 and the last positive σ are kept exactly."""
    sigmas = np.asarray(sigmas, dtype=np.float64)
    positive = np.log(sigmas[:-1])
    out = np.append(np.exp(np.interp(np.linspace(0.0, 1.0, steps), np.linspace(0.0, 1.0, len(positive)), positive)), 0.0)
    out[0], out[-2] = sigmas[0], sigmas[-2]  # exactly, not through exp(log(.))
    return out


def interpolated(anchors: dict[int, np.ndarray], steps: int) -> np.ndarray:
    """The `steps`-step schedule from anchor schedules {steps: σ}: an anchor's own at its count; else the two
    neighbouring anchors `resampled` to `steps`, blended in log σ with a weight linear in log steps (beyond the
    anchors: the nearest one resampled)."""
    if steps in anchors:
        return np.asarray(anchors[steps], dtype=np.float64).copy()
    counts = sorted(anchors)
    below = max([n for n in counts if n <= steps], default=counts[0])
    above = min([n for n in counts if n >= steps], default=counts[-1])
    a, b = resampled(anchors[below], steps), resampled(anchors[above], steps)
    if below == above:
        return a
    w = (np.log(steps) - np.log(below)) / (np.log(above) - np.log(below))
    out = np.append(np.exp((1 - w) * np.log(a[:-1]) + w * np.log(b[:-1])), 0.0)
    if a[0] == b[0]:
        out[0] = a[0]  # both start at the base's σ_0: held exactly (a kept fixed schedule may start lower)
    return out


@dataclasses.dataclass(frozen=True)
class Family:
    """The anchors' searches {steps: result} of one family search, and the schedule for any count they span."""

    anchors: dict[int, SearchResult]

    @property
    def steps(self) -> StepRange:
        return StepRange(min(self.anchors), max(self.anchors))

    @property
    def evaluations(self) -> int:
        return sum(r.evaluations for r in self.anchors.values())

    def sigmas(self, steps: int) -> np.ndarray:
        """The schedule for `steps` steps; VRGError naming the range when `steps` is outside it."""
        if steps not in self.steps:
            raise VRGError(f"VRG+ was searched for {self.steps} steps, not {steps}: set the steps inside that range, "
                           "or search again with a range that holds them")
        return interpolated({n: r.sigmas for n, r in self.anchors.items()}, steps)

    def source(self, steps: int) -> str:
        """Where the schedule for `steps` comes from, for the node's text."""
        if steps in self.anchors:
            return f"searched at {steps} steps"
        below = max(n for n in self.anchors if n < steps)
        above = min(n for n in self.anchors if n > steps)
        return f"interpolated from the {below}- and {above}-step searches"
