"""The frontend served by the real server, in Debian's headless Chromium."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from comfy_server import PACK, http_json
from workflows import (CHECKPOINT_TEMPLATES, COMPARE_DEMO, DEMO_STEPS, NODE_IDS, SEARCH_DEMO, TABLE_DEMO,
                       TEMPLATE_DOWNLOADS, TEMPLATE_MODELS, WORKFLOWS, api_prompt)

APP_READY = "window.app && window.app.graph && window.LiteGraph && window.app.canvas"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")
TEMPLATES = Path(__file__).resolve().parents[2] / "example_workflows"

ADD_NODE = """
(() => {
  const node = LiteGraph.createNode("VRGOptimizeSigmas");
  app.graph.add(node);
  node.pos = [420, 120];
  app.canvas.setDirty(true, true);
  return {category: node.constructor.category, title: node.title, inputs: node.inputs.map((i) => i.name),
          widgets: node.widgets.map((w) => w.name), count: app.graph.nodes.length};
})()
"""

LOAD_TEMPLATE = """
(async (name) => {
  const workflow = await (await fetch(`/api/workflow_templates/%s/${name}.json`)).json();
  await app.loadGraphData(workflow);
  const thumbnail = await fetch(`/api/workflow_templates/%s/${name}.jpg`);
  return {prompt: (await app.graphToPrompt()).output, thumbnail: thumbnail.status,
          type: thumbnail.headers.get("content-type")};
})
""" % (PACK, PACK)


SEED_CONTROLS = """
(async (saved) => {
  const fresh = {};
  for (const type of ["VRGSearchSchedule", "VRGCompareSchedules"]) {
    const node = LiteGraph.createNode(type);
    app.graph.add(node);
    fresh[type] = node.widgets.find((w) => w.name === "control_after_generate")?.value;
    app.graph.remove(node);
  }
  await app.loadGraphData(saved);
  const loaded = app.graph.nodes.find((n) => n.type === "VRGSearchSchedule");
  return {fresh, loaded: loaded.widgets.find((w) => w.name === "control_after_generate").value};
})
"""


SHARED_SAMPLER = """
(async (name) => {
  const workflow = await (await fetch(`/api/workflow_templates/%s/${name}.json`)).json();
  await app.loadGraphData(workflow);
  let primitive;
  for (let i = 0; i < 40 && !primitive; i++) {  // a Primitive makes its widget once the graph is configured
    await new Promise((r) => setTimeout(r, 100));
    primitive = app.graph.nodes.find((n) => n.type === "PrimitiveNode" && n.widgets?.length &&
                                            n.outputs[0].widget?.name === "sampler_name");
  }
  primitive.widgets[0].value = "heun";
  primitive.widgets[0].callback?.("heun");
  const prompt = (await app.graphToPrompt()).output;
  return Object.values(prompt).filter((n) => "sampler_name" in n.inputs)
    .map((n) => [n.class_type, n.inputs.sampler_name, n.inputs.steps ?? null]);
})
""" % PACK


def inputs_only(prompt: dict) -> dict:
    return {node_id: {"class_type": node["class_type"], "inputs": node["inputs"]} for node_id, node in prompt.items()}


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")
def test_frontend_loads_registers_nodes_and_templates(server, template_files):
    from cdp import Browser  # aiohttp: a ComfyUI requirement

    assert sorted(http_json(f"{server.url}/workflow_templates")[PACK]) == sorted(WORKFLOWS)

    async def session():
        async with Browser(str(CHROMIUM)) as browser:
            await browser.goto(server.url, APP_READY)
            registered = await browser.evaluate(
                "Object.keys(LiteGraph.registered_node_types).filter((t) => t.startsWith('VRG'))")
            assert set(registered) == NODE_IDS
            added = await browser.evaluate(ADD_NODE)
            assert added["category"] == "sampling/vrg" and added["title"] == "VRG Optimize Sigmas"
            assert {"sigmas", "table", "model"} <= set(added["inputs"]) and "gamma" in added["widgets"]
            saved = json.loads((TEMPLATES / f"{SEARCH_DEMO}.json").read_text())
            for node in saved["nodes"]:
                if node["type"] == "VRGSearchSchedule":
                    node["widgets_values"] = ["randomize" if v == "fixed" else v for v in node["widgets_values"]]
            controls = await browser.evaluate(f"({SEED_CONTROLS})({json.dumps(saved)})")
            assert controls == {"fresh": {"VRGSearchSchedule": "fixed", "VRGCompareSchedules": "fixed"},
                                "loaded": "randomize"}  # a new node's seed is fixed; a saved workflow keeps its own
            samplers = await browser.evaluate(f"({SHARED_SAMPLER})({json.dumps(SEARCH_DEMO)})")
            assert sorted(map(tuple, samplers)) == [("KSampler", "dpmpp_2m", 100), ("KSampler", "heun", DEMO_STEPS),
                                                    ("KSampler", "heun", DEMO_STEPS),
                                                    ("VRGSearchSchedule", "heun", DEMO_STEPS)]
            for name in sorted(WORKFLOWS, key=lambda n: n == TABLE_DEMO):  # the demo last, for the screenshot
                nodes = WORKFLOWS[name]
                loaded = await browser.evaluate(f"({LOAD_TEMPLATE})({json.dumps(name)})")
                assert inputs_only(loaded["prompt"]) == api_prompt(nodes), f"{name}.json differs from workflows.py"
                assert loaded["thumbnail"] == 200 and loaded["type"] == "image/jpeg"
            await asyncio.sleep(1)
            ARTIFACTS.mkdir(exist_ok=True)
            shot = await browser.screenshot(ARTIFACTS / "frontend.png")
            print(f"\nfrontend screenshot (demo workflow loaded): {shot}")
            return browser.errors

    errors = asyncio.run(session())
    assert errors == [], "JavaScript errors:\n" + "\n".join(errors)


RUN_TEMPLATE = """
(async (name) => {
  const workflow = await (await fetch(`/api/workflow_templates/%s/${name}.json`)).json();
  await app.loadGraphData(workflow);
  const sizes = Object.fromEntries(app.graph.nodes.filter((n) => n.widgets?.some((w) => w.name === "vrg_chart"))
    .map((n) => [n.type, [...n.size]]));
  await app.queuePrompt(0, 1);
  return sizes;
})
""" % PACK

CHARTS = """
(async () => {
  const frame = () => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
  const out = [];
  for (const n of app.graph.nodes.filter((n) => n.widgets?.some((w) => w.name === "vrg_chart"))) {
    app.canvas.centerOnNode(n);  // a DOM widget is laid out only while its node is in view
    app.canvas.setDirty(true, true);
    await frame();
    const chart = n.widgets.find((w) => w.name === "vrg_chart").element;
    const box = chart.querySelector(".vrg-chart-plot").getBoundingClientRect();
    const text = chart.querySelector(".vrg-text");
    const shown = text.getBoundingClientRect();
    const head = document.createRange();  // the text's first 160 characters (its first sentence, at least)
    if (text.firstChild) {
      head.setStart(text.firstChild, 0);
      head.setEnd(text.firstChild, Math.min(160, text.firstChild.length));
    }
    const first = head.getBoundingClientRect();
    out.push({type: n.type, series: chart.querySelectorAll("polyline.vrg-series").length,
              colours: [...chart.querySelectorAll("polyline.vrg-series")].map((p) => p.getAttribute("stroke")),
              hover: [...chart.querySelectorAll("circle.vrg-point > title, rect.vrg-bar > title")].map((t) => t.textContent),
              bars: [...chart.querySelectorAll("rect.vrg-bar")].map((r) => r.getAttribute("fill")),
              width: box.width, height: box.height, size: [...n.size], text: text.textContent,
              note: chart.querySelector("text.vrg-note")?.textContent ?? null,
              head_visible: first.height > 0 && first.top >= shown.top - 1 && first.bottom <= shown.bottom + 1,
              text_below_chart: shown.top >= box.bottom - 1, previews: (n.imgs ?? []).length,
              progress_text: (n.widgets ?? []).some((w) => w.name === "$$node-text-preview")});
  }
  return out;
})()
"""


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")
def test_vrg_nodes_draw_their_results_as_a_chart_after_a_run(server, template_files):
    """web/vrg_chart.js: after each of two runs of each CPU template in the browser, its VRG nodes show one
    panel — a vector chart (values on hover, one colour per thing) and below it the node's whole text, its
    first sentence visible without scrolling — in the room they had before the run (no node grows over its
    neighbours), with no image preview or progress text drawn over it; no JavaScript errors; a screenshot of
    each after the second run."""
    from cdp import Browser

    expected = {TABLE_DEMO: {"VRGProfile": ["#2ca02c"], "VRGOptimizeSigmas": ["#787878", "#1f77b4"]},
                # base, the best other schedule (the best fixed ones are always sampled: here not the base), VRG+
                SEARCH_DEMO: {"VRGSearchSchedule": ["#787878", "#ff7f0e", "#d62728"]},
                # the search as above; the comparison's bars: VRG+ and Karras, the closer on these 16 noises red
                COMPARE_DEMO: {"VRGSearchSchedule": ["#787878", "#ff7f0e", "#d62728"],
                               "VRGCompareSchedules": ["#787878", "#d62728"]}}

    async def session():
        async with Browser(str(CHROMIUM), width=1600, height=1000) as browser:
            await browser.goto(server.url, APP_READY)
            for name, charts in expected.items():
                sizes = await browser.evaluate(f"({RUN_TEMPLATE})({json.dumps(name)})")
                assert set(sizes) >= set(charts), f"{name}: room for a chart on {sorted(sizes)} only"
                for run in (1, 2):
                    if run == 2:  # the same graph again, in the same tab: ComfyUI serves it from its cache
                        done = len(http_json(f"{server.url}/history"))
                        await browser.evaluate("app.queuePrompt(0, 1)")
                        for _ in range(600):
                            await asyncio.sleep(0.5)
                            if len(http_json(f"{server.url}/history")) > done and \
                                    not http_json(f"{server.url}/queue")["queue_running"]:
                                break
                        await asyncio.sleep(2)
                    drawn = {}
                    for _ in range(600):  # the run, then the panel
                        await asyncio.sleep(0.5)
                        drawn = {c["type"]: c for c in await browser.evaluate(CHARTS)
                                 if (c["series"] or c["bars"]) and c["text"]}
                        if set(drawn) >= set(charts):
                            break
                    assert set(drawn) >= set(charts), f"{name}, run {run}: panels on {sorted(drawn)} only"
                    for node_type, colours in charts.items():
                        chart = drawn[node_type]
                        assert chart["size"] == sizes[node_type], f"{node_type} grew in run {run}"
                        drawn_colours = sorted(chart["bars"]) if node_type == "VRGCompareSchedules" else chart["colours"]
                        assert drawn_colours == colours and chart["width"] > 100 and chart["height"] > 100, chart
                        assert chart["hover"] and all(": " in t for t in chart["hover"]), chart["hover"][:3]
                        assert chart["head_visible"] and chart["text_below_chart"], (run, chart["text"])
                        assert chart["previews"] == 0 and not chart["progress_text"], chart
                        if node_type == "VRGSearchSchedule":  # the out-of-sample figure, labelled in the chart
                            assert chart["note"].startswith("searched ") and "held-back noises" in chart["note"]
                await asyncio.sleep(1)
                ARTIFACTS.mkdir(exist_ok=True)
                print(f"\nchart screenshot: {await browser.screenshot(ARTIFACTS / f'chart_{name}.png')}")
            return browser.errors

    errors = asyncio.run(session())
    assert errors == [], "JavaScript errors:\n" + "\n".join(errors)


MISSING_MODELS_DIALOG = """
(async (name) => {
  const workflow = await (await fetch(`/api/workflow_templates/%s/${name}.json`)).json();
  await app.loadGraphData(workflow);
  for (let i = 0; i < 40; i++) {
    const dialog = [...document.querySelectorAll(".p-dialog")].find((d) => d.innerText.includes("checkpoints /"));
    if (dialog) return dialog.innerText;
    await new Promise((r) => setTimeout(r, 250));
  }
  return null;
})
""" % PACK


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")
def test_checkpoint_templates_offer_their_model_downloads(server, template_files):
    """Each checkpoint template names where its file is published; without the file, the frontend's missing-model
    dialog offers it (with the file present, as the other tests have it, nothing is shown)."""
    from cdp import Browser

    for family, name in CHECKPOINT_TEMPLATES.items():
        nodes = json.loads((TEMPLATES / f"{name}.json").read_text())["nodes"]
        loader = next(n for n in nodes if n["type"] == "CheckpointLoaderSimple")
        file = TEMPLATE_MODELS[family]
        assert loader["properties"]["models"] == [{"name": file, "url": TEMPLATE_DOWNLOADS[file],
                                                   "directory": "checkpoints"}]
        assert TEMPLATE_DOWNLOADS[file].startswith("https://huggingface.co/") and file in loader["widgets_values"]

    stand_in = server.base / "models" / "checkpoints" / TEMPLATE_MODELS["sd15"]
    aside = stand_in.with_name("aside.bin")
    stand_in.rename(aside)
    try:
        async def session():
            async with Browser(str(CHROMIUM)) as browser:
                await browser.goto(server.url, APP_READY)
                return await browser.evaluate(f"({MISSING_MODELS_DIALOG})({json.dumps(CHECKPOINT_TEMPLATES['sd15'])})")

        shown = asyncio.run(session())
    finally:
        aside.rename(stand_in)
    assert shown is not None and f"checkpoints / {TEMPLATE_MODELS['sd15']}" in shown, shown


TEMPLATE_BROWSER = """
(async (pack) => {
  await app.extensionManager.command.execute("Comfy.BrowseTemplates");
  let category;
  for (let i = 0; i < 40 && !category; i++) {
    await new Promise((r) => setTimeout(r, 250));
    category = [...document.querySelectorAll("[role=option]")].find((e) => e.innerText.trim() === pack);
  }
  category.click();
  await new Promise((r) => setTimeout(r, 1500));
  return [...document.querySelectorAll(".template-card")].map((card) => {
    const title = card.querySelector("h3, [title]");
    return {title: title.innerText.trim(), whole: title.scrollHeight <= title.clientHeight + 1};
  });
})
"""

CLOSE_DIALOG = """
(async () => {
  document.querySelector(".p-dialog-close-button, .p-dialog-header-close")?.click();
  await new Promise((r) => setTimeout(r, 1000));
  app.graph.clear();
  app.canvas.setDirty(true, true);
  return document.querySelectorAll(".template-card").length;
})()
"""

SEARCH_RESULTS = "[...document.querySelectorAll('[role=option]')].map((e) => e.innerText.split('\\n')[0].trim())"


async def double_click(browser, x: int, y: int) -> None:
    for count in (1, 2):
        for kind in ("mousePressed", "mouseReleased"):
            await browser.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=count)


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")
def test_node_search_lists_vrg_plus_first_and_the_template_browser_lists_the_templates_in_order(server):
    """Typed "vrg" in the node search (a double click on the empty canvas), VRG+ is the first result; the
    template browser lists the pack's templates in their numbered order (whatever order the server's glob gives)
    with each title whole (not clamped); screenshots of both at 100 % zoom."""
    from cdp import Browser

    async def session():
        async with Browser(str(CHROMIUM), width=1600, height=1000) as browser:
            await browser.goto(server.url, APP_READY)
            cards = await browser.evaluate(f"({TEMPLATE_BROWSER})({json.dumps(PACK)})")
            ARTIFACTS.mkdir(exist_ok=True)
            print(f"\ntemplate browser: {await browser.screenshot(ARTIFACTS / 'template_browser.png')}")
            assert [c["title"] for c in cards] == sorted(WORKFLOWS), cards
            assert all(c["whole"] for c in cards), cards
            assert await browser.evaluate(CLOSE_DIALOG) == 0
            await double_click(browser, 700, 450)
            await asyncio.sleep(1)
            await browser.send("Input.insertText", text="vrg")
            results = []
            for _ in range(20):
                await asyncio.sleep(0.5)
                results = [r for r in await browser.evaluate(SEARCH_RESULTS) if r]
                if len(results) >= len(NODE_IDS):
                    break
            print(f"node search: {await browser.screenshot(ARTIFACTS / 'node_search_vrg.png')}")
            assert results[:2] == ["VRG+", "VRG Apply"], results
            return browser.errors

    errors = asyncio.run(session())
    assert errors == [], "JavaScript errors:\n" + "\n".join(errors)
