"""Models are classed by their noise process: which prediction types VRG runs, and which it refuses at once.

ComfyUI 0.3.64's own ModelSampling* nodes patch a tiny SD1.5 model (families.py) to each prediction
type they offer. Types only newer ComfyUI has (IMG_TO_IMG_FLOW, IMG_TO_IMG_VELOCITY,
V_PREDICTION_DDPM, flow with a noise scale) are small stand-ins here with the same class names and
noise formulas as there.
"""

from __future__ import annotations

import pytest
import torch

import families

REFUSALS: list[str] = []


@pytest.fixture(scope="module")
def sd15(comfy):
    torch.set_num_threads(1)
    return families.model("sd15")


def latent():
    return {"samples": torch.randn((2, 4, 8, 8), generator=torch.Generator().manual_seed(0))}


def profile(run, model):
    return run("VRGProfile", model=model, latent=latent(), grid_size=4, samples_per_level=1, batch_size=4, seed=0,
               cfg=1.0, positive=families.conditioning("sd15", 0))[0]


def discrete(model, sampling):
    from comfy_extras.nodes_model_advanced import ModelSamplingDiscrete

    return ModelSamplingDiscrete().patch(model, sampling, False)[0]


def continuous_edm(model, sampling):
    from comfy_extras.nodes_model_advanced import ModelSamplingContinuousEDM

    return ModelSamplingContinuousEDM().patch(model, sampling, 80.0, 0.002)[0]


def patched(model, model_sampling):
    m = model.clone()
    m.add_object_patch("model_sampling", model_sampling)
    return m


@pytest.mark.parametrize("patch, sampling, kind", [
    (discrete, "eps", "eps"), (discrete, "v_prediction", "v_prediction"), (discrete, "lcm", "eps"),
    (discrete, "x0", "eps"), (continuous_edm, "edm", "edm"), (continuous_edm, "edm_playground_v2.5", "edm"),
    (continuous_edm, "v_prediction", "v_prediction"), (continuous_edm, "eps", "eps"),
])
def test_prediction_types_with_the_eps_noise_process_are_profiled(run, sd15, patch, sampling, kind):
    model = patch(sd15, sampling)
    table = profile(run, model)
    ms = model.get_model_object("model_sampling")
    assert table.kind.value == kind
    assert table.sigma_max == pytest.approx(float(ms.sigma_max), rel=1e-6)
    assert torch.isfinite(torch.as_tensor(table.sum_mse)).all()


@pytest.mark.parametrize("node, shift", [("ModelSamplingSD3", 3.0), ("ModelSamplingAuraFlow", 1.73)])
def test_flow_sampling_nodes_give_const(run, sd15, node, shift):
    import comfy_extras.nodes_model_advanced as advanced

    model = getattr(advanced, node)().patch(sd15, shift)[0]
    assert profile(run, model).kind.value == "const"


def stand_ins():
    """Classes of the newest ComfyUI that 0.3.64 lacks, with their names and noise formulas."""
    import comfy.model_sampling as ms

    class IMG_TO_IMG_FLOW(ms.CONST):  # noqa: N801 - the host's class name
        def noise_scaling(self, sigma, noise, latent_image, max_denoise=False):
            return latent_image

    class IMG_TO_IMG_VELOCITY(ms.CONST):  # noqa: N801
        def noise_scaling(self, sigma, noise, latent_image, max_denoise=False):
            return latent_image

    class V_PREDICTION_DDPM:  # noqa: N801 - not derived from EPS in the newest ComfyUI
        def noise_scaling(self, sigma, noise, latent_image, max_denoise=False):
            return latent_image + noise * sigma.view(-1, *([1] * (noise.ndim - 1)))

    class ScaledCONST(ms.CONST):  # the newest CONST: x = sigma * (noise_scale * noise) + (1 - sigma) * x0
        def noise_scaling(self, sigma, noise, latent_image, max_denoise=False):
            s = sigma.view(-1, *([1] * (noise.ndim - 1)))
            return s * (getattr(self, "noise_scale", 1.0) * noise) + (1.0 - s) * latent_image

    def flow(base_type, noise_scale=None):
        class Sampling(ms.ModelSamplingDiscreteFlow, base_type):
            pass

        sampling = Sampling()
        sampling.set_parameters(shift=3.0)
        if noise_scale is not None:
            sampling.noise_scale = noise_scale
        return sampling

    def ddpm():
        class Sampling(ms.ModelSamplingDiscrete, V_PREDICTION_DDPM):
            pass

        return Sampling()

    return {"IMG_TO_IMG_FLOW": lambda: flow(IMG_TO_IMG_FLOW), "IMG_TO_IMG_VELOCITY": lambda: flow(IMG_TO_IMG_VELOCITY),
            "V_PREDICTION_DDPM": ddpm, "noise scale 0.5": lambda: flow(ScaledCONST, 0.5),
            "noise scale 1": lambda: flow(ScaledCONST, 1.0)}


