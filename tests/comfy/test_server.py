"""A real ComfyUI server (main.py --cpu) running the example workflows over its HTTP API."""

from __future__ import annotations

import time
import urllib.error

import pytest
from PIL import Image

from comfy_server import http_json
from workflows import CHECKPOINT_TEMPLATES, DEMO_STEPS, DEMO_TABLE, SEARCH_DEMO, TABLE_DEMO, WORKFLOWS, api_prompt



def post(server, prompt: dict) -> dict:
    try:
        return http_json(f"{server.url}/prompt", {"prompt": prompt, "client_id": "vrg-tests"})
    except urllib.error.HTTPError as e:
        pytest.fail(f"ComfyUI refused the prompt: {e.read().decode()[:3000]}")


def finished(server, prompt_id: str, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        entry = http_json(f"{server.url}/history/{prompt_id}").get(prompt_id)
        if entry:  # a prompt has a history entry once it has finished, well or not
            return entry
        if time.monotonic() > deadline:
            pytest.fail(f"prompt {prompt_id} did not finish in {timeout} s; see {server.log}")
        time.sleep(0.5)


def node_ids(name: str) -> dict:
    return {key: str(i) for i, (key, _, _) in enumerate(WORKFLOWS[name], 1)}


def test_demo_workflow_end_to_end(server):
    started = time.monotonic()
    entry = finished(server, post(server, api_prompt(WORKFLOWS[TABLE_DEMO]))["prompt_id"])
    print(f"\ndemo workflow over HTTP: {time.monotonic() - started:.1f} s from POST /prompt to its history entry")
    assert entry["status"]["status_str"] == "success", entry["status"]
    ids, outputs = node_ids(TABLE_DEMO), entry["outputs"]
    optimized = outputs[ids["optimize"]]
    base, sigmas = optimized["base_sigmas"], optimized["sigmas"]
    assert sigmas != base and sigmas[0] == base[0] and sigmas[-1] == base[-1] == 0
    assert optimized["cpe"][1] < optimized["cpe"][0] and optimized["text"]
    assert "images" not in optimized and "images" not in outputs[ids["profile"]]  # their panels, no plot preview
    pixels = []
    for save in ("save", "save_karras"):  # AFTER (VRG) and BEFORE (plain Karras), from the same seed
        images = outputs[ids[save]]["images"]
        assert len(images) == 8
        with Image.open(server.base / "output" / images[0]["subfolder"] / images[0]["filename"]) as image:
            assert image.size == (128, 128)
            pixels.append(image.tobytes())
    assert pixels[0] != pixels[1]  # a before and an after
    assert outputs[ids["save_table"]]["files"] == [f"{DEMO_TABLE}.safetensors"]
    assert (server.base / "models" / "vrg" / f"{DEMO_TABLE}.safetensors").is_file()

    reload = {"1": {"class_type": "VRGLoadErrorTable", "inputs": {"name": f"{DEMO_TABLE}.safetensors"}},
              "2": {"class_type": "VRGErrorTableToText", "inputs": {"table": ["1", 0]}},
              "3": {"class_type": "PreviewAny", "inputs": {"source": ["2", 0]}}}
    entry = finished(server, post(server, reload)["prompt_id"])
    assert entry["status"]["status_str"] == "success", entry["status"]
    assert entry["outputs"]["1"]["text"][0].startswith("eps table") and "24 levels" in entry["outputs"]["1"]["text"][0]
    assert entry["outputs"]["3"]["text"][0].startswith("VRG1:")


def test_a_search_node_added_from_the_menu_has_the_cpu_templates_step_count(server):
    """The frontend builds a new node from /object_info: its steps are what the CPU templates search and sample."""
    steps = http_json(f"{server.url}/object_info/VRGSearchSchedule")["VRGSearchSchedule"]["input"]["required"]["steps"]
    searched = {node["inputs"]["steps"] for node in api_prompt(WORKFLOWS[SEARCH_DEMO]).values()
                if node["class_type"] == "VRGSearchSchedule"}
    assert steps[1]["default"] == DEMO_STEPS and searched == {DEMO_STEPS}


@pytest.mark.parametrize("name", CHECKPOINT_TEMPLATES.values())
def test_templates_pass_prompt_validation(server, template_files, name):
    """The real host accepts each template (model files named as in the template, not real weights)."""
    answer = post(server, api_prompt(WORKFLOWS[name]))
    assert answer["node_errors"] == {}
    entry = finished(server, answer["prompt_id"])  # then fails loading the empty stand-in checkpoint
    assert entry["status"]["status_str"] == "error"
    failed = [m[1] for m in entry["status"]["messages"] if m[0] == "execution_error"]
    assert failed and failed[0]["node_type"] == "CheckpointLoaderSimple", failed


def test_search_demo_workflow_end_to_end_and_cached_on_the_second_run(server):
    import json

    ids = node_ids(SEARCH_DEMO)
    (server.base / "models" / "vrg" / "vrg_search_cache.json").unlink(missing_ok=True)  # other tests ran it too
    started = time.monotonic()
    entry = finished(server, post(server, api_prompt(WORKFLOWS[SEARCH_DEMO]))["prompt_id"])
    print(f"\nVRG+ search workflow over HTTP: {time.monotonic() - started:.1f} s")
    assert entry["status"]["status_str"] == "success", entry["status"]
    searched = entry["outputs"][ids["search"]]
    assert 0 < searched["evaluations"][0] <= 4000 and "images" not in searched
    gain, low, high = searched["held_out_gain"]  # measured on noises the search did not fit
    assert low <= gain <= high and searched["held_out_noises"][0] >= 3
    for save in ("save", "save_before", "save_converged"):
        assert len(entry["outputs"][ids[save]]["images"]) == 8
    for branch in ("before", "after"):  # each branch's distance to CONVERGED, per image
        judged = entry["outputs"][ids[f"distance_{branch}"]]
        assert len(judged["distance"]) == 8 and judged["text"][0].startswith(f"{branch.upper()}: ")
    cache = json.loads((server.base / "models" / "vrg" / "vrg_search_cache.json").read_text())
    stored = {r["steps"]: r["sigmas"] for r in cache["searches"].values()}  # one search per anchor of 4-30
    assert sorted(stored) == [4, 8, 16, 30] and stored[DEMO_STEPS] == searched["sigmas"]

    prompt = api_prompt(WORKFLOWS[SEARCH_DEMO])
    prompt[ids["ksampler"]]["inputs"]["seed"] = 1  # a changed graph, so the search node runs again
    prompt[ids["search"]]["inputs"]["batch_size"] = 8  # not part of the cache key
    again = finished(server, post(server, prompt)["prompt_id"])
    assert again["status"]["status_str"] == "success", again["status"]
    assert again["outputs"][ids["search"]]["evaluations"] == [0]  # from models/vrg/vrg_search_cache.json
    assert again["outputs"][ids["search"]]["sigmas"] == searched["sigmas"]
