"""Fixtures for tests against a real ComfyUI at $COMFYUI_PATH (all skipped, with the reason, when unset).

`comfy`: ComfyUI imported in this process (CPU, every folder in a temporary directory) with the
pack loaded as ComfyUI loads it. `server`: a real `main.py --cpu` on a free loopback port
whose base directory is a temporary folder with the pack linked into its custom_nodes/.
"""

from __future__ import annotations

import asyncio
import os
import sys
import types
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
COMFYUI_PATH = os.environ.get("COMFYUI_PATH")
SKIP_REASON = "COMFYUI_PATH is not set; point it at a ComfyUI checkout to run tests/comfy"
sys.path.insert(0, str(HERE))

from comfy_server import import_pack, running  # noqa: E402


def pytest_collection_modifyitems(config, items):
    if COMFYUI_PATH:
        return
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.skip(reason=SKIP_REASON))


def pytest_terminal_summary(terminalreporter):
    if not COMFYUI_PATH:
        terminalreporter.write_line(f"tests/comfy skipped: {SKIP_REASON}")


@pytest.fixture(scope="session")
def comfy(tmp_path_factory):
    """ComfyUI in this process with the pack loaded; `.nodes` maps node ids to classes."""
    pack = import_pack(COMFYUI_PATH, REPO)
    import folder_paths

    base = tmp_path_factory.mktemp("comfy_base")
    folder_paths.models_dir = str(base / "models")
    for name, setter in (("input", folder_paths.set_input_directory), ("output", folder_paths.set_output_directory),
                         ("temp", folder_paths.set_temp_directory)):
        (base / name).mkdir()
        setter(str(base / name))
    extension = asyncio.run(pack.comfy_entrypoint())
    nodes = {cls.GET_SCHEMA().node_id: cls for cls in asyncio.run(extension.get_node_list())}
    return types.SimpleNamespace(pack=pack, nodes=nodes, base=base)


@pytest.fixture(scope="session")
def run(comfy):
    """run(node_id, **inputs) -> NodeOutput, executed as ComfyUI executes a V3 node."""

    def run_node(node_id: str, **inputs):
        return comfy.nodes[node_id].PREPARE_CLASS_CLONE({}).EXECUTE_NORMALIZED(**inputs)

    return run_node


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """A real ComfyUI server (see `comfy_server.running`): `.url`, `.base`, `.log`."""
    with running(COMFYUI_PATH, tmp_path_factory.mktemp("server_base"), REPO) as live:
        print(f"\nComfyUI server up in {live.startup_seconds:.1f} s at {live.url} (log {live.log})")
        yield live


@pytest.fixture(scope="session")
def template_files(server):
    """What the templates name: stand-in (empty) checkpoints."""
    from workflows import TEMPLATE_MODELS

    checkpoints = server.base / "models" / "checkpoints"
    checkpoints.mkdir(parents=True)
    for name in TEMPLATE_MODELS.values():
        (checkpoints / name).touch()



@pytest.fixture(scope="session")
def family_server(tmp_path_factory):
    """A real ComfyUI server with the pack and the test-only family nodes (`family_nodes/`, `families.py`),
    five small images in input/<families.IMAGES>, one torch thread (the machine's 2 cores are shared)."""
    import numpy as np
    from PIL import Image

    from families import IMAGES, SIZE

    base = tmp_path_factory.mktemp("family_server")
    folder = base / "input" / IMAGES
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(5):  # five frames for the video model, four images for the others
        Image.fromarray(rng.integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8)).save(folder / f"image_{i}.png")
    with running(COMFYUI_PATH, base, REPO, extra_nodes={"vrg_test_families": HERE / "family_nodes"},
                 env={"OMP_NUM_THREADS": "1"}) as live:
        print(f"\nComfyUI family server up in {live.startup_seconds:.1f} s at {live.url}")
        yield live
