"""Fuzzing of everything that parses user text or files: only VRGError may escape.

A few hundred examples a run; `VRG_FUZZ_EXAMPLES=10000 python -m pytest tests/test_fuzz.py` is the bench mode.
"""

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vrg_core.error_table import ErrorTable
from vrg_core.errors import VRGError
from vrg_core.objective import schedule_from_text
from vrg_core.parameterization import ModelKind, noise_level_grid
from vrg_core.table_io import official_table_from_text, official_trajectory_from_text, table_from_bytes, table_from_text, table_to_bytes

EXAMPLES = int(os.environ.get("VRG_FUZZ_EXAMPLES", "300"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
GOOD = table_to_bytes(ErrorTable.from_mean_error(ModelKind.EPS, noise_level_grid(0.03, 14.6, 8, ModelKind.EPS), np.linspace(1, 0.1, 8)))


def only_vrg_errors(fn, *args):
    try:
        return fn(*args)
    except VRGError:
        return None


@FUZZ
@given(st.binary(max_size=2048))
def test_table_bytes_random(data):
    only_vrg_errors(table_from_bytes, data)


@FUZZ
@given(st.integers(0, len(GOOD) - 1), st.integers(0, 255), st.integers(0, len(GOOD)))
def test_table_bytes_mutated(pos, value, cut):
    data = bytearray(GOOD)
    data[pos] = value
    table = only_vrg_errors(table_from_bytes, bytes(data[:cut] if cut < pos else data))
    assert table is None or isinstance(table, ErrorTable)


@FUZZ
@given(st.text(max_size=400))
def test_table_text(text):
    only_vrg_errors(table_from_text, text)
    only_vrg_errors(table_from_text, "VRG1:" + text)


@FUZZ
@given(st.text(alphabet=st.sampled_from("0123456789.-+eEinfa, ;[]()\t\n"), max_size=200))
def test_schedule_text(text):
    s = only_vrg_errors(schedule_from_text, text)
    assert s is None or (len(s) >= 2 and np.all(np.diff(s) < 0) and np.all(np.isfinite(s)) and s.min() >= 0)


@FUZZ
@given(st.text(max_size=400))
def test_official_formats(text):
    only_vrg_errors(official_table_from_text, text)
    only_vrg_errors(official_trajectory_from_text, text)


def test_schedule_text_round_trip():
    s = schedule_from_text("[14.6146, 3.86; 1.39 0.4,0.0292, 0]")
    np.testing.assert_allclose(s, [14.6146, 3.86, 1.39, 0.4, 0.0292, 0.0])


def test_decimal_commas_get_a_hint():
    with pytest.raises(VRGError, match="decimal commas"):
        schedule_from_text("14,6; 3,8; 0")
