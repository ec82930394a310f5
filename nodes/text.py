"""SIGMAS and error tables as text, so a shared workflow carries them without files."""

from __future__ import annotations

import torch

from comfy_api.v0_0_2 import io

from ..vrg_core.objective import as_schedule, schedule_from_text
from ..vrg_core.table_io import table_from_text, table_to_text
from .common import CATEGORY, ErrorTableIO


def sigmas_to_text(sigmas: torch.Tensor) -> str:
    """Comma-separated values; 9 significant digits give back the same float32 SIGMAS."""
    return ", ".join(f"{v:.9g}" for v in sigmas.detach().cpu().float().tolist())


class VRGSigmasToText(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VRGSigmasToText",
            display_name="VRG Sigmas To Text",
            category=CATEGORY,
            description="Writes SIGMAS as comma-separated numbers (exact for float32), to keep or share a schedule.",
            inputs=[io.Sigmas.Input("sigmas", tooltip="The schedule to write out.")],
            outputs=[io.String.Output(display_name="text")],
        )

    @classmethod
    def execute(cls, sigmas) -> io.NodeOutput:
        return io.NodeOutput(sigmas_to_text(sigmas))


class VRGSigmasFromText(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VRGSigmasFromText",
            display_name="VRG Sigmas From Text",
            category=CATEGORY,
            description="Reads SIGMAS from numbers separated by commas or spaces (brackets allowed), e.g. a "
                        "schedule written by VRG Sigmas To Text.",
            inputs=[io.String.Input("text", multiline=True, default="14.6146, 3.8636, 1.3944, 0.4, 0.0292, 0",
                                    tooltip="Decreasing noise levels, first = start (noisiest).")],
            outputs=[io.Sigmas.Output(display_name="sigmas")],
        )

    @classmethod
    def execute(cls, text) -> io.NodeOutput:
        sigmas = torch.tensor(schedule_from_text(text), dtype=torch.float32)
        as_schedule(sigmas, "sigmas text (as float32 SIGMAS)")  # values closer than float32 resolves merge
        return io.NodeOutput(sigmas)


class VRGErrorTableToText(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VRGErrorTableToText",
            display_name="VRG Error Table To Text",
            category=CATEGORY,
            description="Writes an error table as one compact line of text (VRG1:...), so a workflow can carry "
                        "its table in a text widget.",
            inputs=[ErrorTableIO.Input("table", tooltip="The table to write out.")],
            outputs=[io.String.Output(display_name="text")],
        )

    @classmethod
    def execute(cls, table) -> io.NodeOutput:
        return io.NodeOutput(table_to_text(table))


class VRGErrorTableFromText(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VRGErrorTableFromText",
            display_name="VRG Error Table From Text",
            category=CATEGORY,
            description="Reads an error table from the text written by VRG Error Table To Text.",
            inputs=[io.String.Input("text", multiline=True, default="",
                                    tooltip="The whole 'VRG1:...' line of a table.")],
            outputs=[ErrorTableIO.Output(display_name="table")],
        )

    @classmethod
    def execute(cls, text) -> io.NodeOutput:
        return io.NodeOutput(table_from_text(text))


NODES = [VRGSigmasToText, VRGSigmasFromText, VRGErrorTableToText, VRGErrorTableFromText]
