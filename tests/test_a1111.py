"""The webui extension (scripts/vrg_schedulers.py, vrg_webui/) against AUTOMATIC1111's real `modules/sd_schedulers.py`.

`A1111_PATH` names a folder holding the webui's `modules/sd_schedulers.py` (kept outside the repo);
the real `k_diffusion` package must be importable. Stand-ins, and nothing else:
- `modules.shared`: only `models_path`, the one thing the script reads (sd_schedulers reads
  `shared` only inside its Beta and Align Your Steps functions);
- the LatentDiffusion k-diffusion's CompVis(V)Denoiser wraps: its noise schedule (`alphas_cumprod`) and
  its UNet (`model.diffusion_model`, a small module with an LDM UNet's names, loaded from a real
  safetensors file), what the script reads of it;
- for VRG+ searched in the webui, the generation (`p`), its `KDiffusionSampler`'s schedule and sampling calls
  and its CFG denoiser (`webui_parts.Processing`, `KDiffusionSampler`, `CFGDenoiser`: A1111's own import its
  whole runtime), around the real k-diffusion sampler functions and k-diffusion's real CompVisDenoiser;
- `torchvision`, only when it is not installed: k_diffusion (and `clip`, which it imports) import
  it at top level for image helpers scheduling never calls, and PyPI's torchvision wheels link
  CUDA torch, so they cannot load beside a CPU torch.
"""

import importlib
import importlib.util
import json
import logging
import os
import sys
import types
from pathlib import Path

import pytest
import safetensors.torch
import torch

from vrg_core.errors import VRGError
from vrg_core.parameterization import ModelKind
from webui_parts import (SAMPLERS_K_DIFFUSION, SD15_ALPHAS_CUMPROD, KDiffusionSampler, LatentShape, Processing, State,
                         TinyLDM, TinyUNet, checkpoint, fingerprint_of, write_schedule, write_table)

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "vrg_schedulers.py"
A1111_PATH = os.environ.get("A1111_PATH")

if not A1111_PATH:
    pytest.skip("A1111_PATH is unset: point it at a folder holding the webui's modules/sd_schedulers.py", allow_module_level=True)


def torchvision_stand_in() -> dict:
    """Empty torchvision modules with the names k_diffusion and clip import at top level."""

    def unavailable(*args, **kwargs):
        raise RuntimeError("torchvision stand-in of tests/test_a1111.py: not for use")

    names = ("torchvision", "torchvision.transforms", "torchvision.transforms.functional")
    tv, transforms, functional = (types.ModuleType(n) for n in names)
    tv.transforms, transforms.functional = transforms, functional
    for name in ("Compose", "Resize", "CenterCrop", "ToTensor", "Normalize"):
        setattr(transforms, name, unavailable)
    return {m.__name__: m for m in (tv, transforms, functional)}


@pytest.fixture(scope="module")
def webui():
    """The real `modules.sd_schedulers`, imported with the real k_diffusion and a stand-in `modules.shared`."""
    if not (Path(A1111_PATH) / "modules" / "sd_schedulers.py").is_file():
        pytest.fail(f"A1111_PATH={A1111_PATH} holds no modules/sd_schedulers.py")
    shared = types.ModuleType("modules.shared")  # stand-in: only what the script reads
    with pytest.MonkeyPatch.context() as mp:
        if importlib.util.find_spec("torchvision") is None:
            for name, module in torchvision_stand_in().items():
                mp.setitem(sys.modules, name, module)
        try:
            importlib.import_module("k_diffusion")
        except Exception as e:  # noqa: BLE001 - any failure means "not importable here"
            pytest.skip(f"k_diffusion is not importable ({e!r}); see the README's webui section for the test install")
        mp.syspath_prepend(A1111_PATH)
        mp.setitem(sys.modules, "modules.shared", shared)
        sd_schedulers = importlib.import_module("modules.sd_schedulers")
        assert Path(sd_schedulers.__file__).resolve() == (Path(A1111_PATH) / "modules" / "sd_schedulers.py").resolve()
        yield sd_schedulers, shared
        for name in ("modules.sd_schedulers", "modules"):
            sys.modules.pop(name, None)


