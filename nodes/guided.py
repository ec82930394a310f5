"""Engine work inside ComfyUI's CFGGuider.sample, so patches, LoRAs, ControlNets and CFG apply as when sampling.

VRG Profile and the VRG+ node both run this way: a custom KSAMPLER receives the wrapped
model and hands the engine a plain call `model(x, σ) -> D` (CPU float32 in and out).
"""

from __future__ import annotations

from typing import Any, Callable

import torch

import comfy.samplers

from ..vrg_core.errors import VRGError

# A conditioning entry without a cross-attention tensor: the model runs unconditionally.
UNCONDITIONAL = [[None, {}]]
OTHER = "vrg_other"  # the guider's key of a second prompt's conditioning (`run_guided`)

Call = Callable[..., torch.Tensor]  # (x, σ) -> D; with other=True the second prompt (`run_guided`)


def check_guidance(cfg: float, negative) -> None:
    """Refuse cfg ≠ 1 without a negative conditioning (the guider would mix in nothing)."""
    if cfg != 1.0 and negative is None:
        raise VRGError(f"cfg {cfg:g} mixes in the negative conditioning: connect one, or set cfg to 1")


def run_guided(model, positive, negative, cfg: float, batch: torch.Tensor, sigmas: torch.Tensor, seed: int,
               work: Callable[[Call, Any], Any], other=None) -> Any:
    """`work(call, model_k)` inside `CFGGuider.sample` of `model`; its result.

    `model_k` is the KSAMPLER's wrapped model (`model_k.inner_model` the guider, its
    `.inner_model` the base model); `batch` — latents of the size the guider plans memory for;
    `sigmas` — what the guider is told it samples. Without a positive conditioning the model
    runs unconditionally; a model that cannot is refused with a message. With `other` (a second
    conditioning), `call(x, σ, other=True)` runs the model with it in place of the positive one
    (same negative and cfg).
    """
    out = {}

    def engine(model_k, noise, sigmas, extra_args, callback, disable):
        device, guider = noise.device, model_k.inner_model

        def call(x: torch.Tensor, s: torch.Tensor, other: bool = False) -> torch.Tensor:
            conds = guider.conds
            if other:
                guider.conds = {**conds, "positive": conds[OTHER]}
            try:
                return model_k(x.to(device), s.to(device), **extra_args).float().cpu()
            finally:
                guider.conds = conds

        out["result"] = work(call, model_k)
        return noise

    guider = comfy.samplers.CFGGuider(model)
    conds = {"positive": positive or UNCONDITIONAL, "negative": negative or []}
    guider.inner_set_conds(conds if other is None else {**conds, OTHER: other})
    guider.set_cfg(cfg)
    try:
        guider.sample(torch.zeros_like(batch), batch, comfy.samplers.KSAMPLER(engine), sigmas, disable_pbar=True,
                      seed=seed)
    except (TypeError, AttributeError, RuntimeError) as e:
        if positive is not None:
            raise
        raise VRGError(f"the model failed without conditioning ({e}); connect a positive conditioning") from e
    return out["result"]
