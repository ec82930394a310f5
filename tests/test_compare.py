"""Comparing schedules (vrg_core.compare) and `python -m vrg_core compare`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from test_search import KARRAS_5, gaussian_denoiser, start_noise
from vrg_core.cli import main
from vrg_core.compare import REFERENCE_STEPS, compare_schedules
from vrg_core.errors import Cancelled, VRGError
from vrg_core.parameterization import ModelKind, noise_level_grid

SCALE = torch.linspace(0.2, 1.5, 64, dtype=torch.float64)  # per-dimension std of the Gaussian data
FINE = np.append(noise_level_grid(0.0292, 14.6146, 20, ModelKind.EPS)[::-1], 0.0)


def compare(schedules: dict, noises: int = 8, **options):
    return compare_schedules(gaussian_denoiser(SCALE), start_noise(), schedules, "euler", ModelKind.EPS, 0.0292, noises,
                             **options)


def test_a_schedule_against_itself_gains_nothing_and_a_finer_one_is_closer():
    result = compare({"karras": KARRAS_5, "again": KARRAS_5.copy(), "fine": FINE})
    karras, again, fine = result.measured.values()
    assert np.array_equal(karras.distance, again.distance) and karras.mean > 0
    assert result.best == "fine" and fine.mean < karras.mean and (fine.gain, fine.gain_low) == (0.0, 0.0)
    assert 0 < karras.gain_low <= karras.gain <= karras.gain_high < 1  # the fine one is clearly closer
    assert karras.low <= karras.mean <= karras.high
    assert result.evaluations == 8 * (REFERENCE_STEPS + 5 + 5 + 20) and karras.evaluations == 8 * 5
    alone = compare({"a": KARRAS_5, "b": KARRAS_5.copy()})
    a, b = alone.measured.values()
    assert b.gain == 0.0 and b.gain_low <= 0.0 <= b.gain_high  # compared with itself: no gain
    text = "\n".join(result.lines())
    assert "karras" in text and "best" in text and f"{result.evaluations} model evaluations" in text
    assert result.samples["karras"].shape == result.reference.shape == (8, 64)


def test_deterministic_whatever_the_batch_size():
    first, second = compare({"k": KARRAS_5, "f": FINE}, batch_size=3), compare({"k": KARRAS_5, "f": FINE})
    for m, n in zip(first.measured.values(), second.measured.values()):
        assert np.array_equal(m.distance, n.distance) and (m.low, m.high, m.gain_low) == (n.low, n.high, n.gain_low)


def test_each_schedule_starts_from_its_own_sigma0_with_the_same_noise():
    asked = []

    def start(count, sigma):
        asked.append(sigma)
        return start_noise()(count, sigma)

    lower = np.array([10.0, 4.0, 1.0, 0.2, 0.0])
    result = compare_schedules(gaussian_denoiser(SCALE), start, {"karras": KARRAS_5, "lower": lower}, "euler",
                               ModelKind.EPS, 0.0292, 4)
    assert sorted(asked) == [10.0, 14.6146] and result.sigma0 == 14.6146  # once per σ_0; converged from the largest


def test_progress_and_cancel():
    seen = []
    result = compare({"k": KARRAS_5, "f": FINE}, progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (result.evaluations, result.evaluations)
    assert all(done <= total for done, total in seen)
    with pytest.raises(Cancelled, match="comparison cancelled"):
        compare({"k": KARRAS_5, "f": FINE}, should_stop=lambda: True)


@pytest.mark.parametrize("schedules, noises, message", [
    ({"karras": KARRAS_5, "up": np.array([1.0, 2.0, 0.0])}, 8, "up must decrease strictly"),
    ({"karras": KARRAS_5, "cut": np.array([14.6, 2.0, 0.5])}, 8, "cut ends at sigma 0.5, not 0"),
    ({"karras": KARRAS_5}, 8, "1 schedule\\(s\\) given; compare at least 2"),
    ({"karras": KARRAS_5, "f": FINE}, 3, "3 noises are too few"),
    ({"karras": KARRAS_5, "nan": np.array([14.6, np.nan, 0.0])}, 8, "nan contains NaN"),
])
def test_bad_inputs_are_refused_with_the_input_named(schedules, noises, message):
    with pytest.raises(VRGError, match=message):
        compare(schedules, noises)


def test_cli_compares_demo_schedules_and_refuses_bad_input(capsys):
    args = ["compare", "--model", "flow", "--steps", "3", "--schedules", "karras,simple", "--noises", "4"]
    assert main([*args, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    rows = out["schedules"]
    assert list(rows) == ["karras", "simple"] and out["best"] in rows
    assert out["evaluations"] == 4 * (REFERENCE_STEPS + 3 + 3) and rows[out["best"]]["gain"] == 0.0
    assert all(r["low"] <= r["mean"] <= r["high"] and len(r["sigmas"]) == 4 for r in rows.values())
    assert main(args) == 0
    assert "the best is closer by" in capsys.readouterr().out
    for bad, message in ((["--schedules", "karras,nope"], "'nope' unknown"),
                         (["--schedules", "karras,karras"], "names a schedule twice"),
                         (["--schedules", "vrg+,karras", "--seed", "0"], "--seed 0 is the search's seed"),
                         (["--noises", "3"], "3 noises are too few")):
        assert main([*args, *bad]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err


def test_cli_compares_vrg_plus_searched_first(tmp_path, capsys):
    args = ["compare", "--steps", "3", "--schedules", "vrg+,karras", "--noises", "4", "--evaluations", "600",
            "--cache", str(tmp_path), "--json"]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert list(out["schedules"]) == ["vrg+", "karras"] and len(out["schedules"]["vrg+"]["sigmas"]) == 4
    assert main(args) == 0  # the search from the cache: the same comparison
    assert json.loads(capsys.readouterr().out) == out
    assert main([a for a in args if a not in ("--schedules", "vrg+,karras")]) == 0  # default: VRG+ and every other
    assert list(json.loads(capsys.readouterr().out)["schedules"]) == [
        "vrg+", "karras", "exponential", "simple", "ays_sd1", "ays_sdxl", "gits"]