@pytest.fixture
def load_script(webui, tmp_path, monkeypatch):
    """Run the script as the webui does (its folder on sys.path); restore the scheduler list after."""
    sd_schedulers, shared = webui
    saved_list, saved_map = list(sd_schedulers.schedulers), dict(sd_schedulers.schedulers_map)
    monkeypatch.setattr(shared, "models_path", str(tmp_path / "models"), raising=False)

    def load():
        monkeypatch.syspath_prepend(str(REPO))
        spec = importlib.util.spec_from_file_location(SCRIPT.name, SCRIPT)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    yield load
    sd_schedulers.schedulers[:] = saved_list
    sd_schedulers.schedulers_map.clear()
    sd_schedulers.schedulers_map.update(saved_map)


def sd15_wrapper(v_prediction: bool = False, weights: Path | None = None, dtype: torch.dtype = torch.float32):
    """The wrapper A1111 passes as `inner_model`: k_diffusion's CompVis(V)Denoiser around an SD 1.5-scheduled
    model whose UNet (`.model.diffusion_model`) holds `weights` (a `checkpoint` file) in `dtype`."""
    import k_diffusion

    unet = TinyUNet()
    if weights is not None:
        unet.load_state_dict(safetensors.torch.load_file(str(weights)))
    ldm = types.SimpleNamespace(alphas_cumprod=SD15_ALPHAS_CUMPROD,  # stand-in for the LDM: its noise schedule
                                model=types.SimpleNamespace(diffusion_model=unet.to(dtype)))  # and its UNet
    wrapper = k_diffusion.external.CompVisVDenoiser if v_prediction else k_diffusion.external.CompVisDenoiser
    return wrapper(ldm)


def call_like_the_webui(scheduler, steps: int, inner_model) -> torch.Tensor:
    """`KDiffusionSampler.get_sigmas`: the model's own σ range, keyword arguments, inner_model when asked."""
    kwargs = {"sigma_min": inner_model.sigmas[0].item(), "sigma_max": inner_model.sigmas[-1].item()}
    if scheduler.need_inner_model:
        kwargs["inner_model"] = inner_model
    return scheduler.function(n=steps, **kwargs, device=torch.device("cpu"))


def test_registers_table_entries_in_the_real_list_and_map(webui, load_script, tmp_path):
    sd_schedulers, _ = webui
    schedulers, schedulers_map = sd_schedulers.schedulers, sd_schedulers.schedulers_map
    builtin = [s.name for s in schedulers]
    write_table(tmp_path / "models" / "vrg", "mine")

    load_script()

    assert sd_schedulers.schedulers is schedulers and sd_schedulers.schedulers_map is schedulers_map
    assert [s.name for s in schedulers[: len(builtin)]] == builtin
    added = {s.name: s for s in schedulers[len(builtin) :]}
    assert {"vrg_mine_karras", "vrg_mine_exponential"} <= set(added)
    assert added["vrg_mine_karras"].label == "VRG mine (Karras)"
    assert added["vrg_mine_exponential"].label == "VRG mine (Exponential)"
    assert all(s.need_inner_model and s.name.startswith("vrg_") for s in added.values())
    assert schedulers_map == {**{s.name: s for s in schedulers}, **{s.label: s for s in schedulers}}
    assert schedulers_map["VRG mine (Karras)"] is added["vrg_mine_karras"]


def test_reload_replaces_entries_instead_of_duplicating(webui, load_script, tmp_path):
    sd_schedulers, _ = webui
    write_table(tmp_path / "models" / "vrg", "mine")
    load_script()
    first = len(sd_schedulers.schedulers)
    load_script()
    names = [s.name for s in sd_schedulers.schedulers]
    assert len(names) == first and len(set(names)) == len(names)


