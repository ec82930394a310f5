"""The nodes' bad-input matrix over HTTP on a real ComfyUI server, then a good prompt; cancel during profiling.

Every bad prompt is POSTed to /prompt. Either ComfyUI's own validation refuses it (HTTP 400 naming
the input: out-of-range numbers, names not in a list) or it runs and fails in a VRG node with our
own VRGError, whose message names the input and the fix — never a torch traceback. Some listed
inputs are valid and must simply work (steps 1 and 1000, denoise 0, a batch larger than the image
set, cfg 0); those cases assert success and a sane output. Afterwards the demo workflow must
still succeed on the same server.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import urllib.error
import uuid

import pytest

from bad_files import bad_tables, eps_sigmas, good_eps_table, table_bytes, write_oversized
from comfy_server import http_json
from test_server import finished, post
from workflows import TABLE_DEMO, WORKFLOWS, api_prompt, link

EPS_TABLE = "bundled: demo_eps"
FLOW_TABLE = "bundled: demo_flow"
BAD_DIR = "bad"  # under the server's models/vrg/
EMPTY_IMAGE_FOLDER = "vrg_empty_set"

MODEL = ("model", "VRGDemoModel", {"model": "eps"})
DIGIT = ("digit", "VRGDemoConditioning", {"digit": "3"})
NO_DIGIT = ("no_digit", "VRGDemoConditioning", {"digit": "none"})
IMAGES = ("images", "VRGDemoImageSet", {"digit": "3", "count": 16, "seed": 0})
EMPTY = ("empty", "EmptyLatentImage", {"width": 128, "height": 128, "batch_size": 2})
OPTIMIZE = {"gamma": 0.0, "start": "fixed", "method": "exact", "interpolation": "loglog"}
PROFILE = {"grid_size": 8, "samples_per_level": 4, "batch_size": 16, "seed": 0, "cfg": 1.0}


def with_input(nodes: list, key: str, **inputs) -> list:
    return [(k, c, {**i, **inputs} if k == key else i) for k, c, i in nodes]


def show(node: str) -> tuple:
    return ("show", "PreviewAny", {"source": link(node)})


def optimized_text(text: str, table: str = EPS_TABLE) -> list:
    """Sigmas typed as text -> VRG Optimize Sigmas with a bundled table."""
    return [("text", "VRGSigmasFromText", {"text": text}), ("table", "VRGLoadErrorTable", {"name": table}),
            ("opt", "VRGOptimizeSigmas", {"sigmas": link("text"), "table": link("table"), **OPTIMIZE}), show("opt")]


def optimized_schedule(steps: int = 10, denoise: float = 1.0, table: str = EPS_TABLE, between: list = ()) -> list:
    """The demo model's Karras sigmas (optionally through `between` nodes ending in "mid") -> VRG Optimize Sigmas."""
    source = "mid" if between else "sched"
    return [MODEL, ("sched", "BasicScheduler", {"model": link("model"), "scheduler": "karras", "steps": steps,
                                                "denoise": denoise}),
            *between, ("table", "VRGLoadErrorTable", {"name": table}),
            ("opt", "VRGOptimizeSigmas", {"sigmas": link(source), "table": link("table"), "model": link("model"),
                                          **OPTIMIZE}),
            show("opt")]


def sampled(sigmas_nodes: list, cfg: float = 1.0) -> list:
    """`sigmas_nodes` (ending in "opt") sampled with SamplerCustom on the demo model and decoded."""
    return [*sigmas_nodes[:-1], DIGIT, NO_DIGIT, EMPTY, ("sampler", "KSamplerSelect", {"sampler_name": "euler"}),
            ("sample", "SamplerCustom", {"model": link("model"), "add_noise": True, "noise_seed": 0, "cfg": cfg,
                                         "positive": link("digit"), "negative": link("no_digit"),
                                         "sampler": link("sampler"), "sigmas": link("opt"),
                                         "latent_image": link("empty")}),
            ("decode", "VRGDemoDecode", {"latent": link("sample"), "scale": 2}),
            ("preview", "PreviewImage", {"images": link("decode")})]


