"""The CLI's bad-input matrix, run as users run it: `python -m vrg_core …` in a subprocess.

Every bad input must end with exit code 2 and exactly one line `error: …` on stderr that names
the offending input and says what to do, and must leave no file behind. (More cases, run
in-process, are in test_cli.py.) Paths are the user's own on the command line, so the CLI
resolves `../x` and absolute paths like any tool; the nodes confine names to their folders
(tests/comfy/test_bad_inputs.py). NUL bytes cannot be passed in argv; they are tested inside files.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bad_files import bad_tables, eps_sigmas, good_eps_table, table_bytes, write_oversized

ROOT = Path(__file__).resolve().parents[1]
T = "in/t.safetensors"  # a valid EPS table over SD1.5's sigma range
OPT = ["optimize", "--table", T, "--sigmas"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """The folder the CLI runs in, with every input file under in/."""
    root = tmp_path_factory.mktemp("cli")
    files = root / "in"
    files.mkdir()
    (files / "t.safetensors").write_bytes(good_eps_table())
    flow = np.geomspace(0.002, 1.0, 12)
    (files / "flow.safetensors").write_bytes(table_bytes("const", flow))
    for name, (data, _) in bad_tables().items():
        (files / f"{name}.safetensors").write_bytes(data)
    write_oversized(files / "oversized.safetensors")
    (files / "folder.safetensors").mkdir()
    (files / "afile").write_text("a file, not a folder")
    (files / "nul.txt").write_bytes(b"0.9\x00\x00\n0.5\n0.1\n")
    (files / "rising.txt").write_text("0.999\n0.1\n0.5\n0.9\n")
    (files / "empty.txt").write_text("")
    (files / "binary.txt").write_bytes(bytes(range(256)))
    (files / "short.txt").write_text("0\t0.5\t0.3\n")
    return root


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_WAIT_POLICY": "PASSIVE"}
    return subprocess.run([sys.executable, "-m", "vrg_core", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def listing(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


BAD = {c: (f"in/{c}.safetensors", fix) for c, (_, fix) in bad_tables().items()}

# id: (arguments, what names the input, what tells the fix) — each a fragment of the one error line
CASES = {
    # sigmas
    "sigmas_empty": (OPT + [""], "--sigmas has 0 value", "at least 2"),
    "sigmas_one_element": (OPT + ["5"], "--sigmas has 1 value", "e.g. '14.6, 0'"),
    "sigmas_inf": (OPT + ["14,inf,0"], "--sigmas contains NaN or infinity", "give finite noise levels"),
    "sigmas_duplicate": (OPT + ["3,3,0"], "--sigmas must decrease strictly", "output of a scheduler node"),
    "sigmas_negative": (OPT + ["3,1,-1"], "--sigmas contains a negative", "0 or more"),
    "sigmas_above_table": (OPT + ["100,1,0"], "sigmas span [1, 100]", "use a table profiled on this model"),
    "sigmas_below_table": (OPT + ["3,0.001,0"], "sigmas span [0.001, 3]", "use a table profiled on this model"),
    "eps_sigmas_on_flow_table": (["optimize", "--table", "in/flow.safetensors", "--sigmas", "14,1,0"],
                                 "sigmas start at 14", "use this model's scheduler"),
    "kind_unknown": (OPT + ["3,1,0", "--kind", "sdxl"], "model kind 'sdxl'", "use one of"),
    # official trajectory files
    "trajectory_missing": (["optimize", "--table", T, "--trajectory", "in/none.txt"], "in/none.txt", "check the name"),
    "trajectory_nul_bytes": (["optimize", "--table", T, "--trajectory", "in/nul.txt"], "trajectory 'nul.txt'",
                             "expected an official alpha_bar trajectory"),
    "trajectory_rising": (["optimize", "--table", T, "--trajectory", "in/rising.txt"], "trajectory 'rising.txt'",
                          "fall strictly"),
    "trajectory_empty": (["optimize", "--table", T, "--trajectory", "in/empty.txt"], "trajectory 'empty.txt'",
                         "check the file"),
    # table files
    **{f"table_{c}": (["optimize", "--table", path, "--sigmas", "3,1,0"], Path(path).name, fix)
       for c, (path, fix) in BAD.items()},
    "table_oversized": (["optimize", "--table", "in/oversized.safetensors", "--sigmas", "3,1,0"],
                        "'oversized.safetensors' is 17825792 bytes", "check that it is the right file"),
    "table_is_a_folder": (["info", "in/folder.safetensors"], "in/folder.safetensors", "give the path of a file"),
    "table_parent_path": (["info", "../x.safetensors"], "'../x.safetensors' does not exist", "check the name"),
    "table_absolute_missing": (["info", "/nonexistent/vrg/x.safetensors"], "/nonexistent/vrg/x.safetensors",
                               "check the name"),
    "official_table_not_utf8": (["info", "in/binary.txt"], "'binary.txt' is not UTF-8", "official VRG text file"),
    "official_table_too_short": (["info", "in/short.txt"], "short.txt has fewer than 2 usable rows",
                                 "official VRG MSE table"),
    # options
    "gamma_above_1": (OPT + ["3,1,0", "--gamma", "2"], "gamma 2.0 is outside [0, 1]", "0.01–0.05"),
    "lam_nan": (OPT + ["3,1,0", "--start", "paper", "--lam", "nan"], "lambda nan", "finite number"),
    "paper_method_fixed_start": (OPT + ["3,1,0", "--method", "paper"], "method 'paper'", "use start='paper'"),
    "interp_unknown": (OPT + ["3,1,0", "--interp", "cubic"], "--interp: invalid choice: 'cubic'", "see --help"),
    # profile (refused before any model runs)
    "profile_samples_0": (["profile", "--out", "t.safetensors", "--samples", "0"], "--samples", "at least 1"),
    "profile_samples_text": (["profile", "--out", "t.safetensors", "--samples", "many"], "--samples",
                             "not a whole number"),
    "profile_grid_1": (["profile", "--out", "t.safetensors", "--grid", "1"], "--grid", "at least 2"),
    "profile_batch_0": (["profile", "--out", "t.safetensors", "--batch", "0"], "--batch", "at least 1"),
    "profile_out_not_safetensors": (["profile", "--out", "t.json"], "--out: 't.json'", "must end in .safetensors"),
    "profile_out_is_a_folder": (["profile", "--out", "in/folder.safetensors"], "--out", "is a folder"),
    "profile_out_under_a_file": (["profile", "--out", "in/afile/t.safetensors"], "afile' is a file",
                                 "pick another folder"),
    "demo_steps_1": (["demo", "--steps", "1"], "--steps", "at least 2"),
}


def test_matrix_is_large_enough():
    assert len(CASES) >= 40


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_exit_2_one_line_naming_input_and_fix(case, workdir):
    args, names, fix = CASES[case]
    before = listing(workdir)
    p = run(workdir, *args)
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), p.stderr
    assert "Traceback" not in p.stderr and p.stdout == ""
    assert names in lines[0] and fix in lines[0], lines[0]
    assert listing(workdir) == before  # nothing written, no temporary files


def test_one_step_schedule_is_valid_and_kept(workdir):
    """Steps 1: a valid schedule with nothing to move (both ends are held), returned as given."""
    p = run(workdir, *OPT, "14.614642,0", "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["sigmas"] == [14.614642, 0.0] and out["cpe_after"] == out["cpe_before"] > 0


def test_thousand_step_schedule_is_optimised(workdir):
    """Steps 1000: optimised in bounded time, same length, strictly decreasing, ends kept, CPE not higher."""
    base = np.append(eps_sigmas(n=1000)[::-1], 0.0)
    p = run(workdir, *OPT, ",".join(repr(float(s)) for s in base), "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    sigmas = np.array(out["sigmas"])
    assert len(sigmas) == 1001 and np.all(np.diff(sigmas) < 0)
    assert sigmas[0] == base[0] and sigmas[-1] == 0 and out["cpe_after"] <= out["cpe_before"]
    assert out["seconds"] < 60