@pytest.mark.parametrize("base", ["karras", "exponential"])
@pytest.mark.parametrize("steps", [1, 10, 30])
def test_sigmas_through_the_real_call_convention(webui, load_script, tmp_path, base, steps):
    import k_diffusion

    sd_schedulers, _ = webui
    weights = checkpoint(tmp_path / "checkpoints")
    write_table(tmp_path / "models" / "vrg", "mine", made_on=weights)
    load_script()
    inner = sd15_wrapper(weights=weights)
    label = f"VRG mine ({base.capitalize()})"

    sigmas = call_like_the_webui(sd_schedulers.schedulers_map[label], steps, inner)
    base_sigmas = getattr(k_diffusion.sampling, f"get_sigmas_{base}")(steps, inner.sigmas[0].item(), inner.sigmas[-1].item())

    assert isinstance(sigmas, torch.Tensor) and sigmas.dtype == torch.float32 and sigmas.shape == (steps + 1,)
    assert sigmas[-1] == 0 and sigmas[0] == base_sigmas[0]
    assert bool(torch.all(torch.diff(sigmas) < 0))
    if steps > 1:
        assert float((sigmas - base_sigmas).abs().max() / base_sigmas[1]) > 1e-3


def test_table_of_another_model_kind_is_refused_when_sampling(webui, load_script, tmp_path):
    sd_schedulers, _ = webui
    write_table(tmp_path / "models" / "vrg", "mine")
    write_table(tmp_path / "models" / "vrg", "flow", ModelKind.CONST)
    load_script()
    with pytest.raises(VRGError, match=r"'mine.safetensors' was measured on a eps model but the loaded model is v_prediction"):
        call_like_the_webui(sd_schedulers.schedulers_map["vrg_mine_karras"], 10, sd15_wrapper(v_prediction=True))
    with pytest.raises(VRGError, match=r"'flow.safetensors' was measured on a flow \(const\) model but the loaded model is eps"):
        call_like_the_webui(sd_schedulers.schedulers_map["vrg_flow_karras"], 10, sd15_wrapper())


def test_a_table_of_another_checkpoint_or_of_none_is_refused_naming_both(webui, load_script, tmp_path):
    sd_schedulers, _ = webui
    mine, other = checkpoint(tmp_path / "checkpoints", "mine", seed=0), checkpoint(tmp_path / "checkpoints", "other", 1)
    write_table(tmp_path / "models" / "vrg", "theirs", made_on=other)
    write_table(tmp_path / "models" / "vrg", "unsigned")
    load_script()
    loaded, made = fingerprint_of(mine), fingerprint_of(other)
    with pytest.raises(VRGError, match=rf"'theirs.safetensors' was measured on another model \(fingerprint {made}\) "
                                       rf"than the loaded checkpoint \(fingerprint {loaded}\)"):
        call_like_the_webui(sd_schedulers.schedulers_map["VRG theirs (Karras)"], 10, sd15_wrapper(weights=mine))
    with pytest.raises(VRGError, match=r"'unsigned.safetensors' does not say which model it was measured on"):
        call_like_the_webui(sd_schedulers.schedulers_map["VRG unsigned (Karras)"], 10, sd15_wrapper(weights=mine))
    with pytest.raises(VRGError, match="the same checkpoint loaded in another precision also differs"):
        write_table(tmp_path / "models" / "vrg", "mine", made_on=mine)
        load_script()
        call_like_the_webui(sd_schedulers.schedulers_map["VRG mine (Karras)"], 10,
                            sd15_wrapper(weights=mine, dtype=torch.float16))


