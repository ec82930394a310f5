"""What a search returns, and its JSON record (the cache's entries)."""

from __future__ import annotations

import dataclasses

import numpy as np

from ..errors import VRGError
from ..objective import as_schedule
from .selection import Verdict


SEARCHED = ("dp@", "refined")  # name prefixes of the schedules the search made itself


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
    """The schedule chosen (descending, ending at 0) and what every candidate measured.

    `candidates` — every schedule considered, by name (the host's schedulers and tables, `base`,
    `vrg`, the searched `dp@<damping>` and `refined<round>:…` ones). `screened` — each one's
    final-sample error predicted from the teacher (`refine.linearised_error`, + VRG's term; a refined
    schedule's as its refinement predicted it);
    `objectives` — the measured error, sampled from all `samples` teacher noises, of the ones
    checked. `chosen` names the schedule returned: the one `verdict` kept (the best searched schedule against the
    best fixed one, on held-back noises). `evaluations` counts model evaluations per sample summed over samples.
    """

    sigmas: np.ndarray
    sampler: str
    steps: int
    chosen: str
    objectives: dict[str, Objective]
    screened: dict[str, float]
    candidates: dict[str, np.ndarray]
    evaluations: int
    samples: int
    grid: int
    variance_weight: float
    model_seconds: float
    search_seconds: float
    verdict: Verdict

    @property
    def rival(self) -> str:
        """The measured schedule a user could have picked (not searched here) with the least total: the one to beat."""
        o = self.objectives
        return min((k for k in o if not k.startswith(SEARCHED)), key=lambda k: o[k].total)

    def to_record(self) -> dict:
        """A JSON-able record."""
        return {"sigmas": self.sigmas.tolist(), "sampler": self.sampler, "steps": self.steps, "chosen": self.chosen,
                "objectives": {k: [o.discretisation, o.variance] for k, o in self.objectives.items()},
                "screened": self.screened, "candidates": {k: v.tolist() for k, v in self.candidates.items()},
                "evaluations": self.evaluations, "samples": self.samples,
                "grid": self.grid, "variance_weight": self.variance_weight, "model_seconds": self.model_seconds,
                "search_seconds": self.search_seconds,
                "verdict": self.verdict.to_record()}

    @classmethod
    def from_record(cls, record: dict) -> "SearchResult":
        """The result of `to_record`; VRGError when it is damaged or does not agree with itself."""
        try:
            result = cls(as_schedule(record["sigmas"], "searched sigmas"), str(record["sampler"]),
                         int(record["steps"]), str(record["chosen"]),
                         {k: Objective(float(v[0]), float(v[1])) for k, v in record["objectives"].items()},
                         {k: float(v) for k, v in record["screened"].items()},
                         {k: as_schedule(v, f"{k} sigmas") for k, v in record["candidates"].items()},
                         int(record["evaluations"]), int(record["samples"]),
                         int(record["grid"]), float(record["variance_weight"]), float(record["model_seconds"]),
                         float(record["search_seconds"]),
                         Verdict.from_record(record["verdict"]))
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
            raise VRGError(f"a stored searched schedule is damaged ({type(e).__name__}: {e})") from None
        if len(result.sigmas) != result.steps + 1 or result.chosen not in result.objectives \
                or not np.array_equal(result.candidates.get(result.chosen), result.sigmas):
            raise VRGError(f"a stored searched schedule is damaged: {len(result.sigmas)} sigmas for "
                           f"{result.steps} steps, chosen {result.chosen!r}")
        return result
