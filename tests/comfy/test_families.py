"""Every model family ComfyUI users run, over the HTTP API of a real server: the family matrix.

Each family (see `families.py`: ComfyUI's own config, model_base, model_sampling, latent format,
conditioning path and VAE class, tiny random weights; SD3 and Wan written to a file and loaded by the
real UNETLoader, whose detection accepts them small) runs every VRG path as a user wires it:
image set -> the family's VAE -> VAEEncode -> VRG Profile (cfg 2 with a negative) -> Save, then
Load; Optimize Sigmas -> SamplerCustom; VRG Apply -> KSampler `vrg`; VRG Search -> KSampler at its
step count; and denoise < 1 (Optimize Sigmas and the `vrg` KSampler on the encoded images).
Checked: every sampled latent finite, the table's kind and sigma range the model's, sigma_0 the one
the family's own scheduler starts from (Flux-dev shifted by ModelSamplingFlux at the latent's size).
"""

from __future__ import annotations

import functools
import time
import urllib.error

import numpy as np
import pytest
import torch

from comfy_server import http_json
from families import FAMILIES, IMAGES, SIZE
from workflows import Link as L
from workflows import api_prompt

STEPS = 6
CFG = 2.0
DENOISE = 0.6
PATHS = ["profile_save_load", "optimize_samplercustom", "apply_ksampler_vrg", "search_ksampler", "denoise_below_1"]
RESULTS: dict = {}


@pytest.fixture(scope="module", autouse=True)
def print_matrix():
    yield
    if RESULTS:
        print("\nfamily x path (over HTTP):")
        for name in FAMILIES:
            print(f"  {name:15s} " + "  ".join(f"{p}={RESULTS.get((name, p), 'not run')}" for p in PATHS))




def execute(server, nodes: list, timeout: float = 600) -> dict:
    """Post an API prompt, wait for it; its outputs (fails with ComfyUI's message when it fails)."""
    try:
        answer = http_json(f"{server.url}/prompt", {"prompt": api_prompt(nodes), "client_id": "vrg-families"})
    except urllib.error.HTTPError as e:
        pytest.fail(f"ComfyUI refused the prompt: {e.read().decode()[:3000]}")
    deadline = time.monotonic() + timeout
    while True:
        entry = http_json(f"{server.url}/history/{answer['prompt_id']}").get(answer["prompt_id"])
        if entry:
            break
        if time.monotonic() > deadline:
            pytest.fail(f"prompt did not finish in {timeout} s; see {server.log}")
        time.sleep(0.3)
    if entry["status"]["status_str"] != "success":
        errors = [m[1] for m in entry["status"]["messages"] if m[0] == "execution_error"]
        pytest.fail(f"the prompt failed: {errors[0]['node_type']}: {errors[0]['exception_message']}" if errors
                    else str(entry["status"]))
    ids = {key: str(i) for i, (key, _, _) in enumerate(nodes, 1)}
    return {key: entry["outputs"].get(ids[key], {}) for key in ids}


def unet_file(name: str) -> str:
    return f"family_{name}.safetensors"


def model_nodes(name: str) -> tuple[list, L, L]:
    """The family's model, VAE and conditioning nodes (Flux-dev: ModelSamplingFlux at the size, FluxGuidance).

    Families whose small diffusion model ComfyUI's detection accepts (SD3, Wan) are loaded from a file
    by the real UNETLoader; the others come from the test node, built from the same ComfyUI classes.
    """
    family = FAMILIES[name]
    nodes = [("family", "VRGTestFamilyModel", {"family": name, "seed": 0})]
    model, positive = L("family", 0), L("family", 2)
    if family.loader:
        nodes.append(("unet", "UNETLoader", {"unet_name": unet_file(name), "weight_dtype": "default"}))
        model = L("unet")
    if name == "flux_dev":
        nodes += [("shift", "ModelSamplingFlux", {"model": model, "max_shift": 1.15, "base_shift": 0.5,
                                                  "width": SIZE, "height": SIZE}),
                  ("guidance", "FluxGuidance", {"conditioning": positive, "guidance": family.guidance})]
        model, positive = L("shift"), L("guidance")
    return nodes, model, positive