def test_a_vrg_plus_schedule_file_serves_its_counts_on_its_checkpoint_only(webui, load_script, tmp_path, caplog):
    sd_schedulers, _ = webui
    mine, other = checkpoint(tmp_path / "checkpoints", "mine", 0), checkpoint(tmp_path / "checkpoints", "other", 1)
    folder = tmp_path / "models" / "vrg" / "schedules"
    schedule = write_schedule(folder, "sd15 euler", mine)
    write_schedule(folder, "theirs", other)
    (folder / "broken.json").write_text("{")
    with caplog.at_level(logging.WARNING, logger="vrg"):
        load_script()
    records = [r.getMessage() for r in caplog.records if r.name == "vrg"]
    assert len(records) == 1 and "broken.json" in records[0] and "is not JSON" in records[0]
    scheduler = sd_schedulers.schedulers_map["VRG+ sd15 euler (euler, 4-8 steps)"]
    assert scheduler.name == "vrgplus_sd15 euler" and scheduler.need_inner_model
    for steps in (4, 6, 8):
        sigmas = call_like_the_webui(scheduler, steps, sd15_wrapper(weights=mine))
        assert sigmas.dtype == torch.float32 and torch.equal(sigmas, torch.tensor(schedule.sigmas(steps)).float())
    with pytest.raises(VRGError, match=r"VRG\+ schedule 'sd15 euler.json' was searched for 4-8 steps, not 9"):
        call_like_the_webui(scheduler, 9, sd15_wrapper(weights=mine))
    with pytest.raises(VRGError, match=rf"'theirs.json' was searched on another model \(fingerprint {fingerprint_of(other)}"):
        call_like_the_webui(sd_schedulers.schedulers_map["vrgplus_theirs"], 6, sd15_wrapper(weights=mine))
    with pytest.raises(VRGError, match=r"'sd15 euler.json' was searched on a eps model but the loaded model is v_pred"):
        call_like_the_webui(scheduler, 6, sd15_wrapper(v_prediction=True, weights=mine))


def test_lora_changes_in_place_do_not_change_the_checkpoint_it_is(webui, load_script, tmp_path):
    """A1111's Lora applies weights in place and keeps the originals on the module (`network_weights_backup`,
    `network_bias_backup`): the table made on the checkpoint still applies with a LoRA on."""
    sd_schedulers, _ = webui
    weights = checkpoint(tmp_path / "checkpoints")
    write_table(tmp_path / "models" / "vrg", "mine", made_on=weights)
    load_script()
    inner = sd15_wrapper(weights=weights)
    conv = inner.inner_model.model.diffusion_model.input_blocks[0][0]
    conv.network_weights_backup, conv.network_bias_backup = conv.weight.detach().clone(), conv.bias.detach().clone()
    with torch.no_grad():
        conv.weight.add_(0.5)
        conv.bias.add_(0.5)
    assert call_like_the_webui(sd_schedulers.schedulers_map["VRG mine (Karras)"], 8, inner).shape == (9,)
    del conv.network_weights_backup, conv.network_bias_backup  # the LoRA'd weights alone: another model
    with pytest.raises(VRGError, match="was measured on another model"):
        call_like_the_webui(sd_schedulers.schedulers_map["VRG mine (Karras)"], 8, inner)


def test_broken_table_logs_one_line_and_is_not_registered(webui, load_script, tmp_path, caplog):
    sd_schedulers, _ = webui
    folder = tmp_path / "models" / "vrg"
    write_table(folder, "good")
    (folder / "broken.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not a table")

    with caplog.at_level(logging.WARNING, logger="vrg"):
        load_script()

    names = {s.name for s in sd_schedulers.schedulers}
    assert "vrg_good_karras" in names and not any(n.startswith("vrg_broken") for n in names)
    records = [r for r in caplog.records if r.name == "vrg"]
    assert len(records) == 1 and "broken.safetensors" in records[0].getMessage()
    assert "\n" not in records[0].getMessage()


def hide_package(monkeypatch, package: str) -> None:
    """Make every import of `package` or its submodules raise ModuleNotFoundError until the test ends,
    whatever was imported before: a None entry in sys.modules halts the import machinery for that name,
    and a submodule imported earlier (say by k_diffusion) is hidden by its own entry, not only its parent's."""
    for name in [n for n in sys.modules if n == package or n.startswith(package + ".")] + [package]:
        monkeypatch.setitem(sys.modules, name, None)