def search_defaults() -> dict:
    """The VRG+ node's inputs at their schema defaults (its first option for a combo without one)."""
    import sys

    nodes = sys.modules["vrg_pack.nodes.search"]
    out = {}
    for item in nodes.VRGSearchSchedule.GET_SCHEMA().inputs:
        default = getattr(item, "default", None)
        if default is None and getattr(item, "options", None):
            default = item.options[0]
        if default is not None:
            out[item.id] = default
    return out


def refused_everywhere(run, model, expected: str) -> str:
    """Every VRG node that takes the MODEL refuses it at once (before any model call) with the same message."""
    from vrg_pack.vrg_core.errors import VRGError

    table = run("VRGLoadErrorTable", name="bundled: demo_eps")[0]
    calls = {
        "VRG Profile": lambda: profile(run, model),
        "VRG Apply": lambda: run("VRGApply", model=model, table=table, base_scheduler="karras", gamma=0.0,
                                 start="fixed"),
        "VRG Optimize Sigmas": lambda: run("VRGOptimizeSigmas", sigmas=torch.tensor([14.6, 1.0, 0.0]), table=table,
                                           gamma=0.0, start="fixed", method="exact", interpolation="loglog",
                                           model=model),
        "VRG+": lambda: run("VRGSearchSchedule", **{**search_defaults(), "model": model,
                                                                  "table": "bundled: demo_eps", "latent": latent(),
                                                                  "positive": families.conditioning("sd15", 0)}),
    }
    messages = set()
    for call in calls.values():
        with pytest.raises(VRGError) as caught:
            call()
        messages.add(str(caught.value))
    assert len(messages) == 1
    message = messages.pop()
    assert expected in message and "VRG supports" in message
    REFUSALS.append(message)
    print(f"\nrefused: {message}")
    return message


@pytest.mark.parametrize("patch, sampling, expected", [
    (discrete, "img_to_img", "image-to-image model"), (continuous_edm, "cosmos_rflow", "Cosmos rectified-flow"),
])
def test_other_noise_processes_of_0_3_64_are_refused_at_once(run, sd15, patch, sampling, expected):
    message = refused_everywhere(run, patch(sd15, sampling), expected)
    assert f"prediction type {sampling.upper()} (model_sampling ModelSamplingAdvanced)" in message


@pytest.mark.parametrize("name, expected", [
    ("IMG_TO_IMG_FLOW", "image-to-image flow model"), ("IMG_TO_IMG_VELOCITY", "image-to-image velocity model"),
    ("V_PREDICTION_DDPM", "DDPM v-prediction"), ("noise scale 0.5", "noise scale 0.5"),
])
def test_newest_comfy_types_are_refused_at_once(run, sd15, name, expected):
    message = refused_everywhere(run, patched(sd15, stand_ins()[name]()), expected)
    assert f"prediction type {name if name.isupper() else 'CONST'} " in message


def test_flow_with_unit_noise_scale_is_const(run, sd15):
    assert profile(run, patched(sd15, stand_ins()["noise scale 1"]())).kind.value == "const"


def test_a_class_whose_noise_scaling_is_not_its_parents_is_refused(run, sd15):
    import comfy.model_sampling as ms

    class OddEPS(ms.ModelSamplingDiscrete, ms.EPS):
        def noise_scaling(self, sigma, noise, latent_image, max_denoise=False):
            return latent_image + 2.0 * noise

    refused_everywhere(run, patched(sd15, OddEPS()), "noise_scaling does not form x as EPS does")
