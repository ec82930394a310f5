"""What the VRG nodes share: the category, the error-table type, common inputs and showing results in the UI."""

from __future__ import annotations

import io as bytes_io
import logging

import numpy as np
import torch
from PIL import Image

import comfy.model_management
from comfy_api.v0_0_2 import io

from ..vrg_core.errors import VRGError
from ..vrg_core.optimize import START_MODES, OptimizeResult
from ..vrg_core.plot import schedule_png

CATEGORY = "sampling/vrg"
ErrorTableIO = io.Custom("VRG_ERROR_TABLE")  # carries a vrg_core ErrorTable


def check_choice(name: str, value, options) -> None:
    """Refuse a combo value that is not offered: ComfyUI (0.3.64) does not check V3 combos of API prompts."""
    if value not in options:
        listed = ", ".join(map(str, options))
        raise VRGError(f"{name} {value!r} is not one of the choices; pick one of: {listed[:300]}")


def stop_if_cancelled() -> bool:
    """`should_stop` for the engine: ComfyUI's own interrupt (the Cancel button) stops long work."""
    comfy.model_management.throw_exception_if_processing_interrupted()
    return False


def png_to_image(png: bytes) -> torch.Tensor:
    """PNG bytes as a ComfyUI IMAGE [1, H, W, 3] in 0..1."""
    rgb = Image.open(bytes_io.BytesIO(png)).convert("RGB")
    return torch.from_numpy(np.asarray(rgb, dtype=np.float32) / 255.0)[None]


def report(cls: type[io.ComfyNode], text: str, warnings: list[str] = (), panel: bool = False, **data: list) -> dict:
    """Log `text` and `warnings`; the node's `ui` dict (`text`: its lines, and any `data` lists), also in the
    prompt's history for API clients.

    `panel`: the node shows its text and a chart of `data` in its own panel (web/vrg_chart.js), so no image is
    previewed on it (its plot stays an IMAGE output) and no progress text is sent; otherwise the text appears
    as the frontend's progress text on the node.
    """
    lines = [text] + [f"WARNING: {w}" for w in warnings]
    for w in warnings:
        logging.warning("[VRG] %s", w)
    for line in text.splitlines():
        logging.info("[VRG] %s", line)
    node_id = cls.hidden.unique_id if cls.hidden is not None else None
    if node_id is not None and not panel:
        from server import PromptServer

        PromptServer.instance.send_progress_text("\n".join(lines), node_id)
    return {"text": lines, **data}


def sampling_model_input() -> io.Model.Input:
    return io.Model.Input("model", tooltip="The model to sample with, LoRAs and patches applied.")


def empty_latent_input() -> io.Latent.Input:
    return io.Latent.Input("latent", tooltip="An Empty Latent Image of the size you generate (its batch is ignored).")


def gamma_input() -> io.Float.Input:
    return io.Float.Input("gamma", default=0.0, min=0.0, max=1.0, step=0.001,
                          tooltip="How far each step may move (the paper's learning portion). "
                                  "0 = auto: 0.05 up to 10 steps, else 0.01.")


def start_input() -> io.Combo.Input:
    return io.Combo.Input("start", options=list(START_MODES), default="fixed",
                          tooltip="fixed: the first sigma stays exactly (the noise is drawn there). "
                                  "paper: the official soft penalty lets it move a little.")


def result_report(cls, result: OptimizeResult, table, warnings: list[str] = (), head: str = "",
                  gamma_auto: bool = True) -> tuple:
    """(SIGMAS, plot IMAGE, ui dict) of an optimisation result; `gamma_auto` — gamma was chosen by the step count."""
    plot = png_to_image(schedule_png(result, table))
    text = (f"{head}{len(result.sigmas) - 1} steps: VRG's error measure (CPE, a proxy, not image quality) "
            f"{result.cpe_before:.4g} -> {result.cpe_after:.4g} ({100 * result.improvement:+.1f} %); gamma "
            f"{result.gamma:g}{' (auto)' if gamma_auto else ''}, start {result.start}, {result.status}")
    ui = report(cls, text, warnings, panel=True, base_sigmas=result.base_sigmas.tolist(),
                sigmas=result.sigmas.tolist(), cpe=[result.cpe_before, result.cpe_after])
    return torch.tensor(result.sigmas, dtype=torch.float32), plot, ui
