"""The command line, run as users run it: `python -m vrg_core …` in a subprocess."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vrg_core.cli import main
from vrg_core.demo import load_demo_model
from vrg_core.error_table import ErrorTable
from vrg_core.parameterization import ModelKind, noise_level_grid
from vrg_core.schedule_file import load_schedule
from vrg_core.table_io import save_table

ROOT = Path(__file__).resolve().parents[1]
KEYS = {"sigmas", "cpe_before", "cpe_after", "start_sigma_before", "start_sigma_after", "method", "seconds"}


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vrg_core", *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


@pytest.fixture()
def table_file(tmp_path) -> Path:
    grid = noise_level_grid(0.0292, 14.61, 16, ModelKind.EPS)
    return save_table(ErrorTable.from_mean_error(ModelKind.EPS, grid, 1 / (1 + grid**2)), tmp_path / "t.safetensors")


def test_optimize_json_on_official_files(reference):
    p = run("optimize", "--table", str(reference / "vrg_official_mse_vs_alpha_bar_cifar10.tsv"),
            "--trajectory", str(reference / "vrg_official_trajectory_1-010-time_quadratic.txt"),
            "--start", "paper", "--gamma", "0.01", "--interp", "paper", "--json")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.strip().splitlines()
    assert len(lines) == 1
    out = json.loads(lines[0])
    assert KEYS <= out.keys()
    assert out["cpe_before"] == pytest.approx(0.5013875, rel=1e-6) and out["cpe_after"] <= 0.41895
    assert len(out["sigmas"]) == 11 and out["sigmas"][-1] == 0


def test_optimize_sigmas_and_info(table_file):
    p = run("optimize", "--table", str(table_file), "--sigmas", "14.61,6.0,2.0,0.6,0.1,0", "--kind", "eps", "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["sigmas"][0] == 14.61 and out["start_sigma_after"] == 14.61 and out["cpe_after"] <= out["cpe_before"]
    assert np.all(np.diff(out["sigmas"]) < 0)
    p = run("info", str(table_file))
    assert p.returncode == 0 and "eps model, 16 levels" in p.stdout


def test_info_json(table_file, capsys):
    assert main(["info", str(table_file), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["kind"] == "eps" and out["levels"] == 16 and len(out["w"]) == 16


@pytest.mark.parametrize(
    "args, needle",
    [
        (["optimize", "--table", "{t}", "--sigmas", "1,2,0"], "decrease strictly"),
        (["optimize", "--table", "{t}", "--sigmas", "a,b"], "is not a number"),
        (["optimize", "--table", "{t}", "--sigmas", "nan,1,0"], "NaN"),
        (["optimize", "--table", "{t}", "--sigmas", "3,1,0", "--kind", "const"], "does not match"),
        (["optimize", "--table", "{t}", "--sigmas", "3,1,0", "--gamma", "x"], "gamma"),
        (["optimize", "--table", "{t}"], "exactly one of"),
        (["optimize", "--table", "missing.safetensors", "--sigmas", "3,1,0"], "does not exist"),
        (["optimize", "--table", "{bad}", "--sigmas", "3,1,0"], "not a safetensors file"),
        (["optimize", "--table", "{t}", "--sigmas", "3,1,0", "--start", "free"], "invalid choice"),
        (["info", "{bad}"], "not a safetensors file"),
        (["nonsense"], "invalid choice"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, needle, table_file, tmp_path, capsys):
    bad = tmp_path / "bad.safetensors"
    bad.write_text('{"not": "a table"}')
    assert main([a.format(t=table_file, bad=bad) for a in args]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], lines


def test_bad_input_in_a_real_process_has_no_traceback():
    p = run("optimize", "--table", "missing.safetensors", "--sigmas", "3,1,0")
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.strip().splitlines() == ["error: file 'missing.safetensors' does not exist; check the name"]


def test_search_json_cache_and_bad_input(tmp_path):
    pytest.importorskip("safetensors")
    from vrg_core.bundle import load_bundled_table

    args = ("search", "--model", "eps", "--steps", "4", "--sampler", "dpmpp_2m", "--evaluations", "600",
            "--cache", str(tmp_path), "--json")
    first = run(*args)
    assert first.returncode == 0, first.stderr
    out = json.loads(first.stdout.strip().splitlines()[-1])
    assert not out["cached"] and out["evaluations"] <= 600 and len(out["sigmas"]) == 5 and out["sigmas"][-1] == 0
    assert {"karras", "exponential", "simple", "base"} <= set(out["candidates"]) and "vrg" not in out["candidates"]
    assert {"ays_sd1", "ays_sdxl", "gits"} <= set(out["candidates"])  # the published tables, as the node measures
    assert sum(out["objectives"][out["chosen"]]) <= sum(out["objectives"]["base"])  # [discretisation, variance]
    again = json.loads(run(*args).stdout.strip().splitlines()[-1])
    assert again["cached"] and again["sigmas"] == out["sigmas"]
    table = save_table(load_bundled_table("demo_eps"), tmp_path / "mine.safetensors")
    flow_table = run("search", "--model", "flow", "--table", str(table))
    assert flow_table.returncode == 2 and flow_table.stderr.startswith("error: ") and "eps" in flow_table.stderr
    no_table = run("search", "--variance-weight", "1")
    assert no_table.returncode == 2 and "--table" in no_table.stderr
    too_few = run("search", "--steps", "10", "--evaluations", "50")
    assert too_few.returncode == 2 and "too few" in too_few.stderr and "Traceback" not in too_few.stderr


def test_search_for_a_step_range_serves_every_count_from_its_anchors(tmp_path):
    args = ("search", "--model", "flow", "--steps", "4-8", "--evaluations", "1200", "--cache", str(tmp_path), "--json")
    first = run(*args)
    assert first.returncode == 0, first.stderr
    out = json.loads(first.stdout.strip().splitlines()[-1])
    assert out["steps"] == "4-8" and out["cached"] == 0 and sorted(out["searches"]) == ["4", "8"]
    assert sorted(map(int, out["schedules"])) == [4, 5, 6, 7, 8] and out["schedules"]["8"] == out["searches"]["8"]["sigmas"]
    assert all(len(s) == int(n) + 1 and s[-1] == 0 for n, s in out["schedules"].items())
    assert sum(r["evaluations"] for r in out["searches"].values()) <= 1200
    text = run("search", "--model", "flow", "--steps", "4-8", "--evaluations", "1200", "--cache", str(tmp_path),
               "--save", str(tmp_path / "saved" / "flow.json"))
    assert text.returncode == 0 and "(cached; kept" in text.stdout and "sigmas for 6 steps (interpolated): " in text.stdout
    saved = load_schedule(tmp_path / "saved" / "flow.json")  # the file ComfyUI's loader and the webui read
    assert (saved.model_fingerprint, saved.kind, saved.sampler, saved.cfg, saved.counts) == \
        (load_demo_model("flow").fingerprint, ModelKind.CONST, "euler", 1.0, "4-8")
    assert all(saved.sigmas(int(n)).tolist() == s for n, s in out["schedules"].items())
    for bad, needle in ((("--steps", "8-4"), "step range '8-4'"), (("--steps", "4-8", "--sigmas", "14,1,0"), "--sigmas"),
                        (("--steps", "4-30", "--evaluations", "1000"), "allow at least"),
                        (("--save", "flow.txt"), "--save: 'flow.txt' must end in .json")):
        refused = run("search", *bad)
        assert refused.returncode == 2 and needle in refused.stderr and "Traceback" not in refused.stderr


def test_demo_json_leads_with_vrg_plus_and_both_measures():
    p = run("demo", "--count", "200", "--samples", "16", "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert list(out["scores"])[0] == "VRG+" and {"karras", "exponential", "simple", "VRG"} <= set(out["scores"])
    assert {"ays_sd1", "ays_sdxl", "gits"} <= set(out["scores"]) and out["not_compared"] == []
    for score in out["scores"].values():
        assert np.isfinite(score["distance"]) and score["distance"] > 0 and np.isfinite(score["fd"])
    assert out["vrg_plus_evaluations"] <= 2000
    plus, base = out["sigmas"]["VRG+"], out["sigmas"]["karras"]
    assert plus[0] == base[0] and plus[-1] == 0 and len(plus) == len(base) == 11
