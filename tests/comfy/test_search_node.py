"""VRG+ (VRGSearchSchedule) in the real host: its guided model calls, cache, and the `vrg` scheduler."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from cancel import interrupt_after
from test_ksampler import empty_latent


@pytest.fixture(scope="module")
def inputs(run):
    return dict(model=run("VRGDemoModel", model="eps")[0], latent=empty_latent(1),
                sampler_name="dpmpp_2m", scheduler="karras", steps=5, seed=0, evaluations=600,
                batch_size=8, cfg=1.0, use_cache=True, step_range="",
                positive=run("VRGDemoConditioning", digit="4")[0])


def test_step_formulas_are_the_hosts_samplers(run):
    """`vrg_core.search.sample` (used for the teacher and the checks) equals ComfyUI's own samplers."""
    import comfy.k_diffusion.sampling as k

    from vrg_pack.vrg_core.demo import load_demo_model, make_context
    from vrg_pack.vrg_core.search import sample

    model = load_demo_model("eps")
    labels = torch.arange(6) % 10
    noise = 14.6 * torch.randn((6, 1, 16, 16), generator=torch.Generator().manual_seed(0))
    sigmas = np.array([14.6146, 6.1, 2.2, 0.71, 0.2, 0.0292, 0.0])
    for name, host in (("euler", k.sample_euler), ("dpmpp_2m", k.sample_dpmpp_2m)):
        with torch.inference_mode():
            ours = sample(lambda x, s, i: model.denoise(x, s, make_context(labels[i])), noise, sigmas, name)
            theirs = host(lambda x, s: model.denoise(x, s, make_context(labels)), noise,
                          torch.tensor(sigmas, dtype=torch.float32), disable=True)
        assert torch.allclose(ours.float(), theirs.float(), atol=1e-4), name


def test_a_second_prompt_alternates_with_the_first(run, inputs):
    """other_prompt: the search's odd noises are sampled with it. The same prompt twice is the one-prompt search
    (to the rounding of smaller model batches); another prompt changes what is measured."""
    single = run("VRGSearchSchedule", **{**inputs, "use_cache": False})
    images = single.ui["evaluations"][0] / inputs["steps"]  # dpmpp_2m: one model call a step
    assert f"{single.ui['evaluations'][0]} evaluations, the price of {images:.0f} images" in single.ui["text"][0]
    same = run("VRGSearchSchedule", **{**inputs, "use_cache": False, "other_prompt": inputs["positive"]})
    assert torch.allclose(same[0], single[0], rtol=1e-4)
    assert np.allclose(same.ui["held_out_gain"], single.ui["held_out_gain"], atol=1e-3)
    empty = run("VRGDemoConditioning", digit="none")[0]
    mixed = run("VRGSearchSchedule", **{**inputs, "use_cache": False, "other_prompt": empty})
    assert not np.allclose(mixed.ui["held_out_gain"], single.ui["held_out_gain"], atol=1e-3)