def image_latent_nodes(name: str) -> list:
    family = FAMILIES[name]
    return [("images", "VRGLoadImageSet", {"folder": IMAGES, "count": family.frames or 4, "seed": 0, "width": SIZE,
                                           "height": SIZE}),
            ("encode", "VAEEncode", {"pixels": L("images"), "vae": L("family", 1)})]


def empty_latent(name: str) -> tuple:
    family = FAMILIES[name]
    if family.frames:
        return ("empty", "EmptyHunyuanLatentVideo", {"width": SIZE, "height": SIZE, "length": family.frames,
                                                     "batch_size": 1})
    if family.channels == 16:
        return ("empty", "EmptySD3LatentImage", {"width": SIZE, "height": SIZE, "batch_size": 1})
    return ("empty", "EmptyLatentImage", {"width": SIZE, "height": SIZE, "batch_size": 1})


def table_name(name: str) -> str:
    return f"family_{name}"


@functools.lru_cache(maxsize=None)
def expected_sampling(name: str):
    """The model_sampling the server's model has, built here the same way (seeded, same classes and nodes)."""
    import families
    from comfy_extras.nodes_model_advanced import ModelSamplingFlux

    model = families.model(name)
    if name == "flux_dev":
        model = ModelSamplingFlux().patch(model, 1.15, 0.5, SIZE, SIZE)[0]
    return model.get_model_object("model_sampling")


def base_schedule(name: str, scheduler: str, steps: int, denoise: float = 1.0) -> np.ndarray:
    import comfy.samplers

    ms = expected_sampling(name)
    total = steps if denoise >= 1.0 else int(steps / denoise)
    return comfy.samplers.calculate_sigmas(ms, scheduler, total)[-(steps + 1):].numpy()


def check_latent(out: dict, name: str, what: str) -> None:
    family = FAMILIES[name]
    assert out["finite"] == [True], f"{what}: not finite"
    assert out["shape"][1] == family.channels and len(out["shape"]) == (5 if family.frames else 4), out["shape"]
    assert out["std"][0] > 0, f"{what}: constant output"


def record(name: str, path: str):
    RESULTS[(name, path)] = "FAILED"
    return lambda: RESULTS.__setitem__((name, path), "passed")


@pytest.fixture(scope="module")
def comfy_here(comfy):
    torch.set_num_threads(1)
    return comfy


@pytest.fixture(scope="module")
def profiled(family_server, comfy_here):
    """name -> the profile node's output (profiled and saved on first use)."""
    done = {}

    def get(name: str) -> dict:
        if name not in done:
            if FAMILIES[name].loader:
                import families

                folder = family_server.base / "models" / "diffusion_models"
                folder.mkdir(parents=True, exist_ok=True)
                families.save_diffusion_model(name, folder / unet_file(name))
            nodes, model, positive = model_nodes(name)
            nodes += image_latent_nodes(name) + [
                ("profile", "VRGProfile", {"model": model, "latent": L("encode"), "grid_size": 8,
                                           "samples_per_level": 2, "batch_size": 8, "seed": 0, "cfg": CFG,
                                           "positive": positive, "negative": L("family", 3)}),
                ("save", "VRGSaveErrorTable", {"table": L("profile"), "name": table_name(name)}),
            ]
            done[name] = execute(family_server, nodes)
        return done[name]

    return get