def ksampler(model: str = "apply", steps: int = 10, denoise: float = 1.0, cfg: float = 2.0, profile_cfg=None,
             table: str = EPS_TABLE) -> list:
    """KSampler with the `vrg` scheduler on `model` ("apply": through VRG Apply; "model": the plain demo model).

    With `profile_cfg` the table is profiled in the same prompt at that cfg instead of loaded.
    """
    if profile_cfg is None:
        source = [("table", "VRGLoadErrorTable", {"name": table})]
    else:
        source = [IMAGES, ("table", "VRGProfile", {"model": link("model"), "latent": link("images"), **PROFILE,
                                                   "cfg": profile_cfg, "positive": link("digit"),
                                                   "negative": link("no_digit")})]
    return [MODEL, DIGIT, NO_DIGIT, EMPTY, *source,
            ("apply", "VRGApply", {"model": link("model"), "table": link("table"), "base_scheduler": "karras",
                                   "gamma": 0.0, "start": "fixed"}),
            ("ks", "KSampler", {"model": link(model), "seed": 0, "steps": steps, "cfg": cfg, "sampler_name": "euler",
                                "scheduler": "vrg", "positive": link("digit"), "negative": link("no_digit"),
                                "latent_image": link("empty"), "denoise": denoise}),
            ("decode", "VRGDemoDecode", {"latent": link("ks"), "scale": 2}),
            ("preview", "PreviewImage", {"images": link("decode")})]


def profiled(latent_nodes: list, latent: str = "images", **options) -> list:
    """VRG Profile of the demo model on `latent`, saved by nothing (shown as text)."""
    return [MODEL, DIGIT, NO_DIGIT, *latent_nodes,
            ("prof", "VRGProfile", {"model": link("model"), "latent": link(latent), **PROFILE,
                                    "positive": link("digit"), "negative": link("no_digit"), **options}),
            ("text", "VRGErrorTableToText", {"table": link("prof")}), show("text")]


def saved(name: str) -> list:
    return [("table", "VRGLoadErrorTable", {"name": EPS_TABLE}), ("save", "VRGSaveErrorTable",
                                                                  {"table": link("table"), "name": name})]


def loaded(name: str) -> list:
    return [("table", "VRGLoadErrorTable", {"name": name}), ("text", "VRGErrorTableToText", {"table": link("table")}),
            show("text")]