def test_search_node_caches_and_feeds_the_vrg_scheduler(run, inputs, comfy):
    import comfy.k_diffusion.sampling as k_sampling
    import comfy.samplers as samplers
    import nodes

    from vrg_pack.vrg_core.errors import VRGError

    cache = comfy.base / "models" / "vrg" / "vrg_search_cache.json"
    out = run("VRGSearchSchedule", **inputs)  # no error table
    sigmas, patched = out[0], out[1]
    ui = out.ui
    assert ui["evaluations"][0] <= 600 and ui["chosen"][0]
    # every registered scheduler and the shipped tables of ComfyUI's own nodes were candidates
    assert {"karras", "exponential", "normal", "beta", "ays_sd1", "gits"} <= set(ui["candidates"])
    assert "vrg" not in ui["candidates"]
    base = samplers.calculate_sigmas(inputs["model"].get_model_object("model_sampling"), "karras", 5)
    assert len(sigmas) == 6 and sigmas[-1] == 0 and bool(torch.all(sigmas[1:] < sigmas[:-1]))
    assert float(sigmas[0]) <= float(base[0]) * (1 + 1e-6)  # a candidate may start a little lower than the base
    gain, low, high = ui["held_out_gain"]  # the best searched schedule against the best other, out of sample
    assert low <= gain <= high and ui["kept"] == ui["chosen"]
    assert (ui["chosen"][0] == ui.get("rival", ["base"])[0]) == (low <= 0)  # searched kept only when clearly closer
    stored = json.loads(cache.read_text())["searches"]
    assert any(np.allclose(r["sigmas"], sigmas.tolist()) for r in stored.values())

    again = run("VRGSearchSchedule", **inputs)
    assert again.ui["evaluations"] == [0] and torch.equal(again[0], sigmas)  # from the cache, no model calls
    assert "searched again" not in out.ui["text"][0]
    reseeded = run("VRGSearchSchedule", **{**inputs, "seed": 1})
    assert "; searched again (seed changed): " in reseeded.ui["text"][0]  # why it did not come from the cache
    fresh = run("VRGSearchSchedule", **{**inputs, "use_cache": False})
    assert torch.equal(fresh[0], sigmas)  # deterministic: searched again, the same schedule

    seen = []
    original = k_sampling.sample_dpmpp_2m

    def recording(model, x, s, *args, **kwargs):
        seen.append(s.detach().cpu().clone())
        return original(model, x, s, *args, **kwargs)

    with_table = run("VRGSearchSchedule", **{**inputs, "table": "bundled: demo_eps", "variance_weight": 1.0})
    assert "vrg" in with_table.ui["candidates"]
    k_sampling.sample_dpmpp_2m = recording  # the search samples with it too: recorded only from here
    try:
        nodes.KSampler().sample(patched, 0, 5, 1.0, "dpmpp_2m", "vrg", inputs["positive"], inputs["positive"],
                                empty_latent(), denoise=1.0)
        with pytest.raises(VRGError, match="searched for dpmpp_2m, 5 steps, cfg 1, but the sampler is euler: set "
                                           "the sampler to dpmpp_2m, or search for euler"):
            nodes.KSampler().sample(patched, 0, 5, 1.0, "euler", "vrg", inputs["positive"], inputs["positive"],
                                    empty_latent(), denoise=1.0)
        with pytest.raises(VRGError, match="but it is sampled at cfg 4: set cfg to 1"):
            nodes.KSampler().sample(patched, 0, 5, 4.0, "dpmpp_2m_cfg_pp", "vrg", inputs["positive"],
                                    inputs["positive"], empty_latent(), denoise=1.0)
        with pytest.raises(VRGError, match="searched for dpmpp_2m, 5 steps, cfg 1"):  # no table: only that
            nodes.KSampler().sample(patched, 0, 6, 1.0, "dpmpp_2m", "vrg", inputs["positive"], inputs["positive"],
                                    empty_latent(), denoise=1.0)
        nodes.KSampler().sample(with_table[1], 0, 6, 1.0, "dpmpp_2m", "vrg", inputs["positive"], inputs["positive"],
                                empty_latent(), denoise=1.0)
    finally:
        k_sampling.sample_dpmpp_2m = original
    assert torch.equal(seen[0], sigmas)  # the searched schedule at its step count
    assert len(seen[1]) == 7 and seen[1][0] == base[0]  # with a table, other step counts: VRG on the base scheduler


