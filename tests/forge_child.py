"""One case of test_forge.py, in a process of its own: Forge's own `k_diffusion` must be the only one there.

    python tests/forge_child.py FORGE_PATH MODELS_PATH CASE_JSON

Loads Forge's real `modules/sd_schedulers.py` (after `k_diffusion.sampling`, as Forge's start-up
does), runs scripts/vrg_schedulers.py as the webui does, then calls the scheduler `case["label"]`
as `KDiffusionSampler.get_sigmas` does, with `inner_model` Forge's `ForgeScheduleLinker` around its
real predictor `case["predictor"]` (`backend.modules.k_prediction`), `.inner_model` the webui's
model: `forge_objects.unet.model` (stand-in for Forge's UnetPatcher's model) holds a TinyUNet with
the checkpoint `case["weights"]`, and LoRA'd weights with their originals in `lora_loader.backup`
when `case["lora"]`. Prints one JSON line: {"kind", "sigmas"} or {"kind", "error"}; with `case["search"]`,
two generations with VRG+ on, searched through Forge's own sampler functions (`search_in_forge`); with
`case["every_sampler"]`, VRG+ with each of Forge's k-diffusion samplers (`every_sampler_in_forge`).
"""

import importlib.machinery
import importlib.util
import json
import sys
import types
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def load_forge(forge: str, models_path: str):
    sys.path[:0] = [forge, str(REPO), str(REPO / "tests")]
    spec = importlib.machinery.ModuleSpec("k_diffusion", None, is_package=True)  # Forge's k_diffusion: a folder
    spec.submodule_search_locations = [str(Path(forge) / "k_diffusion")]  # without __init__ (a namespace package)
    sys.modules["k_diffusion"] = importlib.util.module_from_spec(spec)
    shared = types.ModuleType("modules.shared")  # stand-in: only what the script reads
    shared.models_path = models_path
    sys.modules["modules.shared"] = shared
    importlib.import_module("k_diffusion.sampling")
    importlib.import_module("k_diffusion.external")
    sd_schedulers = importlib.import_module("modules.sd_schedulers")
    assert Path(sd_schedulers.__file__).resolve() == (Path(forge) / "modules" / "sd_schedulers.py").resolve()
    script = importlib.util.spec_from_file_location("vrg_schedulers", REPO / "scripts" / "vrg_schedulers.py")
    module = importlib.util.module_from_spec(script)
    script.loader.exec_module(module)
    return sd_schedulers, module


def forge_inner_model(case: dict):
    import safetensors.torch
    import torch
    from backend.modules import k_prediction
    from k_diffusion.external import ForgeScheduleLinker
    from webui_parts import TinyUNet

    predictor = {"eps": lambda: k_prediction.Prediction(prediction_type="epsilon"),
                 "v": lambda: k_prediction.Prediction(prediction_type="v_prediction"),
                 "flux": k_prediction.PredictionFlux}[case["predictor"]]()
    unet = TinyUNet()
    unet.load_state_dict(safetensors.torch.load_file(case["weights"]))
    backup = {}
    if case.get("lora"):
        backup = {f"diffusion_model.{k}": v.detach().clone() for k, v in unet.state_dict().items()}
        with torch.no_grad():
            for parameter in unet.parameters():
                parameter.add_(0.5)
    patched = types.SimpleNamespace(diffusion_model=unet, predictor=predictor,
                                    lora_loader=types.SimpleNamespace(backup=backup))
    linker = ForgeScheduleLinker(predictor)
    linker.inner_model = types.SimpleNamespace(forge_objects=types.SimpleNamespace(unet=types.SimpleNamespace(model=patched)))
    return linker


def forge_predict(linker):
    """D(x, σ, text) of the case's model through Forge's predictor, as its sampling_function applies it."""
    from webui_parts import text_eps

    predictor, unet = linker.predictor, linker.inner_model.forge_objects.unet.model.diffusion_model

    def predict(x, sigma, text):
        eps = text_eps(unet, predictor.calculate_input(sigma, x), predictor.timestep(sigma), text)
        return predictor.calculate_denoised(sigma, eps, x)

    return predict


def forge_samplers(forge: str) -> list:
    """Forge's own `samplers_k_diffusion` (label, function name, aliases, options), read from its
    `modules/sd_samplers_kdiffusion.py` (which imports Forge's whole runtime); a function given by object rather
    than by name (Restart) becomes that object's dotted name, not a `sample_…` name."""
    import ast

    tree = ast.parse((Path(forge) / "modules" / "sd_samplers_kdiffusion.py").read_text())
    listed = next(node.value for node in tree.body if isinstance(node, ast.Assign)
                  and getattr(node.targets[0], "id", None) == "samplers_k_diffusion")
    found = []
    for entry in listed.elts:
        label, funcname, aliases, options = entry.elts
        name = funcname.value if isinstance(funcname, ast.Constant) else ast.unparse(funcname)
        found.append((ast.literal_eval(label), name if isinstance(funcname, ast.Constant) else ("by object", name),
                      ast.literal_eval(aliases), ast.literal_eval(options)))
    return found