# ---- the matrix ------------------------------------------------------------------------------
# Failing cases: id -> (nodes, failing node key, what names the input, what tells the fix).
FAILS = {
    "sigmas_empty": (optimized_text(""), "text", "sigmas text has 0 value", "e.g. '14.6, 0'"),
    "sigmas_one_element": (optimized_text("5"), "text", "sigmas text has 1 value", "at least 2"),
    "sigmas_nan": (optimized_text("nan, 1, 0"), "text", "sigmas text contains NaN", "give finite noise levels"),
    "sigmas_inf": (optimized_text("14, inf, 0"), "text", "sigmas text contains NaN or infinity", "finite"),
    "sigmas_increasing": (optimized_text("0, 1, 2"), "text", "sigmas text must decrease", "scheduler node"),
    "sigmas_duplicate": (optimized_text("3, 3, 0"), "text", "sigma[0]=3 <= sigma[1]=3", "scheduler node"),
    "sigmas_duplicate_in_float32": (optimized_text("1.00000001, 1, 0"), "text", "as float32 SIGMAS",
                                    "scheduler node"),
    "sigmas_negative": (optimized_text("3, 1, -1"), "text", "sigmas text contains a negative", "0 or more"),
    "sigmas_above_table": (optimized_text("100, 1, 0"), "opt", "sigmas span [1, 100]",
                           "use a table profiled on this model"),
    "sigmas_below_table": (optimized_text("3, 0.001, 0"), "opt", "sigmas span [0.001, 3]",
                           "use a table profiled on this model"),
    "sigmas_flipped": (optimized_schedule(between=[("mid", "FlipSigmas", {"sigmas": link("sched")})]), "opt",
                       "sigmas must decrease strictly", "output of a scheduler node"),
    "table_of_another_kind": (optimized_schedule(table=FLOW_TABLE), "opt", "table is for flow (const) models but this model "
                              "is eps", "use a table profiled on this model"),
    "apply_table_of_another_kind": (ksampler(table=FLOW_TABLE), "apply", "table is for flow (const) models",
                                    "use a table profiled on this model"),
    "table_of_another_sigma_range": (optimized_schedule(table=f"{BAD_DIR}/narrow_range.safetensors"), "opt",
                                     "error table covers [0.1, 2]", "use a table profiled on this model"),
    "vrg_scheduler_without_apply": (ksampler(model="model"), "ks", "'vrg' scheduler needs a VRG Apply node",
                                    "connect the model through VRG Apply"),
    "merge_tables_of_two_kinds": ([("a", "VRGLoadErrorTable", {"name": EPS_TABLE}),
                                   ("b", "VRGLoadErrorTable", {"name": FLOW_TABLE}),
                                   ("m", "VRGMergeErrorTables", {"table_1": link("a"), "table_2": link("b")}),
                                   ("text", "VRGErrorTableToText", {"table": link("m")}), show("text")],
                                  "m", "cannot merge a table of flow (const) models into one of eps models", "merge tables of one model"),
    **{f"table_file_{case}": (loaded(f"{BAD_DIR}/{case}.safetensors"), "table", f"'{case}.safetensors'", fix)
       for case, (_, fix) in bad_tables().items()},
    "table_file_oversized": (loaded(f"{BAD_DIR}/oversized.safetensors"), "table", "'oversized.safetensors' is",
                             "check that it is the right file"),
    "table_file_txt_not_utf8": (loaded(f"{BAD_DIR}/binary.txt"), "table", "'binary.txt' is not UTF-8",
                                "official VRG text file"),
    "save_name_parent": (saved("../x"), "save", "table name '../x' points outside models/vrg/",
                         "use a plain name"),
    "save_name_hidden_parent": (saved("a/../../x"), "save", "'a/../../x' points outside", "use a plain name"),
    "save_name_nul_byte": (saved("a\x00b"), "save", "contains a NUL byte", "use a plain name"),
    "save_name_blank": (saved("   "), "save", "give the table a file name", "e.g. 'sd15_cfg7'"),
    "save_name_too_long": (saved("t" * 300), "save", "300 characters long", "use a shorter name"),
    "empty_image_set": ([("set", "VRGLoadImageSet", {"folder": EMPTY_IMAGE_FOLDER, "count": 8, "seed": 0,
                                                     "width": 64, "height": 64}),
                         ("preview", "PreviewImage", {"images": link("set")})],
                        "set", f"folder '{EMPTY_IMAGE_FOLDER}' has no images", "put your image set in it"),
    "profile_on_empty_latent": (profiled([EMPTY], latent="empty"), "prof", "the latent is all zeros",
                                "VAE Encode your image set"),
    "profile_latent_channels": (profiled([IMAGES, EMPTY, ("mix", "LatentAdd", {"samples1": link("empty"),
                                                                              "samples2": link("images")})],
                                         latent="mix"),
                                "prof", "the latent has 4 channels but this model's latents have 1",
                                "VAE Encode the images with this model's VAE"),
    "profile_cfg_without_negative": ([MODEL, DIGIT, IMAGES,
                                      ("prof", "VRGProfile", {"model": link("model"), "latent": link("images"),
                                                              **PROFILE, "cfg": 3.0, "positive": link("digit")}),
                                      ("text", "VRGErrorTableToText", {"table": link("prof")}), show("text")],
                                     "prof", "cfg 3 mixes in the negative conditioning", "connect one, or set cfg to 1"),
    "table_text_not_vrg": ([("t", "VRGErrorTableFromText", {"text": "not a table"}),
                            ("x", "VRGErrorTableToText", {"table": link("t")}), show("x")],
                           "t", "table text must start with 'VRG1:'", "paste the text made by VRG Error Table To Text"),
    "table_text_cut_short": ([("t", "VRGErrorTableFromText",
                               {"text": "VRG1:" + base64.b64encode(good_eps_table()[:-64]).decode()}),
                              ("x", "VRGErrorTableToText", {"table": link("t")}), show("x")],
                             "t", "table text is damaged", "copy the whole text made by VRG Error Table To Text again"),
    "decode_other_latent": ([EMPTY, ("decode", "VRGDemoDecode", {"latent": link("empty"), "scale": 2}),
                             ("preview", "PreviewImage", {"images": link("decode")})],
                            "decode", "got shape (2, 4, 16, 16)", "connect latents sampled with VRG Demo Model"),
}