def test_one_search_serves_every_step_count_of_its_range(run, inputs):
    """step_range 4-8: searched at 4 and 8 (each cached on its own), 5-7 interpolated between them; the stock
    KSampler with scheduler `vrg` samples each count's schedule exactly and refuses 9, naming the range; the node
    shows the count asked for, an anchor with its own out-of-sample verdict."""
    import comfy.k_diffusion.sampling as k_sampling
    import nodes

    from vrg_pack.vrg_core.errors import VRGError

    family = {**inputs, "steps": 6, "step_range": "4-8", "evaluations": 1200, "seed": 3}
    out = run("VRGSearchSchedule", **family)
    text = out.ui["text"][0]
    assert out.ui["chosen"] == ["interpolated"] and "interpolated from the 4- and 8-step searches" in text
    assert "serves 4-8 steps from searches at 4, 8; " in text and "\nat 4 steps: " in text and "\nat 8 steps: " in text
    assert 0 < out.ui["evaluations"][0] <= 1200 and len(out[0]) == 7 and out[0][-1] == 0
    at_eight = run("VRGSearchSchedule", **{**family, "steps": 8})  # another count of the range: no new search
    assert at_eight.ui["evaluations"] == [0] and len(at_eight[0]) == 9 and "held_out_gain" in at_eight.ui
    alone = run("VRGSearchSchedule", **{**family, "steps": 4, "step_range": "4", "evaluations": 600})
    assert alone.ui["evaluations"] == [0]  # the family's 4-step search (600 of its 1200), cached on its own
    with pytest.raises(VRGError, match="steps 9 is outside the step range 4-8: set steps inside it"):
        run("VRGSearchSchedule", **{**family, "steps": 9})

    seen, original = [], k_sampling.sample_dpmpp_2m

    def recording(model, x, s, *args, **kwargs):
        seen.append(s.detach().cpu().clone())
        return original(model, x, s, *args, **kwargs)

    k_sampling.sample_dpmpp_2m = recording
    try:
        for steps in range(4, 9):
            nodes.KSampler().sample(out[1], 0, steps, 1.0, "dpmpp_2m", "vrg", inputs["positive"], inputs["positive"],
                                    empty_latent(), denoise=1.0)
        with pytest.raises(VRGError, match="searched for dpmpp_2m, 4-8 steps, cfg 1, and this sampler asks it for 9 "
                                           "steps: set the steps within 4-8"):
            nodes.KSampler().sample(out[1], 0, 9, 1.0, "dpmpp_2m", "vrg", inputs["positive"], inputs["positive"],
                                    empty_latent(), denoise=1.0)
    finally:
        k_sampling.sample_dpmpp_2m = original
    assert [len(s) - 1 for s in seen] == [4, 5, 6, 7, 8]
    assert torch.equal(seen[0], alone[0]) and torch.equal(seen[2], out[0]) and torch.equal(seen[4], at_eight[0])
    assert all(s[0] == seen[0][0] for s in seen)  # every count starts at the base's sigma_0 exactly


def test_search_node_refuses_bad_input_and_cancels_cleanly(run, inputs, comfy, monkeypatch):
    import comfy.model_management as mm

    from vrg_pack.vrg_core.errors import VRGError

    for override, message in (({"sampler_name": "dpm_adaptive"}, "not one of the choices"),
                              ({"scheduler": "nope"}, "not one of the choices"),
                              ({"cfg": 3.0}, "negative conditioning"),
                              ({"evaluations": 100}, "too few"),
                              ({"variance_weight": 1.0}, "needs an error table"),
                              ({"model": run("VRGDemoModel", model="flow")[0], "table": "bundled: demo_eps"},
                               "this model is flow \\(const\\)")):
        with pytest.raises(VRGError, match=message):
            run("VRGSearchSchedule", **{**inputs, **override})
    index = comfy.base / "models" / "vrg" / "vrg_search_cache.json"
    before = index.read_bytes() if index.exists() else None
    interrupt_after(monkeypatch, 5)
    with pytest.raises(mm.InterruptProcessingException):
        run("VRGSearchSchedule", **{**inputs, "seed": 99})
    assert (index.read_bytes() if index.exists() else None) == before  # nothing stored


def test_search_node_with_guidance_uses_the_negative(run, inputs):
    negative = run("VRGDemoConditioning", digit="none")[0]
    plain = run("VRGSearchSchedule", **{**inputs, "use_cache": False})
    guided = run("VRGSearchSchedule", **{**inputs, "use_cache": False, "cfg": 3.0, "negative": negative})
    assert guided.ui["evaluations"][0] <= 600
    assert guided.ui["held_out_gain"] != plain.ui["held_out_gain"]  # the guided model was searched, not the plain one


