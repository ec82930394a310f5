"""The `vrg` scheduler in ComfyUI's shared scheduler registry, driven by the stock KSampler nodes."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def setup(run):
    model = run("VRGDemoModel", model="eps")[0]
    table = run("VRGLoadErrorTable", name="bundled: demo_eps")[0]
    return dict(
        model=model, table=table,
        positive=run("VRGDemoConditioning", digit="4")[0], negative=run("VRGDemoConditioning", digit="none")[0],
    )


@pytest.fixture
def received(monkeypatch):
    """The sigmas every k-diffusion Euler run receives (the sampler function is looked up at call time)."""
    import comfy.k_diffusion.sampling as k_sampling

    calls, euler = [], k_sampling.sample_euler

    def recording_euler(model, x, sigmas, *args, **kwargs):
        calls.append(sigmas.detach().cpu().clone())
        return euler(model, x, sigmas, *args, **kwargs)

    monkeypatch.setattr(k_sampling, "sample_euler", recording_euler)
    return calls


def empty_latent(batch=2):
    import nodes

    return nodes.EmptyLatentImage().generate(128, 128, batch)[0]  # the demo model's 16x16, fitted to 1 channel


def apply(run, setup, base="karras", start="fixed"):
    return run("VRGApply", model=setup["model"], table=setup["table"], base_scheduler=base, gamma=0.0, start=start)


def test_registered_in_place_and_offered_by_ksampler_nodes(comfy):
    import comfy.samplers as samplers
    import nodes

    assert "vrg" in samplers.SCHEDULER_HANDLERS and "vrg" in samplers.SCHEDULER_NAMES
    assert samplers.KSampler.SCHEDULERS is samplers.SCHEDULER_NAMES
    for node in (nodes.KSampler, nodes.KSamplerAdvanced):
        assert "vrg" in node.INPUT_TYPES()["required"]["scheduler"][0]
    assert "vrg" not in comfy.nodes["VRGApply"].GET_SCHEMA().inputs[2].options


def test_ksampler_samples_the_optimised_schedule(run, setup, received):
    import comfy.samplers
    import nodes

    from vrg_pack.vrg_core.optimize import optimize_sigmas

    patched = apply(run, setup)[0]
    latent = nodes.KSampler().sample(patched, 0, 10, 2.0, "euler", "vrg", setup["positive"], setup["negative"],
                                     empty_latent(), denoise=1.0)[0]
    assert latent["samples"].shape == (2, 1, 16, 16)
    base = comfy.samplers.calculate_sigmas(setup["model"].get_model_object("model_sampling"), "karras", 10)
    expected = torch.tensor(optimize_sigmas(base, setup["table"]).sigmas, dtype=torch.float32)
    (sigmas,) = received
    assert torch.equal(sigmas, expected) and not torch.equal(sigmas, base)
    assert sigmas[0] == base[0] and sigmas[-1] == 0


def test_ksampler_advanced_and_denoise(run, setup, received):
    import nodes

    patched = apply(run, setup, base="normal")[0]
    nodes.KSamplerAdvanced().sample(patched, "enable", 0, 8, 2.0, "euler", "vrg", setup["positive"],
                                    setup["negative"], empty_latent(), 2, 8, "disable")
    nodes.KSampler().sample(patched, 0, 6, 2.0, "euler", "vrg", setup["positive"], setup["negative"],
                            empty_latent(), denoise=0.5)
    advanced, partial = received
    assert len(advanced) == 7 and advanced[-1] == 0  # steps 2..8 of the optimised 8-step schedule
    assert len(partial) == 7 and partial[0] < 14  # the last 6 steps of an optimised 12-step schedule


def test_vrg_scheduler_without_apply_fails_clearly(setup):
    import nodes

    from vrg_pack.vrg_core.errors import VRGError

    with pytest.raises(VRGError, match="needs a VRG Apply node"):
        nodes.KSampler().sample(setup["model"], 0, 4, 1.0, "euler", "vrg", setup["positive"], setup["negative"],
                                empty_latent())


def test_another_pack_appending_its_scheduler_keeps_working(run, setup, comfy, received):
    import comfy.samplers as samplers
    import nodes

    def halving(model_sampling, steps):
        return torch.tensor([float(model_sampling.sigma_max) / 2**i for i in range(steps)] + [0.0])

    samplers.SCHEDULER_HANDLERS["other_pack_halving"] = samplers.SchedulerHandler(halving)
    samplers.SCHEDULER_NAMES.append("other_pack_halving")
    try:
        comfy.pack.nodes.vrg_scheduler.register_scheduler()  # registering again (a reload) changes nothing
        names = nodes.KSampler.INPUT_TYPES()["required"]["scheduler"][0]
        assert names.count("vrg") == 1 and "other_pack_halving" in names
        assert "other_pack_halving" in comfy.nodes["VRGApply"].GET_SCHEMA().inputs[2].options
        nodes.KSampler().sample(setup["model"], 0, 4, 1.0, "euler", "other_pack_halving", setup["positive"],
                                setup["negative"], empty_latent())
        patched = apply(run, setup, base="other_pack_halving")[0]
        nodes.KSampler().sample(patched, 0, 4, 1.0, "euler", "vrg", setup["positive"], setup["negative"],
                                empty_latent())
    finally:
        del samplers.SCHEDULER_HANDLERS["other_pack_halving"]
        samplers.SCHEDULER_NAMES.remove("other_pack_halving")
    theirs, ours = received
    assert theirs.tolist() == pytest.approx([14.6146, 7.3073, 3.6537, 1.8268, 0.0], rel=1e-4)
    assert ours[0] == theirs[0] and ours[-1] == 0 and not torch.equal(ours, theirs)