# ComfyUI 0.3.64 does not check the values of V3 combos in API prompts (only ints and floats against their
# bounds), so the nodes check their own: each of these reaches the node and must fail there, clearly.
COMBOS = {
    "load_name_parent": (loaded("../x.safetensors"), "table", "'../x.safetensors' is not in models/vrg/",
                         "refresh the list"),
    "load_name_absolute": (loaded("/etc/passwd"), "table", "'/etc/passwd' is not in models/vrg/", "refresh the list"),
    "load_name_nul_byte": (loaded("a\x00b.safetensors"), "table", "is not in models/vrg/", "refresh the list"),
    "image_folder_parent": ([("set", "VRGLoadImageSet", {"folder": "../output", "count": 8, "seed": 0, "width": 64,
                                                         "height": 64}),
                             ("preview", "PreviewImage", {"images": link("set")})],
                            "set", "folder '../output' is outside ComfyUI's input directory", "pick one of its subfolders"),
    "image_folder_absolute": ([("set", "VRGLoadImageSet", {"folder": "/etc", "count": 8, "seed": 0, "width": 64,
                                                           "height": 64}),
                               ("preview", "PreviewImage", {"images": link("set")})],
                              "set", "folder '/etc' is outside", "pick one of its subfolders"),
    "schedule_unknown": ([("s", "VRGLoadSchedule", {"schedule": "../../etc/passwd", "base_scheduler": "karras",
                                                    "steps": 10}), show("s")],
                         "s", "no bundled table named '../../etc/passwd'", "bundled: demo_eps"),
    "searched_schedule_unknown": ([MODEL, ("s", "VRGLoadSearchedSchedule", {"model": link("model"), "steps": 8,
                                                                           "schedule": "../../etc/passwd"}), show("s")],
                                  "s", "schedule '../../etc/passwd' is not in models/vrg/schedules/", "refresh the list"),
    "schedule_base_scheduler_unknown": ([("s", "VRGLoadSchedule", {"schedule": "demo_eps", "base_scheduler": "nope",
                                                                   "steps": 10}), show("s")],
                                        "s", "base_scheduler 'nope' is not one of the choices", "pick one of"),
    "apply_base_scheduler_vrg": (with_input(ksampler(), "apply", base_scheduler="vrg"), "apply",
                                 "base scheduler 'vrg' is not available", "pick one of the listed schedulers"),
    "apply_start_unknown": (with_input(ksampler(), "apply", start="free"), "apply",
                            "start 'free' is not one of the choices", "pick one of: fixed, paper"),
    "optimize_method_unknown": (with_input(optimized_schedule(), "opt", method="adam"), "opt",
                                "method 'adam' is unknown", "use one of"),
    "demo_model_unknown": ([("model", "VRGDemoModel", {"model": "sdxl"}), show("model")], "model",
                           "demo model 'sdxl' is unknown", "use one of: eps, flow"),
    "demo_digit_unknown": ([("digit", "VRGDemoConditioning", {"digit": "12"}), show("digit")], "digit",
                           "digit '12' is not one of the choices", "pick one of"),
}


FAILS.update(COMBOS)

# Cases ComfyUI's own validation refuses with HTTP 400 (numbers out of their bounds): id -> (nodes, node, input).
REFUSED = {
    "profile_grid_size_1": (profiled([IMAGES], grid_size=1), "prof", "grid_size"),
    "profile_samples_0": (profiled([IMAGES], samples_per_level=0), "prof", "samples_per_level"),
    "profile_batch_0": (profiled([IMAGES], batch_size=0), "prof", "batch_size"),
    "profile_cfg_negative": (profiled([IMAGES], cfg=-1.0), "prof", "cfg"),
    "image_set_count_0": (profiled([with_input([IMAGES], "images", count=0)[0]]), "images", "count"),
    "optimize_gamma_2": (with_input(optimized_schedule(), "opt", gamma=2.0), "opt", "gamma"),
    "load_schedule_steps_0": ([("s", "VRGLoadSchedule", {"schedule": "demo_eps", "base_scheduler": "karras",
                                                         "steps": 0}), show("s")], "s", "steps"),
}


def outputs_of(nodes: list, entry: dict, key: str) -> dict:
    return entry["outputs"].get(str([k for k, _, _ in nodes].index(key) + 1), {})


def check_denoise_0(nodes, entry):
    """Denoise 0 gives no sigmas; VRG passes them through (as the host's samplers pass the latent) and says so."""
    opt = outputs_of(nodes, entry, "opt")
    assert opt["sigmas"] == [] and "no step to optimise" in opt["text"][0]
    assert outputs_of(nodes, entry, "preview")["images"]


def check_steps_1(nodes, entry):
    """One step: both ends are held, nothing can move; the schedule comes back as given."""
    opt = outputs_of(nodes, entry, "opt")
    assert len(opt["sigmas"]) == 2 and opt["sigmas"] == opt["base_sigmas"] and opt["sigmas"][-1] == 0
    assert outputs_of(nodes, entry, "preview")["images"]


