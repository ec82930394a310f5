"""What every VRG node shares: the category, the error-table type and showing results in the UI."""

from __future__ import annotations

import io as bytes_io
import logging

import numpy as np
import torch
from PIL import Image

import comfy.model_management
from comfy_api.v0_0_2 import io, ui

from ..vrg_core.errors import VRGError

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


def report(cls: type[io.ComfyNode], text: str, warnings: list[str] = (), image: torch.Tensor | None = None,
           **data: list) -> dict:
    """Show `text` and `warnings` on the running node and in the log; the node's `ui` dict.

    The text appears on the node in ComfyUI's frontend (its progress-text line) and, with
    `image` as a preview and any `data` lists, in the prompt's history for API clients.
    """
    lines = [text] + [f"WARNING: {w}" for w in warnings]
    for w in warnings:
        logging.warning("[VRG] %s", w)
    logging.info("[VRG] %s", text)
    node_id = cls.hidden.unique_id if cls.hidden is not None else None
    if node_id is not None:
        from server import PromptServer

        PromptServer.instance.send_progress_text("\n".join(lines), node_id)
    out = {"text": lines, **data}
    if image is not None:
        out.update(ui.PreviewImage(image, cls=cls).as_dict())
    return out
