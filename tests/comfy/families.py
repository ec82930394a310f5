"""Tiny models of the families ComfyUI users run, built from ComfyUI's own classes with random weights.

Each family is its `comfy.supported_models` config (shrunk width and depth through its unet_config),
the `model_base` class that config picks (with its model_sampling, latent format and conditioning
path: ADM for SDXL, pooled vectors for SD3/Flux, guidance for Flux-dev), ComfyUI's own `model_type`
rule where one decides the prediction type (SD2-v, Playground-style EDM), and the family's VAE
class: the SD/SDXL/SD3/Flux AutoencoderKL with a small config, Wan 2.1's own WanVAE (ComfyUI fixes
its size). The text encoders are left out (full size only); the conditioning is random tensors of
the shapes the model's conditioning path takes. Weights are seeded, so a server process and the
test process build the same model.
"""

from __future__ import annotations

import dataclasses
import math

import torch


IMAGES = "vrg_family_images"  # the image set's folder in the test server's input/
SIZE = 64  # pixels of images and empty latents: 8 x 8 latents


@dataclasses.dataclass(frozen=True)
class Family:
    config: str  # comfy.supported_models class name
    unet: dict  # its unet_config, shrunk
    kind: str  # the VRG model kind expected
    channels: int  # latent channels
    context: int  # cross-attention width of the conditioning
    pooled: int | None = None  # pooled vector width (SDXL, SD3, Flux)
    markers: tuple = ()  # state-dict keys ComfyUI's model_type() rule reads: (key, tensor builder)
    frames: int = 0  # >0: a video model (5-D latents), frames of the image set / empty latent
    scheduler: str = "normal"  # what the family samples with
    vae: str = "kl"  # "kl" (AutoencoderKL, small config) or "wan" (Wan 2.1 WanVAE)
    guidance: float | None = None  # Flux-dev: FluxGuidance
    loader: bool = False  # ComfyUI's detection accepts this small diffusion model: load it with UNETLoader


def _unet(context: int, *, adm: int | None = None, linear: bool = False, channels: int = 32) -> dict:
    """An SD-style UNetModel config: 2 levels of `channels` and twice that, one res block and transformer each.

    The heads come from the config class (SD1.5: 8 heads; SD2/SDXL: 64 channels a head, so 64 channels).
    """
    config = {"use_checkpoint": False, "image_size": 32, "out_channels": 4, "use_spatial_transformer": True,
              "legacy": False, "adm_in_channels": adm, "in_channels": 4, "model_channels": channels,
              "num_res_blocks": [1, 1], "transformer_depth": [1, 1], "channel_mult": [1, 2],
              "transformer_depth_middle": 1, "use_linear_in_transformer": linear, "context_dim": context,
              "transformer_depth_output": [1, 1, 1, 1], "use_temporal_attention": False,
              "use_temporal_resblock": False}
    if adm is not None:
        config["num_classes"] = "sequential"
    return config


def _v_marker():  # SD20.model_type: std of this bias > 0.09 means v-prediction
    return torch.linspace(-1.0, 1.0, 64)


FAMILIES = {
    "sd15": Family("SD15", _unet(64), "eps", 4, 64),
    "sd2_v": Family("SD20", _unet(64, linear=True, channels=64), "v_prediction",
                    4, 64, markers=(("output_blocks.11.1.transformer_blocks.0.norm1.bias", _v_marker),)),
    "sdxl": Family("SDXL", _unet(64, adm=2816, linear=True, channels=64), "eps",
                   4, 64, pooled=1280, scheduler="karras"),
    "edm_playground": Family("SDXL", _unet(64, adm=2816, linear=True,
                                           channels=64), "edm", 4, 64,
                             pooled=1280, markers=(("edm_mean", lambda: torch.zeros(1, 4, 1, 1)),
                                                   ("edm_std", lambda: torch.ones(1, 4, 1, 1))),
                             scheduler="karras"),
    "sd3": Family("SD3", {"in_channels": 16, "out_channels": 16, "patch_size": 2, "depth": 2, "input_size": None,
                          "adm_in_channels": 64, "pos_embed_max_size": 16, "num_patches": 256,
                          "context_embedder_config": {"target": "torch.nn.Linear",
                                                      "params": {"in_features": 64, "out_features": 128}},
                          "pos_embed_scaling_factor": None, "x_block_self_attn_layers": []},
                  "const", 16, 64, pooled=64, scheduler="simple", loader=True),
    "flux_dev": Family("Flux", {"image_model": "flux", "guidance_embed": True, "in_channels": 16, "out_channels": 16,
                                "vec_in_dim": 64, "context_in_dim": 64, "hidden_size": 64, "mlp_ratio": 2.0,
                                "num_heads": 2, "depth": 1, "depth_single_blocks": 1, "axes_dim": [8, 12, 12],
                                "theta": 10000, "patch_size": 2, "qkv_bias": True},
                       "const", 16, 64, pooled=64, scheduler="simple", guidance=3.5),
    "flux_schnell": Family("FluxSchnell", {"image_model": "flux", "guidance_embed": False, "in_channels": 16,
                                           "out_channels": 16, "vec_in_dim": 64, "context_in_dim": 64,
                                           "hidden_size": 64, "mlp_ratio": 2.0, "num_heads": 2, "depth": 1,
                                           "depth_single_blocks": 1, "axes_dim": [8, 12, 12], "theta": 10000,
                                           "patch_size": 2, "qkv_bias": True},
                           "const", 16, 64, pooled=64, scheduler="simple"),
    # Wan: what ComfyUI's detection reads back from a file (heads = dim / 128, freq 256, text 4096 x 512)
    "wan21": Family("WAN21_T2V", {"image_model": "wan2.1", "model_type": "t2v", "patch_size": (1, 2, 2),
                                  "in_dim": 16, "dim": 128, "ffn_dim": 256, "freq_dim": 256, "out_dim": 16,
                                  "num_heads": 1, "num_layers": 1, "window_size": (-1, -1), "qk_norm": True,
                                  "cross_attn_norm": True, "eps": 1e-6},
                    "const", 16, 4096, frames=5, scheduler="simple", vae="wan", loader=True),
}