def test_missing_dependency_logs_one_line_and_registers_nothing(webui, load_script, tmp_path, caplog, monkeypatch):
    sd_schedulers, _ = webui
    write_table(tmp_path / "models" / "vrg", "mine")
    for name in [n for n in sys.modules if n == "vrg_core" or n.startswith("vrg_core.")]:
        monkeypatch.delitem(sys.modules, name)  # so that the script imports vrg_core afresh
    hide_package(monkeypatch, "scipy")  # as if scipy were not installed
    before = list(sd_schedulers.schedulers)

    with caplog.at_level(logging.WARNING, logger="vrg"):
        module = load_script()

    assert isinstance(module.missing, ImportError) and module.missing.name.split(".")[0] == "scipy"  # it hit the hidden scipy
    assert sd_schedulers.schedulers == before
    records = [r for r in caplog.records if r.name == "vrg"]
    assert len(records) == 1 and str(module.missing) in records[0].getMessage() and "\n" not in records[0].getMessage()


def test_the_bundled_demo_tables_are_not_offered(webui, load_script, tmp_path):
    """They were measured on the node pack's 16×16 digit models, which no webui checkpoint is."""
    bundled = sorted((REPO / "schedules" / "tables").glob("*.safetensors"))
    assert bundled, "the node pack bundles its demo tables in schedules/tables"
    write_table(tmp_path / "models" / "vrg", "mine")
    load_script()
    names = {s.name for s in webui[0].schedulers}
    assert "vrg_mine_karras" in names
    assert not {f"vrg_{p.stem}_{base}" for p in bundled for base in ("karras", "exponential")} & names


# --- VRG+ searched in the webui ---

def generation(sd_schedulers, weights: Path, state: State, sampler: str = "Euler", steps: int = 6, prompt: float = 0.5,
               batch_size: int = 1) -> Processing:
    """A txt2img generation on checkpoint `weights` (k-diffusion's CompVisDenoiser around a small text-conditioned
    LDM), sampler `sampler` (its real k-diffusion function), Karras, CFG 5, a 4×8×8 latent; `prompt` its text."""
    import k_diffusion

    label, funcname, _, options = next(s for s in SAMPLERS_K_DIFFUSION if s[0] == sampler)
    wrap = k_diffusion.external.CompVisDenoiser(TinyLDM(weights))
    predict = lambda x, sigma, text: wrap(x, sigma, cond={"c_crossattn": [text]})
    k_sampler = KDiffusionSampler(funcname, options, wrap, predict, state, sd_schedulers.schedulers_map,
                                  k_diffusion.sampling, lambda sigma, noise: noise * sigma)
    texts = torch.full((batch_size, 4), prompt), torch.zeros(batch_size, 4)
    return Processing(k_sampler, label, "Karras", steps, 5.0, *texts, LatentShape(4, 8, 8), batch_size)


def vrg_plus(module, sd_schedulers, p: Processing, state: State, models: Path, evaluations: int = 1000) -> list[str]:
    """The VRG+ accordion on for `p` (its `process`), with the webui's parts (k-diffusion's own Brownian paths);
    the console lines it will print (printed too: `pytest -s` shows them as the webui's console would)."""
    import k_diffusion

    lines: list[str] = []
    parts = module.WebuiParts(state, types.SimpleNamespace(sgm_noise_multiplier=False), sd_schedulers.schedulers,
                              SAMPLERS_K_DIFFUSION, torch.device("cpu"), models, lambda line: (lines.append(line), print(line)),
                              module.k_diffusion_paths(k_diffusion.sampling.BrownianTreeNoiseSampler))
    module.vrg_plus_process(p, True, evaluations, parts)
    return lines


