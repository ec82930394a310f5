"""A searched schedule as one small JSON file that travels between hosts (ComfyUI, the webui, the CLI).

    {"format": "vrg-schedule", "version": 1, "model_fingerprint": "0123456789abcdef", "kind": "eps",
     "sampler": "euler", "cfg": 7.0, "schedules": {"8": [14.61, …, 0.0], "9": […], …}, "made_by": "…"}

`model_fingerprint` — the weights it was searched on (`fingerprint.fingerprint_weights` of the diffusion
model as loaded); `kind` — that model's noise process; `sampler` — ComfyUI's name of the sampler it was
searched for; `cfg` — the guidance scale it was searched with; `schedules` — one schedule per step count
it serves (σ descending, in the model's own σ, ending at 0; `steps` + 1 values). A host samples it only
on the model with that fingerprint; `ScheduleFile.sigmas` refuses another count by name.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from pathlib import Path

import numpy as np

from .errors import VRGError
from .objective import as_schedule
from .parameterization import ModelKind
from .table_io import read_limited, write_atomic

FORMAT, VERSION = "vrg-schedule", 1
MAX_SCHEDULE_BYTES = 1024 * 1024
FINGERPRINT = re.compile(r"[0-9a-f]{16}")


@dataclasses.dataclass(frozen=True)
class ScheduleFile:
    """What a schedule file holds (see the module docstring); `schedules` {steps: σ}."""

    model_fingerprint: str
    kind: ModelKind
    sampler: str
    cfg: float
    schedules: dict[int, np.ndarray]
    made_by: str = ""

    @property
    def counts(self) -> str:
        """The step counts served, as "4-30" (every count between) or "8, 12"."""
        steps = sorted(self.schedules)
        if steps == list(range(steps[0], steps[-1] + 1)) and len(steps) > 1:
            return f"{steps[0]}-{steps[-1]}"
        return ", ".join(map(str, steps))

    def sigmas(self, steps: int, what: str = "the VRG+ schedule") -> np.ndarray:
        """The schedule for `steps` steps; VRGError naming the counts served otherwise."""
        if steps not in self.schedules:
            raise VRGError(f"{what} was searched for {self.counts} steps, not {steps}: set the steps to one of those, "
                           "or search again for this step count")
        return self.schedules[steps].copy()

    def to_json(self) -> str:
        return json.dumps({"format": FORMAT, "version": VERSION, "model_fingerprint": self.model_fingerprint,
                           "kind": self.kind.value, "sampler": self.sampler, "cfg": self.cfg,
                           "schedules": {str(n): [float(v) for v in s] for n, s in sorted(self.schedules.items())},
                           "made_by": self.made_by}, indent=1)


def schedule_from_json(text: str, what: str = "schedule file") -> ScheduleFile:
    """The `ScheduleFile` in `text`; VRGError naming `what` and the field for anything else."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        raise VRGError(f"{what} is not JSON; give a .json schedule saved by VRG+") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise VRGError(f"{what} is not a VRG+ schedule (no \"format\": \"{FORMAT}\"); give a schedule saved by VRG+")
    if data.get("version") != VERSION:
        raise VRGError(f"{what} is version {data.get('version')!r} of the schedule format, this VRG reads {VERSION}; "
                       "update VRG")
    fingerprint = data.get("model_fingerprint")
    if not isinstance(fingerprint, str) or not FINGERPRINT.fullmatch(fingerprint):
        raise VRGError(f"{what}: model_fingerprint must be 16 hex digits (the model it was searched on), "
                       f"got {fingerprint!r}")
    try:
        kind = ModelKind.parse(str(data.get("kind")))
    except VRGError as e:
        raise VRGError(f"{what}: {e}") from None
    sampler, cfg = data.get("sampler"), data.get("cfg")
    if not isinstance(sampler, str) or not sampler:
        raise VRGError(f"{what}: sampler must name the sampler it was searched for, got {sampler!r}")
    if not isinstance(cfg, (int, float)) or isinstance(cfg, bool) or not math.isfinite(cfg) or cfg < 0:
        raise VRGError(f"{what}: cfg must be a number >= 0, got {cfg!r}")
    raw = data.get("schedules")
    if not isinstance(raw, dict) or not raw:
        raise VRGError(f"{what}: schedules must map step counts to schedules, e.g. {{\"8\": [14.6, …, 0]}}")
    schedules = {}
    for count, sigmas in raw.items():
        if not str(count).isdigit():
            raise VRGError(f"{what}: {count!r} is not a step count")
        steps = int(count)
        s = as_schedule(sigmas, f"{what}, the {steps}-step schedule")
        if len(s) != steps + 1 or s[-1] != 0:
            raise VRGError(f"{what}: the {steps}-step schedule must have {steps + 1} noise levels ending at 0, "
                           f"got {len(s)} ending at {s[-1]:.4g}")
        schedules[steps] = s
    made_by = data.get("made_by", "")
    return ScheduleFile(fingerprint, kind, sampler, float(cfg), schedules, made_by if isinstance(made_by, str) else "")


def save_schedule(schedule: ScheduleFile, path: str | os.PathLike) -> Path:
    """Write atomically: a crash mid-write leaves any previous file at `path` intact."""
    return write_atomic(Path(path), schedule.to_json().encode("utf-8"))


def load_schedule(path: str | os.PathLike) -> ScheduleFile:
    path = Path(path)
    data = read_limited(path, MAX_SCHEDULE_BYTES)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise VRGError(f"schedule file '{path.name}' is not UTF-8 text; give a .json schedule saved by VRG+") from None
    return schedule_from_json(text, f"schedule file '{path.name}'")
