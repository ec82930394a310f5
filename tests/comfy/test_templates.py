"""The three checkpoint templates (SD1.5, SDXL, Flux dev: VRG+ search, AFTER and BEFORE) executed end to end over HTTP.

Stand-in weights, at sizes a 2-core CPU runs in seconds (the widgets of latent size, steps and
search budget are lowered; the graph is the template's):

* SD1.5: a checkpoint written with ComfyUI's own `comfy.sd.save_checkpoint` under the name the
  template references (v1-5-pruned-emaonly.safetensors): random weights, ComfyUI's SD1.5 UNet
  shrunk to one level (ComfyUI's detection needs 320 channels and context 768, not the depth), the
  full-size CLIP-L and SD VAE classes. The real CheckpointLoaderSimple detects and loads it.
* SDXL, Flux dev: ComfyUI's checkpoint detection accepts no small file for these (SDXL
  needs its 2.6 B-parameter transformer depth [0, 0, 2, 2, 10, 10] or an SDXL-class variant of
  0.5 B+, plus CLIP-G; Flux fixes its 3072-wide blocks and needs T5-XXL, 4.7 B parameters), so by
  default the loader and the text encoders are replaced by the test family node (`families.py`:
  ComfyUI's SDXL / Flux classes, tiny) and everything after them is the template's graph as shipped.
* With VRG_LARGE_TESTS=1, the SDXL template also runs unchanged through CheckpointLoaderSimple: a 2.7 GB
  checkpoint ComfyUI detects as KOALA_700M (its smallest SDXL-class config: model_base.SDXL,
  SDXL's CLIP-L + CLIP-G, latent format and sampling), about a minute on 2 cores, 6 GB of memory.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from families import FAMILIES, SIZE
from test_families import execute
from workflows import CHECKPOINT_TEMPLATES, TEMPLATE_MODELS, WORKFLOWS, Link

STEPS = 3
SMALL = {"VRGSearchSchedule": {"steps": STEPS, "evaluations": 400, "batch_size": 8,
                               "step_range": ""}, "KSampler": {"steps": STEPS},
         "EmptyLatentImage": {"width": SIZE, "height": SIZE}, "EmptySD3LatentImage": {"width": SIZE, "height": SIZE}}


def shrunk(name: str) -> list:
    """The template's nodes with the size widgets of SMALL (links and every other value as shipped)."""
    return [(key, kind, {**inputs, **SMALL.get(kind, {})}) for key, kind, inputs in WORKFLOWS[name]]


def with_family_loader(nodes: list, family: str) -> list:
    """Replace CheckpointLoaderSimple and CLIPTextEncode by the test family node (same MODEL / VAE outputs)."""
    out, encoders = [("checkpoint", "VRGTestFamilyModel", {"family": family, "seed": 0})], {}
    for key, kind, inputs in nodes:
        if kind == "CLIPTextEncode":
            encoders[key] = 2 if inputs["text"] else 3  # the family's positive / negative conditioning
        elif kind != "CheckpointLoaderSimple":
            out.append((key, kind, inputs))
    rewired = []
    for key, kind, inputs in out:
        fixed = {}
        for name, value in inputs.items():
            if isinstance(value, Link) and value.node == "checkpoint" and value.slot == 2:
                value = Link("checkpoint", 1)  # the family node's VAE output
            elif isinstance(value, Link) and value.node in encoders:
                value = Link("checkpoint", encoders[value.node])
            fixed[name] = value
        rewired.append((key, kind, fixed))
    return rewired


def sd_vae():
    """The SD / SDXL VAE class at its real size (ComfyUI's detection fixes it), seeded random weights."""
    import comfy.sd
    from comfy.ldm.models.autoencoder import AutoencoderKL

    import families

    net = AutoencoderKL(ddconfig={"double_z": True, "z_channels": 4, "resolution": 256, "in_channels": 3,
                                  "out_ch": 3, "ch": 128, "ch_mult": [1, 2, 4, 4], "num_res_blocks": 2,
                                  "attn_resolutions": [], "dropout": 0.0}, embed_dim=4)
    families.fill_weights(net, 1)
    return comfy.sd.VAE(sd=net.state_dict())


def write_checkpoint(path, config_class: str, unet: dict, tokenizer, clip_model, dtype=torch.float32) -> None:
    """A checkpoint written by ComfyUI's own save_checkpoint: the config's UNet, a text encoder, the SD VAE."""
    import comfy.model_management as mm
    import comfy.model_patcher
    import comfy.sd
    import comfy.supported_models
    import comfy.supported_models_base

    import families

    config = getattr(comfy.supported_models, config_class)(unet)
    config.set_inference_dtype(dtype, None if dtype == torch.float32 else torch.float32)
    base = config.get_model({})
    families.fill_weights(base.diffusion_model, 0)
    model = comfy.model_patcher.ModelPatcher(base, load_device=mm.get_torch_device(),
                                             offload_device=mm.unet_offload_device())
    clip = comfy.sd.CLIP(comfy.supported_models_base.ClipTarget(tokenizer, clip_model))
    families.fill_weights(clip.cond_stage_model, 2)
    comfy.sd.save_checkpoint(str(path), model, clip, sd_vae())


