"""The webui extension (scripts/vrg_schedulers.py) against AUTOMATIC1111's real `modules/sd_schedulers.py`.

`A1111_PATH` names a folder holding the webui's `modules/sd_schedulers.py` (kept outside the repo);
the real `k_diffusion` package must be importable. Stand-ins, and nothing else:
- `modules.shared`: only `models_path`, the one thing the script reads (sd_schedulers reads
  `shared` only inside its Beta and Align Your Steps functions);
- `torchvision`, only when it is not installed: k_diffusion (and `clip`, which it imports) import
  it at top level for image helpers scheduling never calls, and PyPI's torchvision wheels link
  CUDA torch, so they cannot load beside a CPU torch.
"""

import importlib
import importlib.util
import logging
import os
import sys
import types
from pathlib import Path

import pytest
import torch

from vrg_core.error_table import ErrorTable
from vrg_core.errors import VRGError
from vrg_core.parameterization import ModelKind, noise_level_grid
from vrg_core.table_io import save_table

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


SD15_ALPHAS_CUMPROD = torch.cumprod(1.0 - torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2, 0).float()


def sd15_wrapper(v_prediction: bool = False):
    """The wrapper A1111 passes as `inner_model`: k_diffusion's CompVis(V)Denoiser around an SD 1.5-scheduled model."""
    import k_diffusion

    ldm = types.SimpleNamespace(alphas_cumprod=SD15_ALPHAS_CUMPROD)  # stand-in for the LDM: its noise schedule only
    wrapper = k_diffusion.external.CompVisVDenoiser if v_prediction else k_diffusion.external.CompVisDenoiser
    return wrapper(ldm)


def write_table(folder: Path, name: str, kind: ModelKind = ModelKind.EPS) -> Path:
    """An error table over SD 1.5's noise range, shaped like a real model's (largest at low noise)."""
    sigmas_sd15 = ((1 - SD15_ALPHAS_CUMPROD.double()) / SD15_ALPHAS_CUMPROD.double()).sqrt()
    lo, hi = (float(sigmas_sd15[0]), float(sigmas_sd15[-1])) if kind is not ModelKind.CONST else (0.01, 1.0)
    grid = noise_level_grid(lo, hi, 40, kind)
    return save_table(ErrorTable.from_mean_error(kind, grid, 0.02 + 1.0 / (1.0 + 4.0 * grid**2)), folder / f"{name}.safetensors")


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
    write_table(tmp_path / "models" / "vrg", "mine")
    load_script()
    inner = sd15_wrapper()
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


def test_forge_predictor_kind_is_read_from_prediction_type(webui, load_script, tmp_path):
    sd_schedulers, _ = webui
    write_table(tmp_path / "models" / "vrg", "mine")
    load_script()
    sigmas = sd15_wrapper().sigmas
    scheduler = sd_schedulers.schedulers_map["vrg_mine_karras"]
    forge_eps = types.SimpleNamespace(prediction_type="epsilon", sigmas=sigmas)  # stand-in for Forge's Prediction
    assert call_like_the_webui(scheduler, 8, forge_eps).shape == (9,)
    with pytest.raises(VRGError, match=r"loaded model is flow \(const\)"):
        call_like_the_webui(scheduler, 8, types.SimpleNamespace(prediction_type="const", sigmas=sigmas))


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


def test_user_table_overrides_bundled_table_of_the_same_name(load_script, tmp_path, monkeypatch):
    module = load_script()
    monkeypatch.setattr(module, "BUNDLED_TABLES", tmp_path / "bundled")
    write_table(tmp_path / "bundled", "other")
    write_table(tmp_path / "bundled", "shared_name")
    user = write_table(tmp_path / "models" / "vrg", "shared_name")
    assert module.table_files() == {"other": tmp_path / "bundled" / "other.safetensors", "shared_name": user}


def test_every_bundled_table_registers(webui, load_script, caplog):
    bundled = sorted((REPO / "schedules" / "tables").glob("*.safetensors"))
    if not bundled:
        pytest.skip("no bundled tables in schedules/tables yet")
    with caplog.at_level(logging.WARNING, logger="vrg"):
        load_script()
    assert not [r for r in caplog.records if r.name == "vrg"]
    names = {s.name for s in webui[0].schedulers}
    assert {f"vrg_{p.stem}_{base}" for p in bundled for base in ("karras", "exponential")} <= names