def check_steps_1000(nodes, entry):
    """1000 steps: optimised, ends kept, strictly decreasing, CPE not higher."""
    opt = outputs_of(nodes, entry, "opt")
    s, base = opt["sigmas"], opt["base_sigmas"]
    assert len(s) == 1001 and s[0] == base[0] and s[-1] == 0 and all(a > b for a, b in zip(s, s[1:]))
    assert opt["cpe"][1] <= opt["cpe"][0]


def check_images(nodes, entry):
    images = outputs_of(nodes, entry, "preview")["images"]
    assert len(images) == 2, images


def check_small_image_set(nodes, entry):
    """A batch larger than the image set: every level still gets its samples, cycling over the 3 latents."""
    text = outputs_of(nodes, entry, "prof")["text"][0]
    assert "8 levels x 4 samples on 3 latents" in text, text
    assert outputs_of(nodes, entry, "show")["text"][0].startswith("VRG1:")


def check_profile_cfg_0(nodes, entry):
    """cfg 0 is the negative prompt's prediction alone: a valid setting; the table records it, the sampler runs."""
    assert "cfg 0" in outputs_of(nodes, entry, "table")["text"][0]
    check_images(nodes, entry)


# Valid inputs that must simply work: id -> (nodes, check).
WORKS = {
    "denoise_0": (sampled(optimized_schedule(denoise=0.0)), check_denoise_0),
    "steps_1": (sampled(optimized_schedule(steps=1)), check_steps_1),
    "steps_1000": (optimized_schedule(steps=1000), check_steps_1000),
    "ksampler_vrg_steps_1": (ksampler(steps=1), check_images),
    "ksampler_vrg_denoise_0": (ksampler(denoise=0.0), check_images),
    "batch_larger_than_image_set": (profiled([with_input([IMAGES], "images", count=3)[0]], batch_size=64),
                                    check_small_image_set),
    "cfg_0": (ksampler(cfg=0.0, profile_cfg=0.0), check_profile_cfg_0),
}


@pytest.fixture(scope="module")
def bad_files(server):
    """The broken table files in models/vrg/bad/, an empty folder in input/."""
    folder = server.base / "models" / "vrg" / BAD_DIR
    folder.mkdir(parents=True, exist_ok=True)
    for case, (data, _) in bad_tables().items():
        (folder / f"{case}.safetensors").write_bytes(data)
    write_oversized(folder / "oversized.safetensors")
    (folder / "binary.txt").write_bytes(bytes(range(256)))
    narrow = eps_sigmas(0.1, 2.0)
    (folder / "narrow_range.safetensors").write_bytes(table_bytes("eps", narrow, 1.0 / (1.0 + narrow**2)))
    (server.base / "input" / EMPTY_IMAGE_FOLDER).mkdir(parents=True, exist_ok=True)
    return folder


def execution_error(entry: dict) -> dict:
    assert entry["status"]["status_str"] == "error", entry["status"]
    errors = [m[1] for m in entry["status"]["messages"] if m[0] == "execution_error"]
    assert len(errors) == 1, entry["status"]["messages"]
    return errors[0]


def refused(server, prompt: dict) -> dict:
    """The 400 answer of /prompt to a prompt ComfyUI's validation refuses."""
    try:
        answer = http_json(f"{server.url}/prompt", {"prompt": prompt, "client_id": "vrg-tests"})
    except urllib.error.HTTPError as e:
        assert e.code == 400
        return json.loads(e.read())
    pytest.fail(f"ComfyUI accepted the prompt: {answer}")


def test_matrix_size():
    assert len(FAILS) + len(REFUSED) + len(WORKS) >= 40