def write_sd15_checkpoint(path) -> None:
    """Detected as SD1.5: a one-level UNet of 320 channels and context 768 (what detection matches on), CLIP-L."""
    import comfy.sd1_clip

    import families

    unet = families._unet(768, channels=320)
    unet.update({"channel_mult": [1], "num_res_blocks": [1], "transformer_depth": [1],
                 "transformer_depth_output": [1, 1]})
    write_checkpoint(path, "SD15", unet, comfy.sd1_clip.SD1Tokenizer, comfy.sd1_clip.SD1ClipModel)


def write_sdxl_class_checkpoint(path) -> None:
    """Detected as KOALA_700M, the smallest SDXL-class config in ComfyUI (model_base.SDXL, SDXL's CLIP-L + CLIP-G,
    latent format and sampling): 0.5 B UNet parameters in fp16, 0.8 B of text encoders."""
    import comfy.sdxl_clip

    import families

    unet = families._unet(2048, adm=2816, linear=True, channels=320)
    unet.update({"channel_mult": [1, 2, 4], "num_res_blocks": [1, 1, 1], "transformer_depth": [0, 2, 5],
                 "transformer_depth_middle": -1, "transformer_depth_output": [0, 0, 1, 1, 1, 1]})
    write_checkpoint(path, "KOALA_700M", unet, comfy.sdxl_clip.SDXLTokenizer, comfy.sdxl_clip.SDXLClipModel,
                     torch.float16)


def checkpoint_path(server, family: str):
    """Where the template for `family` looks for its checkpoint in `server`'s models folder (one torch thread)."""
    torch.set_num_threads(1)
    folder = server.base / "models" / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / TEMPLATE_MODELS[family]


@pytest.fixture(scope="module")
def sd15_checkpoint(family_server, comfy):
    path = checkpoint_path(family_server, "sd15")
    write_sd15_checkpoint(path)
    return path


def check_template_run(out: dict) -> None:
    """The search ran (a schedule of STEPS steps from the base's start to 0, within budget, closest of what it measured)
    and both branches saved an image."""
    searched = out["search"]
    base, sigmas = np.array(searched["base_sigmas"]), np.array(searched["sigmas"])
    assert len(sigmas) == STEPS + 1 and sigmas[0] == base[0] and sigmas[-1] == 0 and np.all(np.diff(sigmas) < 0)
    assert 0 < searched["evaluations"][0] <= 400
    gain, low, high = searched["held_out_gain"]
    assert low <= gain <= high and "noises the search did not fit" in searched["text"][0]
    assert len(out["save"]["images"]) == 1 and len(out["save_before"]["images"]) == 1


def test_sd15_template_through_the_real_checkpoint_loader(family_server, sd15_checkpoint):
    out = execute(family_server, shrunk(CHECKPOINT_TEMPLATES["sd15"]))
    check_template_run(out)
    assert np.isclose(out["search"]["sigmas"][0], 14.6146, rtol=1e-4)  # SD1.5's karras start


@pytest.mark.parametrize("family, stand_in, kind", [("sdxl", "sdxl", "eps"), ("flux", "flux_dev", "const")])
def test_sdxl_and_flux_templates_after_a_stand_in_loader(family_server, family, stand_in, kind):
    assert FAMILIES[stand_in].kind == kind
    out = execute(family_server, with_family_loader(shrunk(CHECKPOINT_TEMPLATES[family]), stand_in))
    check_template_run(out)


@pytest.mark.skipif(os.environ.get("VRG_LARGE_TESTS") != "1",
                    reason="writes a 2.7 GB SDXL-class checkpoint (1.3 B parameters); set VRG_LARGE_TESTS=1")
def test_sdxl_template_through_the_real_checkpoint_loader(family_server, comfy):
    """sd_xl_base_1.0.safetensors as an SDXL-class checkpoint ComfyUI detects (KOALA_700M): the template unchanged."""
    path = checkpoint_path(family_server, "sdxl")
    write_sdxl_class_checkpoint(path)
    try:
        out = execute(family_server, shrunk(CHECKPOINT_TEMPLATES["sdxl"]), timeout=1800)
    finally:
        path.unlink()
    check_template_run(out)
    assert np.isclose(out["search"]["sigmas"][0], 14.6146, rtol=1e-4)