@pytest.fixture
def searching(webui, load_script, monkeypatch):
    """(the script, the real sd_schedulers) with what A1111's Beta and Align Your Steps schedule types read of
    `shared` (its options' defaults, an SD 1.x model), so that every schedule type is a candidate."""
    sd_schedulers, shared = webui
    monkeypatch.setattr(shared, "opts", types.SimpleNamespace(beta_dist_alpha=0.6, beta_dist_beta=0.6), raising=False)
    monkeypatch.setattr(shared, "sd_model", types.SimpleNamespace(is_sdxl=False), raising=False)
    return load_script(), sd_schedulers


def cached(models: Path) -> list[dict]:
    """The searches in the webui's cache."""
    return list(json.loads((models / "vrg" / "vrg_search_cache.json").read_text())["searches"].values())


def cached_schedules(models: Path) -> list[list[float]]:
    return [r["sigmas"] for r in cached(models)]


def test_vrg_plus_searches_on_first_use_the_sampler_runs_it_and_later_generations_reuse_it(searching, tmp_path):
    (module, sd_schedulers), models, state = searching, tmp_path / "models", State()
    weights = checkpoint(tmp_path / "checkpoints")
    p = generation(sd_schedulers, weights, state)
    lines = vrg_plus(module, sd_schedulers, p, state, models)
    noise = torch.randn((1, 4, 8, 8), generator=torch.Generator().manual_seed(1))

    _, ran = p.sampler.sample(p, noise)

    searched = cached_schedules(models)
    assert len(searched) == 1 and ran.tolist() == pytest.approx(searched[0], rel=1e-6)  # float32 of the float64 record
    assert p.sampler.model_wrap_cfg.seen == pytest.approx(ran[:-1].tolist(), rel=1e-6)  # the sampler ran it
    assert state.calls - 6 == cached(models)[0]["evaluations"] > 500  # the search's calls through the CFG denoiser
    assert state.sampling_steps >= 900 and state.sampling_step == state.sampling_steps  # the progress bar
    assert state.textinfo is None  # as it was before the search
    assert lines[0].startswith(f"VRG+: searching the schedule for euler, 6 steps, CFG 5 on this checkpoint "
                               f"(fingerprint {fingerprint_of(weights)}): 1000 model evaluations, once")
    assert lines[-1].startswith("VRG+: searched in ") and "noises the search did not fit" in lines[-1]
    assert p.extra_generation_params["VRG+"].endswith("(1000 evaluations)")
    assert p.extra_generation_params["Schedule type"] == "Karras"  # the candidates' infotext left as it was
    # (A1111's KL Optimal ends at σ_min, not 0: not a candidate)
    assert {"Align Your Steps", "Beta", "Exponential", "Simple", "Normal"} <= set(cached(models)[0]["candidates"])

    again, calls = generation(sd_schedulers, weights, state, prompt=-0.5), state.calls  # another prompt
    lines = vrg_plus(module, sd_schedulers, again, state, models)
    _, ran_again = again.sampler.sample(again, noise)
    assert state.calls - calls == 6 and torch.equal(ran_again, ran)
    assert len(lines) == 1 and lines[0].startswith("VRG+: cached for euler, 6 steps, CFG 5")

    other = checkpoint(tmp_path / "checkpoints", "other", seed=1)  # never a schedule made on another checkpoint
    p_other = generation(sd_schedulers, other, state)
    lines = vrg_plus(module, sd_schedulers, p_other, state, models)
    p_other.sampler.sample(p_other, noise)
    assert lines[0].startswith(f"VRG+: searching the schedule for euler, 6 steps, CFG 5 on this checkpoint "
                               f"(fingerprint {fingerprint_of(other)})") and len(cached_schedules(models)) == 2


def test_interrupt_stops_the_search_caches_nothing_and_ends_the_generation(searching, tmp_path):
    (module, sd_schedulers), models, state = searching, tmp_path / "models", State(interrupt_after=200)
    p = generation(sd_schedulers, checkpoint(tmp_path / "checkpoints"), state, batch_size=2)
    lines = vrg_plus(module, sd_schedulers, p, state, models)
    noise = torch.randn((2, 4, 8, 8), generator=torch.Generator().manual_seed(1))

    out, ran = p.sampler.sample(p, noise)

    assert state.calls == 200 and lines[-1] == "VRG+: schedule search cancelled; nothing was saved"
    assert not (models / "vrg" / "vrg_search_cache.json").exists()
    karras = call_like_the_webui(sd_schedulers.schedulers_map["Karras"], 6, p.sampler.model_wrap)
    assert torch.equal(ran, karras) and torch.equal(out, noise * ran[0])  # the sampler stopped before its first call


