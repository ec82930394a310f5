"""VRG Compare Schedules in the real host: it measures what vrg_core's compare measures, from the KSampler's noise."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cancel import interrupt_after
from test_ksampler import empty_latent

NOISES, SEED = 6, 1


@pytest.fixture(scope="module")
def inputs(run):
    model = run("VRGDemoModel", model="eps")[0]
    ms = model.get_model_object("model_sampling")
    import comfy.samplers as samplers

    return dict(model=model, latent=empty_latent(1), sampler_name="euler", noises=NOISES, seed=SEED, batch_size=4,
                cfg=1.0, positive=run("VRGDemoConditioning", digit="4")[0],
                sigmas_1=samplers.calculate_sigmas(ms, "karras", 6), label_1="karras",
                sigmas_2=samplers.calculate_sigmas(ms, "simple", 6), label_2="simple",
                sigmas_3=samplers.calculate_sigmas(ms, "exponential", 8), label_3="")


def test_compare_node_measures_what_vrg_core_measures_from_the_ksamplers_noise(run, inputs):
    import nodes

    from vrg_pack.vrg_core.compare import compare_schedules
    from vrg_pack.vrg_core.demo import load_demo_model
    from vrg_pack.vrg_core.demo.host import DemoHost, ksampler_start

    out = run("VRGCompareSchedules", **inputs)
    ui, samples = out.ui, out[0]["samples"]
    assert ui["labels"] == ["karras", "simple", "sigmas_3"] and out[1] == "\n".join(ui["text"])
    assert ui["evaluations"] == [NOISES * (100 + 6 + 6 + 8)]
    demo = load_demo_model("eps")
    schedules = {label: inputs[f"sigmas_{k}"] for k, label in enumerate(ui["labels"], 1)}
    with torch.inference_mode():
        core = compare_schedules(DemoHost(demo, digit=4).denoise, ksampler_start(demo, SEED), schedules, "euler",
                                 demo.kind, demo.sigma_min, NOISES)
    for (mean, low, high), (gain, gain_low, gain_high), m in zip(ui["distance"], ui["best_closer_by"],
                                                                 core.measured.values()):
        assert mean == pytest.approx(m.mean, rel=1e-3) and low <= mean <= high
        assert gain == pytest.approx(m.gain, abs=1e-3) and gain_low <= gain <= gain_high
    assert ui["best"] == [core.best] and ui["distance"][ui["labels"].index(core.best)][0] == min(
        d[0] for d in ui["distance"])
    # per noise: the converged sample, then each schedule's; schedule k of noise n is the KSampler's image n
    assert samples.shape == (NOISES * 4, 1, 16, 16)
    grid = samples.reshape(NOISES, 4, 1, 16, 16)
    assert torch.allclose(grid[:, 0].double(), core.reference, atol=1e-3)
    stock = nodes.KSampler().sample(inputs["model"], SEED, 6, 1.0, "euler", "karras", inputs["positive"],
                                    inputs["positive"], empty_latent(NOISES), denoise=1.0)[0]["samples"]
    assert torch.allclose(grid[:, 1], stock, atol=1e-3)


def test_compare_node_refuses_bad_input_and_cancels(run, inputs, monkeypatch):
    import comfy.model_management as mm

    from vrg_pack.vrg_core.errors import VRGError

    rising = torch.tensor([1.0, 2.0, 0.0])
    for override, message in (({"sigmas_2": rising}, "sigmas_2 \\(simple\\) must decrease strictly"),
                              ({"sigmas_3": torch.tensor([14.6, 3.0, 0.5])}, "sigmas_3 ends at sigma 0.5, not 0"),
                              ({"noises": 3}, "3 noises are too few"),
                              ({"label_2": "karras"}, "label_2 'karras' is already another input's label"),
                              ({"cfg": 3.0}, "negative conditioning"),
                              ({"sampler_name": "dpm_adaptive"}, "not one of the choices")):
        with pytest.raises(VRGError, match=message):
            run("VRGCompareSchedules", **{**inputs, **override})
    interrupt_after(monkeypatch, 5)
    with pytest.raises(mm.InterruptProcessingException):
        run("VRGCompareSchedules", **inputs)


def test_compare_node_on_the_flow_model_with_two_schedules(run, inputs):
    flow = run("VRGDemoModel", model="flow")[0]
    out = run("VRGCompareSchedules", **{**{k: v for k, v in inputs.items() if not k.endswith("_3")}, "model": flow,
                                       "sigmas_1": torch.tensor([1.0, 0.8, 0.5, 0.2, 0.0]), "label_1": "even",
                                       "sigmas_2": torch.tensor([1.0, 0.9, 0.6, 0.2, 0.0]), "label_2": "late"})
    assert out.ui["labels"] == ["even", "late"] and np.isfinite(out.ui["distance"]).all()
    assert "steps from sigma 1)" in out[1] and out[0]["samples"].shape == (NOISES * 3, 1, 16, 16)


def test_compare_template_over_http_measures_what_vrg_core_measures(server):
    """The CPU template run by a real server: VRG+ and Karras compared, 3 images per noise, and the figures are
    vrg_core's compare on the same schedules, model, prompt and noise."""
    from test_families import execute
    from workflows import COMPARE_DEMO, DEMO_STEPS, WORKFLOWS

    from vrg_pack.vrg_core.compare import compare_schedules
    from vrg_pack.vrg_core.demo import load_demo_model
    from vrg_pack.vrg_core.demo.host import DemoHost, demo_schedules, ksampler_start

    out = execute(server, WORKFLOWS[COMPARE_DEMO])
    compared, searched = out["compare"], out["search"]
    assert compared["labels"] == ["VRG+", "karras"] and compared["evaluations"] == [16 * (100 + 2 * DEMO_STEPS)]
    assert len(out["preview"]["images"]) == 16 * 3
    demo = load_demo_model("eps")
    schedules = {"VRG+": np.array(searched["sigmas"]), "karras": demo_schedules(demo, DEMO_STEPS)["karras"]}
    with torch.inference_mode():
        core = compare_schedules(DemoHost(demo, digit=7).denoise, ksampler_start(demo, 1), schedules, "euler",
                                 demo.kind, demo.sigma_min, 16)
    assert [d[0] for d in compared["distance"]] == pytest.approx([m.mean for m in core.measured.values()], rel=1e-3)
    assert compared["best"] == [core.best] and compared["text"][0].startswith("euler on 16 noises")


def test_compare_node_runs_an_sde_sampler_on_comfyuis_brownian_paths_against_its_own_limit(run, inputs):
    """dpmpp_2m_sde: every schedule and the reference run ComfyUI's sampler with its noise on ComfyUI's
    BrownianTreeNoiseSampler (a path per noise), the reference on 100 steps of the same SDE; the text says so."""
    out = run("VRGCompareSchedules", **{**inputs, "sampler_name": "dpmpp_2m_sde"})
    assert out.ui["evaluations"] == [NOISES * (100 + 6 + 6 + 8)] and np.isfinite(out.ui["distance"]).all()
    assert "dpmpp_2m_sde's own limit (100 steps from sigma 14.61 on each noise's Brownian path" in out[1]
    assert "noise-free" not in out[1]
    plain = run("VRGCompareSchedules", **{**inputs, "sampler_name": "euler_ancestral"})[1]
    assert "converged samples (DPM++2M" in plain and "noise-free part" in plain