def every_sampler_in_forge(sd_schedulers, module, forge: str, models_path: str, case: dict) -> dict:
    """`case["every_sampler"]`: for each of Forge's k-diffusion samplers, VRG+ on (4 steps, Karras, CFG 4, 1500
    evaluations, Forge's own Brownian paths) then its sampling: {label: {"ran", "seen", "searched", "pathwise"} or
    {"error"}}."""
    import k_diffusion.sampling
    import torch
    from webui_parts import KDiffusionSampler, LatentShape, Processing, State

    from vrg_core.errors import VRGError
    from vrg_webui.search import WebuiParts, k_diffusion_paths

    linker = forge_inner_model(case)
    predictor, predict = linker.predictor, forge_predict(linker)
    samplers, out = forge_samplers(forge), {}
    for index, (label, funcname, _, options) in enumerate(samplers):
        state, folder = State(), Path(models_path) / str(index)
        parts = WebuiParts(state, None, sd_schedulers.schedulers, samplers, torch.device("cpu"), folder, lambda _: None,
                           k_diffusion_paths(k_diffusion.sampling.BrownianTreeNoiseSampler))
        runs = funcname if isinstance(funcname, str) and hasattr(k_diffusion.sampling, funcname) else "sample_euler"
        sampler = KDiffusionSampler(runs, options, linker, predict, state, sd_schedulers.schedulers_map,
                                    k_diffusion.sampling, lambda sigma, noise: predictor.noise_scaling(sigma, noise, 0))
        p = Processing(sampler, label, "Karras", 4, 4.0, torch.full((1, 4), 0.5), torch.zeros(1, 4), LatentShape(4, 8, 8))
        try:
            module.vrg_plus_process(p, True, 1500, parts)
        except VRGError as e:
            out[label] = {"error": str(e)}
            continue
        _, ran = sampler.sample(p, torch.randn((1, 4, 8, 8), generator=torch.Generator().manual_seed(1)))
        cache = json.loads((folder / "vrg" / "vrg_search_cache.json").read_text())
        out[label] = {"ran": ran.tolist(), "seen": sampler.model_wrap_cfg.seen,
                      "searched": [r["sigmas"] for r in cache["searches"].values()],
                      "pathwise": [r["verdict"]["pathwise"] for r in cache["searches"].values()]}
    return out


def search_in_forge(sd_schedulers, module, models_path: str, case: dict) -> dict:
    """`case["search"]`: two txt2img generations with the VRG+ accordion on (sampler `case["sampler"]`, Forge's own
    k_diffusion function; 5 steps, Karras, CFG 4), the second with another prompt: {"ran": the schedule each
    sampled, "seen": the σ of the first one's sampling calls, "searched": the cached schedule, "lines": the
    console lines, "calls": model calls of each generation, "sigma_max": the predictor's}."""
    import json as json_module
    import types as types_module

    import k_diffusion.sampling
    import torch
    from webui_parts import SAMPLERS_K_DIFFUSION, KDiffusionSampler, LatentShape, Processing, State

    from vrg_webui.search import WebuiParts

    linker = forge_inner_model(case)
    predictor, predict = linker.predictor, forge_predict(linker)
    state, lines, out = State(), [], {"ran": [], "calls": []}
    parts = WebuiParts(state, types_module.SimpleNamespace(sgm_noise_multiplier=False), sd_schedulers.schedulers,
                       SAMPLERS_K_DIFFUSION, torch.device("cpu"), Path(models_path), lines.append)
    label, funcname, _, options = next(s for s in SAMPLERS_K_DIFFUSION if s[0] == case["sampler"])
    for prompt in (0.5, -0.5):
        sampler = KDiffusionSampler(funcname, options, linker, predict, state, sd_schedulers.schedulers_map,
                                    k_diffusion.sampling,
                                    lambda sigma, noise: predictor.noise_scaling(sigma, noise, torch.zeros_like(noise)))
        p = Processing(sampler, label, "Karras", 5, 4.0, torch.full((1, 4), prompt), torch.zeros(1, 4),
                       LatentShape(4, 8, 8))
        before = state.calls
        module.vrg_plus_process(p, True, 1000, parts)
        _, ran = sampler.sample(p, torch.randn((1, 4, 8, 8), generator=torch.Generator().manual_seed(1)))
        out["ran"].append(ran.tolist())
        out["calls"].append(state.calls - before)
        out.setdefault("seen", sampler.model_wrap_cfg.seen)
    cache = json_module.loads((Path(models_path) / "vrg" / "vrg_search_cache.json").read_text())
    out["searched"] = [record["sigmas"] for record in cache["searches"].values()]
    out["lines"], out["sigma_max"] = lines, float(linker.sigmas[-1])
    return out


def main(forge: str, models_path: str, case: dict) -> dict:
    import torch

    sd_schedulers, module = load_forge(forge, models_path)
    if case.get("search"):
        return search_in_forge(sd_schedulers, module, models_path, case)
    if case.get("every_sampler"):
        return every_sampler_in_forge(sd_schedulers, module, forge, models_path, case)
    from vrg_webui.model import model_kind

    inner = forge_inner_model(case)
    out = {"kind": model_kind(inner).value, "labels": [s.label for s in sd_schedulers.schedulers]}
    scheduler = sd_schedulers.schedulers_map[case["label"]]
    kwargs = {"sigma_min": inner.sigmas[0].item(), "sigma_max": inner.sigmas[-1].item(), "inner_model": inner}
    try:
        out["sigmas"] = scheduler.function(n=case["steps"], **kwargs, device=torch.device("cpu")).tolist()
    except module.VRGError as e:
        out["error"] = str(e)
    return out


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2], json.loads(sys.argv[3]))))