@pytest.mark.parametrize("name", list(FAMILIES))
def test_profile_save_load(family_server, profiled, name):
    passed = record(name, "profile_save_load")
    from vrg_core.parameterization import ModelKind
    from vrg_core.table_io import load_table

    outputs = profiled(name)
    family = FAMILIES[name]
    ms = expected_sampling(name)
    lo, hi = float(ms.sigma_min), float(ms.sigma_max)
    assert outputs["save"]["files"] == [f"{table_name(name)}.safetensors"]
    table = load_table(family_server.base / "models" / "vrg" / f"{table_name(name)}.safetensors")
    assert table.kind.value == family.kind
    assert np.isclose(table.sigma_min, lo, rtol=1e-5) and np.isclose(table.sigma_max, hi, rtol=1e-5)
    assert np.all(np.isfinite(table.sum_mse)) and np.all(table.count > 0) and table.info.cfg == CFG
    loaded = execute(family_server, [("load", "VRGLoadErrorTable", {"name": f"{table_name(name)}.safetensors"}),
                                     ("text", "VRGErrorTableToText", {"table": L("load")}),
                                     ("show", "PreviewAny", {"source": L("text")})])
    assert loaded["show"]["text"][0].startswith("VRG1:")
    label = ModelKind(family.kind).label
    assert loaded["load"]["text"][0].startswith(f"{label} table, sigma {table.sigma_min:.4g}..{hi:.4g}")
    passed()


def sampling_nodes(name: str, sigmas: L, latent: L, key: str) -> list:
    _, model, positive = model_nodes(name)
    return [(f"sampler_{key}", "KSamplerSelect", {"sampler_name": "euler"}),
            (f"sample_{key}", "SamplerCustom", {"model": model, "add_noise": True, "noise_seed": 0, "cfg": CFG,
                                                "positive": positive, "negative": L("family", 3),
                                                "sampler": L(f"sampler_{key}"), "sigmas": sigmas,
                                                "latent_image": latent}),
            (f"check_{key}", "VRGTestLatentCheck", {"latent": L(f"sample_{key}")})]


def ksampler_nodes(name: str, model: L, latent: L, key: str, steps: int, denoise: float = 1.0) -> list:
    _, _, positive = model_nodes(name)
    return [(f"ksampler_{key}", "KSampler", {"model": model, "seed": 0, "steps": steps, "cfg": CFG,
                                             "sampler_name": "euler", "scheduler": "vrg", "positive": positive,
                                             "negative": L("family", 3), "latent_image": latent,
                                             "denoise": denoise}),
            (f"check_{key}", "VRGTestLatentCheck", {"latent": L(f"ksampler_{key}")})]


@pytest.mark.parametrize("name", list(FAMILIES))
def test_optimize_sigmas_then_sampler_custom(family_server, profiled, name):
    passed = record(name, "optimize_samplercustom")
    profiled(name)
    family = FAMILIES[name]
    nodes, model, _ = model_nodes(name)
    nodes += [empty_latent(name),
              ("load", "VRGLoadErrorTable", {"name": f"{table_name(name)}.safetensors"}),
              ("schedule", "BasicScheduler", {"model": model, "scheduler": family.scheduler, "steps": STEPS,
                                              "denoise": 1.0}),
              ("optimize", "VRGOptimizeSigmas", {"sigmas": L("schedule"), "table": L("load"), "gamma": 0.0,
                                                 "start": "fixed", "method": "exact", "interpolation": "loglog",
                                                 "model": model}),
              *sampling_nodes(name, L("optimize"), L("empty"), "custom"),
              ("decode", "VAEDecode", {"samples": L("sample_custom"), "vae": L("family", 1)}),
              ("preview", "PreviewImage", {"images": L("decode")})]
    out = execute(family_server, nodes)
    base, sigmas = np.array(out["optimize"]["base_sigmas"]), np.array(out["optimize"]["sigmas"])
    expected = base_schedule(name, family.scheduler, STEPS)
    assert np.allclose(base, expected, rtol=1e-5), (base, expected)
    assert sigmas[0] == base[0] and np.isclose(sigmas[0], float(expected_sampling(name).sigma_max), rtol=1e-5)
    assert sigmas[-1] == 0 and np.all(np.diff(sigmas) < 0) and np.all(np.isfinite(out["optimize"]["cpe"]))
    check_latent(out["check_custom"], name, "SamplerCustom")
    assert out["preview"]["images"]
    passed()