def test_every_bad_prompt_then_a_good_one(server, bad_files):
    started, problems = time.monotonic(), []
    for case, (nodes, key, names, fix) in FAILS.items():
        error = execution_error(finished(server, post(server, api_prompt(nodes))["prompt_id"], timeout=120))
        message = error["exception_message"]
        expected_node = str([k for k, _, _ in nodes].index(key) + 1)
        if not (error["exception_type"] == "vrg.VRGError" and error["node_id"] == expected_node
                and names in message and fix in message):
            problems.append(f"{case}: {error['node_type']} {error['exception_type']}: {message}")
    for case, (nodes, key, input_name) in REFUSED.items():
        answer = refused(server, api_prompt(nodes))
        node_id = str([k for k, _, _ in nodes].index(key) + 1)
        errors = answer["node_errors"].get(node_id, {}).get("errors", [])
        if not any(e["extra_info"]["input_name"] == input_name for e in errors):
            problems.append(f"{case}: {answer}")
    for case, (nodes, check) in WORKS.items():
        entry = finished(server, post(server, api_prompt(nodes))["prompt_id"], timeout=300)
        if entry["status"]["status_str"] != "success":
            problems.append(f"{case}: {entry['status']['messages'][-1]}")
            continue
        try:
            check(nodes, entry)
        except AssertionError as e:
            problems.append(f"{case}: {e}")
    print(f"\n{len(FAILS)} failing, {len(REFUSED)} refused, {len(WORKS)} valid prompts in "
          f"{time.monotonic() - started:.1f} s")
    assert problems == []
    assert not (server.base / "x.safetensors").exists() and not (server.base / "models" / "x.safetensors").exists()
    assert not list((server.base / "models" / "vrg").rglob("*.tmp"))

    good = api_prompt(WORKFLOWS[TABLE_DEMO])
    profile = next(node for node in good.values() if node["class_type"] == "VRGProfile")
    profile["inputs"]["seed"] = 1  # not the cached result of an earlier run: the whole graph runs again
    entry = finished(server, post(server, good)["prompt_id"])
    assert entry["status"]["status_str"] == "success", entry["status"]


# ---- cancel during profiling ----------------------------------------------------------------
CANCELLED_TABLE = "cancelled_profile"


def long_profile(samples_per_level: int) -> dict:
    """Demo model profiled (64 levels x `samples_per_level`) and saved as CANCELLED_TABLE."""
    return api_prompt([MODEL, DIGIT, IMAGES,
                       ("prof", "VRGProfile", {"model": link("model"), "latent": link("images"), **PROFILE,
                                               "grid_size": 64, "samples_per_level": samples_per_level,
                                               "positive": link("digit")}),
                       ("save", "VRGSaveErrorTable", {"table": link("prof"), "name": CANCELLED_TABLE})])


async def cancel_once_profiling(server, prompt: dict, node_id: str) -> tuple[str, float]:
    """Queue `prompt`, wait (on the websocket) for node `node_id`'s first progress, POST /interrupt.

    Returns the prompt id and the seconds from the interrupt to the prompt's end.
    """
    import aiohttp  # ComfyUI's own dependency: only in the host's venv

    client = uuid.uuid4().hex
    async with aiohttp.ClientSession() as session, session.ws_connect(f"{server.url}/ws?clientId={client}") as ws:
        async with session.post(f"{server.url}/prompt", json={"prompt": prompt, "client_id": client}) as r:
            prompt_id = (await r.json())["prompt_id"]
        interrupted_at = None
        async for message in ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue  # binary preview frames
            event = json.loads(message.data)
            data = event.get("data", {})
            if data.get("prompt_id") != prompt_id:
                continue
            if interrupted_at is None and event["type"] == "progress" and data.get("node") == node_id:
                assert 0 < data["value"] < data["max"]
                async with session.post(f"{server.url}/interrupt", json={"prompt_id": prompt_id}) as r:
                    assert r.status == 200
                interrupted_at = time.monotonic()
            if event["type"] in ("execution_interrupted", "execution_error", "execution_success"):
                assert interrupted_at is not None, f"the prompt ended before profiling reported progress: {event}"
                return prompt_id, time.monotonic() - interrupted_at
    pytest.fail("the websocket closed before the prompt ended")


def test_cancel_during_profiling_writes_nothing_and_the_next_run_works(server):
    folder = server.base / "models" / "vrg"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{CANCELLED_TABLE}.safetensors"
    prompt = long_profile(samples_per_level=100_000)  # 6.4 million evaluations: hours, unless cancelled
    node_id = next(i for i, node in prompt.items() if node["class_type"] == "VRGProfile")
    prompt_id, seconds = asyncio.run(asyncio.wait_for(cancel_once_profiling(server, prompt, node_id), 300))
    entry = finished(server, prompt_id)
    assert entry["status"]["status_str"] == "error"
    interrupted = [m[1] for m in entry["status"]["messages"] if m[0] == "execution_interrupted"]
    assert interrupted and interrupted[0]["node_type"] == "VRGProfile", entry["status"]["messages"]
    assert seconds < 30, f"profiling took {seconds:.1f} s to stop"
    assert not target.exists() and not list(folder.rglob("*.tmp"))
    print(f"\nprofiling stopped {seconds:.2f} s after POST /interrupt; nothing written")

    entry = finished(server, post(server, long_profile(samples_per_level=2))["prompt_id"])
    assert entry["status"]["status_str"] == "success", entry["status"]
    assert target.is_file() and not list(folder.rglob("*.tmp"))