def test_search_node_uses_only_the_latent_size_and_sets_a_damaged_cache_aside(run, inputs, comfy):
    encoded_like = {"samples": torch.randn(2, 4, 16, 16)}  # not empty, 4 channels: only its size matters
    out = run("VRGSearchSchedule", **{**inputs, "latent": encoded_like, "use_cache": False})
    assert len(out[0]) == 6
    folder = comfy.base / "models" / "vrg"
    cache = folder / "vrg_search_cache.json"
    folder.mkdir(parents=True, exist_ok=True)
    cache.write_text("{not json")
    again = run("VRGSearchSchedule", **inputs)  # the search runs; the damaged file is renamed, with a warning
    assert len(again[0]) == 6 and any("renamed" in line for line in again.ui["text"])
    aside = list(folder.glob("vrg_search_cache.json.damaged-*"))
    assert len(aside) == 1 and aside[0].read_text() == "{not json"
    assert json.loads(cache.read_text())["format"] == "vrg-search-cache"
    aside[0].unlink()


def test_a_search_saved_as_a_file_is_served_on_its_model_only(run, inputs):
    """save_as writes every count of the family to models/vrg/schedules/<name>.json (the file the webui reads);
    VRG Load Searched Schedule serves it on the model it was searched on, its `vrg` scheduler the same schedules,
    and refuses another model of the same kind or of another kind, naming both; a bad name is refused first."""
    from pathlib import Path

    import comfy.samplers
    import folder_paths

    import families
    from vrg_pack.nodes.model_identity import fingerprint
    from vrg_pack.vrg_core.errors import VRGError
    from vrg_pack.vrg_core.schedule_file import load_schedule

    family = {**inputs, "steps": 6, "step_range": "4-8", "evaluations": 1200, "seed": 3}  # cached by the test above
    out = run("VRGSearchSchedule", **family, save_as="demo eps dpmpp")
    assert "\nsaved as demo eps dpmpp.json in models/vrg/schedules/" in out.ui["text"][0]
    saved = load_schedule(Path(folder_paths.get_folder_paths("vrg_schedules")[0]) / "demo eps dpmpp.json")
    assert (saved.model_fingerprint, saved.sampler, saved.cfg, saved.counts) == \
        (fingerprint(inputs["model"]), "dpmpp_2m", 1.0, "4-8")
    assert "demo eps dpmpp.json" in folder_paths.get_filename_list("vrg_schedules")

    loaded = run("VRGLoadSearchedSchedule", model=inputs["model"], schedule="demo eps dpmpp.json", steps=6)
    assert torch.equal(loaded[0], out[0]) and "dpmpp_2m, 4-8 steps, cfg 1, searched on this model" in loaded.ui["text"][0]
    for steps in range(4, 9):
        served, searched = (comfy.samplers.calculate_sigmas(m.get_model_object("model_sampling"), "vrg", steps)
                            for m in (loaded[1], out[1]))
        assert torch.equal(served, searched)
    with pytest.raises(VRGError, match="searched for 4-8 steps, not 9"):
        run("VRGLoadSearchedSchedule", model=inputs["model"], schedule="demo eps dpmpp.json", steps=9)
    other = families.model("sd15")
    with pytest.raises(VRGError, match=rf"searched on another model \(fingerprint {saved.model_fingerprint}\) than this "
                                       rf"one \(fingerprint {fingerprint(other)}\)"):
        run("VRGLoadSearchedSchedule", model=other, schedule="demo eps dpmpp.json", steps=6)
    with pytest.raises(VRGError, match="searched on a eps model but this model is flow"):
        run("VRGLoadSearchedSchedule", model=run("VRGDemoModel", model="flow")[0], schedule="demo eps dpmpp.json",
            steps=6)
    with pytest.raises(VRGError, match=r"schedule name '../escape' points outside models/vrg/schedules/"):
        run("VRGSearchSchedule", **{**family, "use_cache": False}, save_as="../escape")