@pytest.mark.parametrize("name", list(FAMILIES))
def test_apply_then_ksampler_vrg(family_server, profiled, name):
    passed = record(name, "apply_ksampler_vrg")
    profiled(name)
    family = FAMILIES[name]
    nodes, model, _ = model_nodes(name)
    nodes += [empty_latent(name),
              ("load", "VRGLoadErrorTable", {"name": f"{table_name(name)}.safetensors"}),
              ("apply", "VRGApply", {"model": model, "table": L("load"), "base_scheduler": family.scheduler,
                                     "gamma": 0.0, "start": "fixed"}),
              *ksampler_nodes(name, L("apply"), L("empty"), "vrg", STEPS)]
    out = execute(family_server, nodes)
    check_latent(out["check_vrg"], name, "KSampler vrg")
    passed()


def search_defaults(server) -> dict:
    """The VRG+ node's required inputs at their defaults, as the server's schema gives them."""
    info = http_json(f"{server.url}/object_info/VRGSearchSchedule")["VRGSearchSchedule"]["input"]
    defaults = {}
    for name, spec in info["required"].items():
        options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
        if "default" in options:
            defaults[name] = options["default"]
        elif isinstance(spec[0], list) and spec[0]:
            defaults[name] = spec[0][0]
    return defaults


@pytest.mark.parametrize("name", list(FAMILIES))
def test_search_then_ksampler_at_its_steps(family_server, profiled, name):
    passed = record(name, "search_ksampler")
    profiled(name)
    nodes, model, positive = model_nodes(name)
    defaults = search_defaults(family_server)
    search = {**defaults, "model": model, "table": f"{table_name(name)}.safetensors", "latent": L("empty"),
              "cfg": CFG, "positive": positive, "negative": L("family", 3)}
    steps = search["steps"]
    nodes += [empty_latent(name), ("search", "VRGSearchSchedule", search),
              *ksampler_nodes(name, L("search", 1), L("empty"), "search", steps)]
    out = execute(family_server, nodes)
    sigmas = np.array(out["search"]["sigmas"])
    start = base_schedule(name, search["scheduler"], steps)[0]
    # the chosen schedule may be another candidate (a scheduler or shipped table), which never starts higher
    assert len(sigmas) == steps + 1 and sigmas[0] <= start * (1 + 1e-5) and sigmas[-1] == 0
    assert np.all(np.isfinite(out["search"]["held_out_gain"]))
    check_latent(out["check_search"], name, "KSampler after VRG Search")
    passed()


@pytest.mark.parametrize("name", list(FAMILIES))
def test_denoise_below_one(family_server, profiled, name):
    passed = record(name, "denoise_below_1")
    profiled(name)
    family = FAMILIES[name]
    nodes, model, _ = model_nodes(name)
    nodes += [*image_latent_nodes(name),
              ("load", "VRGLoadErrorTable", {"name": f"{table_name(name)}.safetensors"}),
              ("schedule", "BasicScheduler", {"model": model, "scheduler": family.scheduler, "steps": STEPS,
                                              "denoise": DENOISE}),
              ("optimize", "VRGOptimizeSigmas", {"sigmas": L("schedule"), "table": L("load"), "gamma": 0.0,
                                                 "start": "fixed", "method": "exact", "interpolation": "loglog",
                                                 "model": model}),
              *sampling_nodes(name, L("optimize"), L("encode"), "custom"),
              ("apply", "VRGApply", {"model": model, "table": L("load"), "base_scheduler": family.scheduler,
                                     "gamma": 0.0, "start": "fixed"}),
              *ksampler_nodes(name, L("apply"), L("encode"), "vrg", STEPS, DENOISE)]
    out = execute(family_server, nodes)
    base, sigmas = np.array(out["optimize"]["base_sigmas"]), np.array(out["optimize"]["sigmas"])
    expected = base_schedule(name, family.scheduler, STEPS, DENOISE)
    assert np.allclose(base, expected, rtol=1e-5) and sigmas[0] == base[0]
    assert sigmas[0] < 0.999 * float(expected_sampling(name).sigma_max)
    check_latent(out["check_custom"], name, "SamplerCustom, denoise < 1")
    check_latent(out["check_vrg"], name, "KSampler vrg, denoise < 1")
    passed()
