"""VRG+ schedule files (models/vrg/schedules/*.json, `vrg_core.schedule_file`): the VRG+ node saves one, and
VRG Load Searched Schedule serves one on the model it was searched on. The webui extension reads the same files."""

from __future__ import annotations

import os
from pathlib import Path

import folder_paths
import torch
from comfy_api.v0_0_2 import io

from ..vrg_core.errors import VRGError
from ..vrg_core.schedule_file import ScheduleFile, load_schedule, save_schedule
from .common import CATEGORY, check_choice, report
from .host import covered_samplers, model_kind
from .model_identity import fingerprint
from .tables import FOLDER, save_path
from .vrg_scheduler import Searched, Settings, with_settings

SCHEDULES = "vrg_schedules"  # ComfyUI's name of models/vrg/schedules/


def register_folder() -> None:
    """models/vrg/schedules/ as a ComfyUI model folder for .json schedule files (kept as configured if set)."""
    paths, _ = folder_paths.folder_names_and_paths.get(SCHEDULES, ([], set()))
    default = os.path.join(folder_paths.models_dir, FOLDER, "schedules")
    folder_paths.folder_names_and_paths[SCHEDULES] = (paths or [default], {".json"})


def schedule_path(name: str) -> Path:
    """Where schedule `name` is saved: models/vrg/schedules/<name>.json, never outside that folder."""
    return save_path(name, "schedule", ".json", SCHEDULES)


def save_searched(path: Path, model, searched: Searched, made_by: str) -> Path:
    """`searched` (every step count it serves) as file `path`, for the model it was searched on."""
    kind = model_kind(model.get_model_object("model_sampling"))
    schedules = {n: s.double().numpy() for n, s in searched.schedules.items()}
    return save_schedule(ScheduleFile(fingerprint(model), kind, searched.sampler, searched.cfg, schedules, made_by), path)


def searched_for(model, schedule: ScheduleFile, name: str) -> Searched:
    """The schedules of file `name` for `model`; VRGError naming both when it was searched on another model."""
    kind = model_kind(model.get_model_object("model_sampling"))
    if schedule.kind != kind:
        raise VRGError(f"schedule '{name}' was searched on a {schedule.kind.label} model but this model is "
                       f"{kind.label}; load a schedule searched on this model, or search one (VRG+)")
    this = fingerprint(model)
    if schedule.model_fingerprint != this:
        raise VRGError(f"schedule '{name}' was searched on another model (fingerprint {schedule.model_fingerprint}) "
                       f"than this one (fingerprint {this}); the same checkpoint in another precision also differs. "
                       "Load a schedule searched on this model, or search one (VRG+)")
    check_choice(f"schedule '{name}': sampler", schedule.sampler, covered_samplers())
    return Searched(schedule.sampler, schedule.cfg,
                    {n: torch.tensor(s, dtype=torch.float32) for n, s in sorted(schedule.schedules.items())})


class VRGLoadSearchedSchedule(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VRGLoadSearchedSchedule",
            display_name="VRG Load Searched Schedule",
            category=CATEGORY,
            description="A VRG+ schedule saved with the VRG+ node's save_as (or the CLI's search --save), "
                        "from models/vrg/schedules/: served on the model it was searched on, and refused on any "
                        "other. The model output makes the 'vrg' scheduler serve every step count it holds.",
            inputs=[
                io.Model.Input("model", tooltip="The model the schedule was searched on (its weights' fingerprint "
                                                "is checked)."),
                io.Combo.Input("schedule", options=folder_paths.get_filename_list(SCHEDULES),
                               tooltip="A schedule file in models/vrg/schedules/."),
                io.Int.Input("steps", default=8, min=1, max=1000,
                             tooltip="The step count whose schedule the sigmas output gives; the file must hold it."),
            ],
            outputs=[io.Sigmas.Output(display_name="sigmas"), io.Model.Output(display_name="model")],
        )

    @classmethod
    def fingerprint_inputs(cls, model, schedule, steps):
        path = folder_paths.get_full_path(SCHEDULES, schedule)
        return None if path is None else (Path(path).stat().st_mtime_ns, steps)

    @classmethod
    def execute(cls, model, schedule, steps) -> io.NodeOutput:
        path = folder_paths.get_full_path(SCHEDULES, schedule)
        if path is None:
            raise VRGError(f"schedule {schedule!r} is not in models/{FOLDER}/schedules/; refresh the list or save it "
                           "again")
        loaded = load_schedule(path)
        searched = searched_for(model, loaded, schedule)
        sigmas = loaded.sigmas(steps, f"schedule '{schedule}'")
        patched = with_settings(model, Settings(None, "", "auto", "fixed", searched))
        text = (f"{schedule}: {searched.sampler}, {searched.steps} steps, cfg {searched.cfg:g}, searched on this "
                f"model ({loaded.model_fingerprint})" + (f"; {loaded.made_by}" if loaded.made_by else ""))
        return io.NodeOutput(torch.tensor(sigmas, dtype=torch.float32), patched, ui=report(cls, text, []))


NODES = [VRGLoadSearchedSchedule]