def fill_weights(module: torch.nn.Module, seed: int) -> None:
    """Seeded random weights: N(0, 1/fan_in) for matrices and kernels, zero biases, unit norm scales;
    stored buffers ComfyUI leaves empty for the checkpoint to fill (SD3's pos_embed) N(0, 0.02^2)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, b in sorted(module.named_buffers(), key=lambda item: item[0]):
            if name.endswith("pos_embed") and b.is_floating_point():
                b.copy_(0.02 * torch.randn(b.shape, generator=g))
        for name, p in sorted(module.named_parameters(), key=lambda item: item[0]):
            if p.numel() == 0:
                continue
            if p.ndim >= 2:
                fan_in = max(1, p[0].numel())
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(fan_in))
            elif name.endswith("bias"):
                p.zero_()
            else:
                p.fill_(1.0)


def model(name: str, seed: int = 0, dtype: torch.dtype = torch.float32):
    """The family's diffusion model as ComfyUI builds it (config.get_model), in a ModelPatcher.

    `dtype` other than float32: weights stored in it and computed in float32 (ComfyUI's manual cast,
    as it loads fp16 / bf16 / fp8 checkpoints on a CPU).
    """
    import comfy.model_management
    import comfy.model_patcher
    import comfy.supported_models

    family = FAMILIES[name]
    config = getattr(comfy.supported_models, family.config)(dict(family.unet))
    config.set_inference_dtype(dtype, None if dtype == torch.float32 else torch.float32)
    markers = {key: build() for key, build in family.markers}
    base = config.get_model(markers)  # ComfyUI's own model_type() rule reads the markers
    fill_weights(base.diffusion_model, seed)
    return comfy.model_patcher.ModelPatcher(base, load_device=comfy.model_management.get_torch_device(),
                                            offload_device=comfy.model_management.unet_offload_device())


def save_diffusion_model(name: str, path, seed: int = 0) -> None:
    """The family's diffusion model weights as a safetensors file UNETLoader reads (ComfyUI's own writer)."""
    import comfy.utils

    weights = {k: v.contiguous() for k, v in model(name, seed).model.diffusion_model.state_dict().items()}
    comfy.utils.save_torch_file(weights, str(path))


def vae(name: str, seed: int = 1):
    """The family's VAE class (comfy.sd.VAE) with seeded random weights."""
    import comfy.sd

    family = FAMILIES[name]
    if family.vae == "wan":
        from comfy.ldm.wan.vae import WanVAE

        net = WanVAE(dim=96, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
                     temperal_downsample=[False, True, True], dropout=0.0)  # the size comfy.sd.VAE detects
        fill_weights(net, seed)
        return comfy.sd.VAE(sd=net.state_dict())
    from comfy.ldm.models.autoencoder import AutoencoderKL

    params = {"ddconfig": {"double_z": True, "z_channels": family.channels, "resolution": 256, "in_channels": 3,
                           "out_ch": 3, "ch": 32, "ch_mult": [1, 1, 1, 1], "num_res_blocks": 1,
                           "attn_resolutions": [], "dropout": 0.0},
              "embed_dim": family.channels}
    net = AutoencoderKL(**params)
    fill_weights(net, seed)
    return comfy.sd.VAE(sd=net.state_dict(), config={"params": params})


def conditioning(name: str, seed: int) -> list:
    """A CONDITIONING of the shapes the family's conditioning path takes (tokens x context, pooled)."""
    family = FAMILIES[name]
    g = torch.Generator().manual_seed(seed)
    extra = {}
    if family.pooled:
        extra["pooled_output"] = torch.randn((1, family.pooled), generator=g)
    return [[torch.randn((1, 8, family.context), generator=g), extra]]
