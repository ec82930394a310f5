"""Every ComfyUI symbol the pack uses exists, with the signature the pack calls, in the ComfyUI at $COMFYUI_PATH.

One list (`SYMBOLS`, `CALLED_WITH`) so that the next ComfyUI upgrade is one look: run this file against
the new tree. tests/comfy/host_api.md says where each was read in the newest stored ComfyUI sources.
"""

from __future__ import annotations

import importlib
import inspect

import pytest

# module -> attributes (dotted for nested) the pack's nodes/ and __init__ use
SYMBOLS = {
    "comfy_api.v0_0_2": ["ComfyExtension", "io", "ui"],
    "comfy_api.v0_0_2:io": [
        "ComfyNode", "Schema", "NodeOutput", "Custom", "Hidden.unique_id", "Boolean.Input", "Combo.Input",
        "Conditioning.Input", "Conditioning.Output", "Float.Input", "Image.Output", "Int.Input", "Latent.Input",
        "Latent.Output", "Model.Input", "Model.Output", "Sigmas.Input", "Sigmas.Output", "String.Input",
        "String.Output", "ComfyNode.fingerprint_inputs", "ComfyNode.GET_SCHEMA", "ComfyNode.PREPARE_CLASS_CLONE",
        "ComfyNode.EXECUTE_NORMALIZED",
    ],
    "comfy_api.v0_0_2:ui": ["PreviewImage"],
    "comfy.samplers": ["KSAMPLER", "CFGGuider", "CFGGuider.set_conds", "CFGGuider.set_cfg", "CFGGuider.sample",
                       "Sampler.max_denoise", "SCHEDULER_HANDLERS", "SCHEDULER_NAMES", "SchedulerHandler",
                       "calculate_sigmas", "KSampler.SCHEDULERS"],
    "comfy.sample": ["prepare_noise"],
    # the shipped tables VRG+ measures as candidates (nodes/host.py; a failure leaves one out, with a warning)
    "comfy_extras.nodes_align_your_steps": ["AlignYourStepsScheduler.execute"],
    "comfy_extras.nodes_gits": ["GITSScheduler.execute"],
    "comfy_extras.nodes_optimalsteps": ["OptimalStepsScheduler.execute"],
    "comfy.utils": ["ProgressBar", "ProgressBar.update_absolute"],
    "comfy.model_management": ["get_torch_device", "unet_offload_device", "throw_exception_if_processing_interrupted"],
    "comfy.model_patcher": ["ModelPatcher", "ModelPatcher.clone", "ModelPatcher.add_object_patch",
                            "ModelPatcher.get_model_object"],
    "comfy.model_sampling": ["EPS", "V_PREDICTION", "EDM", "CONST", "EPS.noise_scaling", "CONST.noise_scaling",
                             "ModelSamplingDiscrete", "ModelSamplingDiscreteFlow"],
    "comfy.model_base": ["BaseModel", "BaseModel.process_latent_in", "ModelType.EPS", "ModelType.FLOW"],
    "comfy.latent_formats": ["LatentFormat", "LatentFormat.latent_channels"],
    "comfy.supported_models_base": ["BASE"],
    "folder_paths": ["folder_names_and_paths", "models_dir", "get_filename_list", "get_folder_paths",
                     "get_full_path", "get_input_directory", "get_input_subfolders"],
}
# server.py is read, not imported (importing it starts a ComfyUI server's module graph)
SERVER = {"PromptServer": ["send_progress_text"]}

# callable -> parameter names the pack passes (by name or position)
CALLED_WITH = {
    ("comfy.samplers", "KSAMPLER.__init__"): ["sampler_function"],
    ("comfy.samplers", "CFGGuider.sample"): ["noise", "latent_image", "sampler", "sigmas", "disable_pbar", "seed"],
    ("comfy.samplers", "calculate_sigmas"): ["model_sampling", "scheduler_name", "steps"],
    ("comfy.samplers", "Sampler.max_denoise"): ["model_wrap", "sigmas"],
    ("comfy.model_sampling", "EPS.noise_scaling"): ["sigma", "noise", "latent_image", "max_denoise"],
    ("comfy.model_sampling", "CONST.noise_scaling"): ["sigma", "noise", "latent_image", "max_denoise"],
    ("comfy.sample", "prepare_noise"): ["latent_image", "seed"],
    ("comfy.model_patcher", "ModelPatcher.__init__"): ["model", "load_device", "offload_device"],
    ("comfy.model_patcher", "ModelPatcher.add_object_patch"): ["name", "obj"],
    ("comfy.utils", "ProgressBar.update_absolute"): ["value", "total"],
    ("comfy_api.v0_0_2:ui", "PreviewImage.__init__"): ["image", "cls"],
}


def resolve(module: str, dotted: str):
    """`module:prefix` names an attribute path inside the module (comfy_api.v0_0_2:io is not a module)."""
    module, _, prefix = module.partition(":")
    obj = importlib.import_module(module)
    for part in ([prefix] if prefix else []) + dotted.split("."):
        obj = getattr(obj, part)
    return obj


@pytest.mark.parametrize("module, dotted", [(m, a) for m, names in SYMBOLS.items() for a in names])
def test_symbol_exists(comfy, module, dotted):
    resolve(module, dotted)


@pytest.mark.parametrize("module, dotted", list(CALLED_WITH))
def test_called_with_these_parameters(comfy, module, dotted):
    parameters = inspect.signature(resolve(module, dotted)).parameters
    assert set(CALLED_WITH[(module, dotted)]) <= set(parameters), list(parameters)


def test_prompt_server_sends_progress_text():
    import ast
    import os

    tree = ast.parse(open(os.path.join(os.environ["COMFYUI_PATH"], "server.py")).read())
    classes = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}
    for name, methods in SERVER.items():
        defined = {f.name: [a.arg for a in f.args.args] for f in classes[name].body
                   if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))}
        for method in methods:
            assert {"text", "node_id"} <= set(defined[method]), defined.get(method)


def test_scheduler_names_is_one_shared_list(comfy):
    import comfy.samplers as samplers

    assert samplers.KSampler.SCHEDULERS is samplers.SCHEDULER_NAMES  # the pack appends 'vrg' in place


def test_the_pack_imports_only_the_versioned_api():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    for path in [root / "__init__.py", *sorted((root / "nodes").glob("*.py"))]:
        text = path.read_text()
        assert "comfy_api.latest" not in text, f"{path.name} imports the unstable comfy_api.latest"
