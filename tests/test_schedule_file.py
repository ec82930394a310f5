"""The schedule file that travels between hosts: round trip, and every malformed file refused by name."""

import json

import numpy as np
import pytest

from vrg_core.errors import VRGError
from vrg_core.parameterization import ModelKind
from vrg_core.schedule_file import ScheduleFile, load_schedule, save_schedule, schedule_from_json


def family() -> ScheduleFile:
    schedules = {n: np.append(np.geomspace(14.6, 0.03, n), 0.0) for n in range(4, 9)}
    return ScheduleFile("0123456789abcdef", ModelKind.EPS, "euler", 7.0, schedules, "VRG+ test")


def test_round_trip_is_exact_and_serves_only_its_counts(tmp_path):
    path = save_schedule(family(), tmp_path / "mine.json")
    back = load_schedule(path)
    assert back.model_fingerprint == "0123456789abcdef" and back.kind is ModelKind.EPS and back.cfg == 7.0
    assert back.counts == "4-8" and back.made_by == "VRG+ test"
    for n, sigmas in family().schedules.items():
        assert np.array_equal(back.sigmas(n), sigmas)
    with pytest.raises(VRGError, match=r"searched for 4-8 steps, not 9: set the steps to one of those"):
        back.sigmas(9)
    single = ScheduleFile("0123456789abcdef", ModelKind.CONST, "dpmpp_2m", 1.0, {8: family().schedules[8]})
    assert single.counts == "8"


def good() -> dict:
    return json.loads(family().to_json())


@pytest.mark.parametrize("change, message", [
    (lambda d: d.pop("format"), r"is not a VRG\+ schedule"),
    (lambda d: d.update(version=2), r"version 2 of the schedule format, this VRG reads 1; update VRG"),
    (lambda d: d.update(model_fingerprint="../../etc"), r"model_fingerprint must be 16 hex digits"),
    (lambda d: d.update(kind="diffusion"), r"'mine.json': model kind 'diffusion' is unknown"),
    (lambda d: d.update(sampler=""), r"sampler must name the sampler"),
    (lambda d: d.update(cfg=float("nan")), r"cfg must be a number >= 0"),
    (lambda d: d.update(cfg=True), r"cfg must be a number >= 0"),
    (lambda d: d.update(schedules={}), r"schedules must map step counts to schedules"),
    (lambda d: d["schedules"].update({"x": [1.0, 0.0]}), r"'x' is not a step count"),
    (lambda d: d["schedules"].update({"5": [1.0, 0.0]}), r"the 5-step schedule must have 6 noise levels ending at 0"),
    (lambda d: d["schedules"].update({"2": [1.0, 2.0, 0.0]}), r"the 2-step schedule must decrease strictly"),
])
def test_a_malformed_file_is_refused_naming_the_field(tmp_path, change, message):
    data = good()
    change(data)
    (tmp_path / "mine.json").write_text(json.dumps(data))
    with pytest.raises(VRGError, match=message):
        load_schedule(tmp_path / "mine.json")


def test_not_json_not_text_and_oversized_files_are_refused(tmp_path):
    (tmp_path / "a.json").write_text("{not json")
    (tmp_path / "b.json").write_bytes(b"\xff\xfe\x00")
    (tmp_path / "c.json").write_bytes(b" " * (1024 * 1024 + 1))
    with pytest.raises(VRGError, match="'a.json' is not JSON"):
        load_schedule(tmp_path / "a.json")
    with pytest.raises(VRGError, match="'b.json' is not UTF-8 text"):
        load_schedule(tmp_path / "b.json")
    with pytest.raises(VRGError, match="over the 1048576-byte limit"):
        load_schedule(tmp_path / "c.json")
    with pytest.raises(VRGError, match="is not a VRG"):
        schedule_from_json("[1, 2]")
