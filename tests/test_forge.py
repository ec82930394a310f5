"""The webui extension (scripts/vrg_schedulers.py) against Forge's real code.

`FORGE_PATH` names a Forge checkout (lllyasviel/stable-diffusion-webui-forge, kept outside the
repo); the python running the tests needs what those modules import, at Forge's versions
(requirements_versions.txt: diffusers 0.31.0, transformers 4.46.1, torchsde, torchdiffeq, scipy).
Each case runs in a child process (tests/forge_child.py) with Forge's real `modules/sd_schedulers.py`,
its own `k_diffusion` (`ForgeScheduleLinker`, what Forge passes a scheduler as `inner_model`) and
its real predictors (`backend.modules.k_prediction`). Stand-ins: `modules.shared` (only
`models_path`) and the UnetPatcher's model object (`diffusion_model`, `lora_loader.backup`).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vrg_core.parameterization import ModelKind
from webui_parts import checkpoint, fingerprint_of, write_schedule, write_table

FORGE_PATH = os.environ.get("FORGE_PATH")
CHILD = Path(__file__).resolve().parent / "forge_child.py"

if not FORGE_PATH:
    pytest.skip("FORGE_PATH is unset: point it at a checkout of lllyasviel/stable-diffusion-webui-forge",
                allow_module_level=True)


def in_forge(models: Path, **case) -> dict:
    """tests/forge_child.py's answer for `case`."""
    done = subprocess.run([sys.executable, str(CHILD), FORGE_PATH, str(models), json.dumps(case)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture
def models(tmp_path) -> Path:
    return tmp_path / "models"


def test_forge_samples_a_table_made_on_its_checkpoint_and_reads_its_predictors_kind(models, tmp_path):
    weights = checkpoint(tmp_path / "checkpoints")
    write_table(models / "vrg", "mine", made_on=weights)
    out = in_forge(models, label="VRG mine (Karras)", predictor="eps", weights=str(weights), steps=10)
    assert out["kind"] == "eps" and "error" not in out, out
    sigmas = out["sigmas"]
    assert len(sigmas) == 11 and sigmas[-1] == 0 and all(a > b for a, b in zip(sigmas, sigmas[1:]))
    assert abs(sigmas[0] - 14.6146) < 1e-3  # Forge's SD 1.5 predictor's σ_max, held
    assert not any(label.startswith("VRG demo") for label in out["labels"])
    assert in_forge(models, label="VRG mine (Karras)", predictor="v", weights=str(weights), steps=10)["kind"] \
        == "v_prediction"


def test_forge_refuses_a_table_of_another_checkpoint_or_kind(models, tmp_path):
    mine, other = checkpoint(tmp_path / "checkpoints", "mine", 0), checkpoint(tmp_path / "checkpoints", "other", 1)
    write_table(models / "vrg", "theirs", made_on=other)
    write_table(models / "vrg", "flowtable", ModelKind.CONST, made_on=mine)
    out = in_forge(models, label="VRG theirs (Karras)", predictor="eps", weights=str(mine), steps=8)
    made, loaded = fingerprint_of(other), fingerprint_of(mine)
    assert f"measured on another model (fingerprint {made}) than the loaded checkpoint (fingerprint {loaded})" \
        in out["error"]
    out = in_forge(models, label="VRG flowtable (Karras)", predictor="eps", weights=str(mine), steps=8)
    assert "measured on a flow (const) model but the loaded model is eps" in out["error"]
    out = in_forge(models, label="VRG flowtable (Karras)", predictor="flux", weights=str(mine), steps=8)
    assert out["kind"] == "const" and len(out["sigmas"]) == 9


def test_forge_lora_originals_keep_the_checkpoint_it_is(models, tmp_path):
    weights = checkpoint(tmp_path / "checkpoints")
    write_table(models / "vrg", "mine", made_on=weights)
    out = in_forge(models, label="VRG mine (Karras)", predictor="eps", weights=str(weights), steps=8, lora=True)
    assert "error" not in out and len(out["sigmas"]) == 9


def test_forge_samples_a_vrg_plus_schedule_file_on_its_checkpoint_only(models, tmp_path):
    mine, other = checkpoint(tmp_path / "checkpoints", "mine", 0), checkpoint(tmp_path / "checkpoints", "other", 1)
    schedule = write_schedule(models / "vrg" / "schedules", "mine", mine)
    out = in_forge(models, label="VRG+ mine (euler, 4-8 steps)", predictor="eps", weights=str(mine), steps=6)
    assert out["sigmas"] == [float(v) for v in torch.tensor(schedule.sigmas(6)).float()]
    out = in_forge(models, label="VRG+ mine (euler, 4-8 steps)", predictor="eps", weights=str(other), steps=6)
    assert f"was searched on another model (fingerprint {fingerprint_of(mine)})" in out["error"]


@pytest.mark.parametrize("predictor", ["flux", "eps"])
def test_forge_searches_vrg_plus_through_its_own_sampler_and_reuses_it(models, tmp_path, predictor):
    """Euler a: Forge's own k_diffusion function, which reads its predictor through `model.inner_model` (and runs
    its rectified-flow variant for Flux); starting states by the predictor's own `noise_scaling`."""
    weights = checkpoint(tmp_path / "checkpoints")
    out = in_forge(models, search=True, sampler="Euler a", predictor=predictor, weights=str(weights))
    searched, (first, second) = out["searched"], out["ran"]
    assert len(searched) == 1 and first == pytest.approx(searched[0], rel=1e-6) and second == first
    assert out["seen"] == pytest.approx(first[:-1], rel=1e-6)  # the sampler ran the searched schedule
    assert out["calls"][0] > 500 and out["calls"][1] == 5  # searched once, then cached
    assert first[0] <= out["sigma_max"] * (1 + 1e-4) and first[-1] == 0  # Karras' start or a candidate's below it
    assert out["sigma_max"] == pytest.approx(1.0 if predictor == "flux" else 14.6146, rel=1e-4)
    fingerprint = fingerprint_of(weights)
    assert out["lines"][0].startswith(f"VRG+: searching the schedule for euler_ancestral, 5 steps, CFG 4 on this "
                                      f"checkpoint (fingerprint {fingerprint}): 1000 model evaluations, once")
    assert out["lines"][-1].startswith("VRG+: cached for euler_ancestral, 5 steps, CFG 4")


def test_forge_every_k_diffusion_sampler_is_searched_and_runs_its_schedule_or_is_refused(models, tmp_path):
    """Forge's own sampler list, read from its source: each searchable one searched and sampled (second-order ones
    call the model between the schedule's σ too), the rest refused naming those that can be searched."""
    out = in_forge(models, every_sampler=True, predictor="eps", weights=str(checkpoint(tmp_path / "checkpoints")))
    refused = {label for label, r in out.items() if "error" in r}
    assert refused == {"DPM fast", "DPM adaptive", "Restart", "HeunPP2"}, refused
    assert all("pick one of: DPM++ 2M, DPM++ SDE, DPM++ 2M SDE, DPM++ 2M SDE Heun" in out[k]["error"] for k in refused)
    for label, r in out.items():
        if label in refused:
            continue
        assert len(r["searched"]) == 1 and r["ran"] == pytest.approx(r["searched"][0], rel=1e-6), label
        assert len(r["ran"]) == 5 and r["ran"][-1] == 0, label  # 4 steps, what the sampler ran (DPM2: after the drop)
        assert all(any(abs(s - t) <= 1e-6 * t for s in r["seen"]) for t in r["ran"][:-1]), label  # each σ called
    sde = {label for label, r in out.items() if r.get("pathwise") == [True]}  # judged on Forge's own Brownian paths
    assert sde == {"DPM++ SDE", "DPM++ 2M SDE", "DPM++ 2M SDE Heun", "DPM++ 3M SDE"}, sde
