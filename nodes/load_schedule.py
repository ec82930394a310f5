"""VRG Load Schedule: a bundled optimised schedule (precomputed, or optimised now from the bundled table)."""

from __future__ import annotations

from types import SimpleNamespace

import comfy.model_sampling
import comfy.samplers
from comfy_api.v0_0_2 import io

from ..vrg_core.bundle import bundled_entry, bundled_schedule, list_bundled_tables, load_bundled_table
from ..vrg_core.errors import VRGError
from ..vrg_core.parameterization import ModelKind
from .common import CATEGORY, ErrorTableIO, check_choice, result_report
from .host import base_scheduler_names
from .model_identity import table_warnings

_SAMPLINGS = {"discrete": comfy.model_sampling.ModelSamplingDiscrete,
              "discrete_flow": comfy.model_sampling.ModelSamplingDiscreteFlow}
_PREDICTIONS = {ModelKind.EPS: comfy.model_sampling.EPS, ModelKind.V_PREDICTION: comfy.model_sampling.V_PREDICTION,
                ModelKind.EDM: comfy.model_sampling.EDM, ModelKind.CONST: comfy.model_sampling.CONST}


def spec_model_sampling(kind: ModelKind, sampling: dict):
    """A host `model_sampling` rebuilt from a bundle entry's `sampling` spec (no model needed)."""
    if sampling.get("type") not in _SAMPLINGS:
        raise VRGError(f"bundled sampling type {sampling.get('type')!r} is unknown; update the node pack")

    class ModelSampling(_SAMPLINGS[sampling["type"]], _PREDICTIONS[kind]):
        pass

    return ModelSampling(SimpleNamespace(sampling_settings=dict(sampling.get("settings", {}))))


def spec_base_schedule(kind: ModelKind, sampling: dict, scheduler: str, steps: int):
    """ComfyUI's `scheduler` sigmas for a bundle entry's model (`vrg_core.bundle.BaseSchedule`)."""
    return comfy.samplers.calculate_sigmas(spec_model_sampling(kind, sampling), scheduler, steps)


class VRGLoadSchedule(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VRGLoadSchedule",
            display_name="VRG Load Schedule",
            category=CATEGORY,
            description="An optimised schedule from a table bundled with the node pack, for any scheduler and step "
                        "count: precomputed where bundled, otherwise optimised now from the bundled table.",
            inputs=[
                io.Combo.Input("schedule", options=list_bundled_tables(),
                               tooltip="The bundled table (a model family) to use."),
                io.Combo.Input("base_scheduler", options=base_scheduler_names(), default="karras",
                               tooltip="The scheduler whose sigmas are optimised."),
                io.Int.Input("steps", default=10, min=1, max=1000, tooltip="Sampling steps."),
                io.Model.Input("model", optional=True,
                               tooltip="Optional: your model, to build the base schedule from it and warn if the "
                                       "bundled table was measured on another model."),
            ],
            outputs=[io.Sigmas.Output(display_name="sigmas"), ErrorTableIO.Output(display_name="table"),
                     io.Image.Output(display_name="plot")],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def execute(cls, schedule, base_scheduler, steps, model=None) -> io.NodeOutput:
        check_choice("base_scheduler", base_scheduler, base_scheduler_names())
        table = load_bundled_table(schedule)
        if model is None:
            entry = bundled_entry(schedule)
            warnings = [f"no model connected, so this schedule was not checked against yours: it is for "
                        f"{table.kind.label} models ({entry['model']}, sigma {entry['sigma_max']:.4g} to "
                        f"{entry['sigma_min']:.4g}); connect your model to check it"]
            base = spec_base_schedule(table.kind, entry["sampling"], base_scheduler, steps)
        else:
            warnings = table_warnings(table, model)
            base = comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), base_scheduler, steps)
        result = bundled_schedule(schedule, base_scheduler, steps, base)
        sigmas, plot, ui = result_report(cls, result, table, warnings, head=f"{schedule} {base_scheduler}: ")
        return io.NodeOutput(sigmas, table, plot, ui=ui)


NODES = [VRGLoadSchedule]