def test_a_sampler_that_discards_its_next_to_last_sigma_runs_the_searched_schedule(searching, tmp_path):
    (module, sd_schedulers), models, state = searching, tmp_path / "models", State()
    p = generation(sd_schedulers, checkpoint(tmp_path / "checkpoints"), state, sampler="DPM2", steps=4)
    vrg_plus(module, sd_schedulers, p, state, models, evaluations=1500)

    _, ran = p.sampler.sample(p, torch.randn((1, 4, 8, 8), generator=torch.Generator().manual_seed(1)))

    assert len(ran) == 5 and ran.tolist() == pytest.approx(cached_schedules(models)[0], rel=1e-6)


def test_an_sde_sampler_is_searched_on_k_diffusions_brownian_paths_against_its_own_limit(searching, tmp_path):
    """DPM++ 2M SDE Heun: the search runs k-diffusion's sampler with its noise on k-diffusion's own Brownian tree
    (one per noise), judged against the same SDE on a fine grid; its verdict says so; the sampler runs the result."""
    (module, sd_schedulers), models, state = searching, tmp_path / "models", State()
    p = generation(sd_schedulers, checkpoint(tmp_path / "checkpoints"), state, sampler="DPM++ 2M SDE Heun", steps=5)
    lines = vrg_plus(module, sd_schedulers, p, state, models, evaluations=1500)

    _, ran = p.sampler.sample(p, torch.randn((1, 4, 8, 8), generator=torch.Generator().manual_seed(1)))

    record = cached(models)[0]
    assert record["sampler"] == "dpmpp_2m_sde_heun" and record["verdict"]["pathwise"]
    assert ran.tolist() == pytest.approx(record["sigmas"], rel=1e-6) and "noises the search did not fit" in lines[-1]
    assert "closer to the SDE's own limit on the same noise path" in lines[-1]


@pytest.mark.parametrize("sampler", ["DPM adaptive", "DPM fast", "Restart"])
def test_a_sampler_vrg_plus_cannot_search_is_refused_with_those_it_can(searching, tmp_path, sampler):
    (module, sd_schedulers), state = searching, State()
    p = generation(sd_schedulers, checkpoint(tmp_path / "checkpoints"), state)
    p.sampler_name = sampler
    with pytest.raises(VRGError, match=rf"cannot search a schedule for the sampler '{sampler}' .*pick one of: "
                                       r"DPM\+\+ 2M, DPM\+\+ 2M SDE Heun, Euler a, Euler, DPM2, or turn VRG\+ off"):
        vrg_plus(module, sd_schedulers, p, state, tmp_path / "models")
    assert p.sampler_noise_scheduler_override is None


def test_vrg_plus_refuses_a_refiner_and_step_dependent_cfg_settings(searching, tmp_path):
    (module, sd_schedulers), state = searching, State()
    weights = checkpoint(tmp_path / "checkpoints")
    p = generation(sd_schedulers, weights, state)
    p.refiner_checkpoint = "sdxl_refiner.safetensors"
    with pytest.raises(VRGError, match="turn the refiner off"):
        vrg_plus(module, sd_schedulers, p, state, tmp_path / "models")
    p = generation(sd_schedulers, weights, state)
    p.s_min_uncond = 1.5
    with pytest.raises(VRGError, match=r"'Negative Guidance minimum sigma' at 1.5: it changes the CFG by the "
                                       r"sampler's step.*set it to 0"):
        vrg_plus(module, sd_schedulers, p, state, tmp_path / "models")
    assert p.sampler_noise_scheduler_override is None
