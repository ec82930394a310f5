"""Rebuild example_workflows/ from `workflows.py` in the real frontend (a maintainer tool, not a test).

    COMFYUI_PATH=/path/to/ComfyUI /path/to/ComfyUI/venv/bin/python tests/comfy/build_workflows.py [NAME …]

Starts ComfyUI and headless Chromium, builds each graph with LiteGraph, saves the frontend's
own serialisation as example_workflows/<name>.json and a .jpg thumbnail (the CPU demos are run
first, so their thumbnails show the previews and images they made). Every template, or only those named.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageChops

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from cdp import Browser  # noqa: E402
from comfy_server import http_json, running  # noqa: E402
from workflows import (COMPARE_DEMO, LABELS, SEARCH_DEMO, TABLE_DEMO, TEMPLATE_MODELS, WORKFLOWS, Link,  # noqa: E402
                       model_metadata)

REPO = HERE.parents[1]
OUT = REPO / "example_workflows"
RUN_FIRST = (SEARCH_DEMO, TABLE_DEMO, COMPARE_DEMO)  # run before saving, so thumbnails show their results
APP_READY = "window.app && window.app.graph && window.LiteGraph && window.app.canvas"

BUILD_GRAPH = """
(nodes) => {
  app.graph.clear();
  const made = {};
  const primitives = [];  // a Primitive has its widget once linked: set after the links
  for (const [id, type, widgets, , label, models] of nodes) {
    const node = LiteGraph.createNode(type);
    if (!node) throw new Error(`unknown node type ${type}`);
    node.id = id;
    app.graph.add(node);
    if (label) [node.title, node.color, node.bgcolor] = label;
    if (type === "Note") node.size = [460, 240];
    if (models.length) node.properties.models = models;
    made[id] = node;
    if (type === "PrimitiveNode") {
      primitives.push([node, widgets]);
      continue;
    }
    for (const [name, value] of Object.entries(widgets)) {
      const widget = node.widgets?.find((w) => w.name === name);
      if (!widget) throw new Error(`${type} has no widget ${name}`);
      widget.value = value;
    }
    for (const widget of node.widgets ?? []) if (widget.name === "control_after_generate") widget.value = "fixed";
  }
  for (const [id, , , links] of nodes) {
    for (const [input, source, slot] of links) {
      const index = made[id].findInputSlot(input);
      if (index < 0) throw new Error(`${made[id].type} has no input ${input}`);
      made[source].connect(slot, made[id], index);
    }
  }
  for (const [node, { value }] of primitives) {  // its widgets: the linked widget's name first, then value controls
    if (!node.widgets?.length) throw new Error(`the Primitive ${node.id} has no widget: is it linked?`);
    node.widgets[0].value = value;
    for (const widget of node.widgets) if (widget.name === "control_after_generate") widget.value = "fixed";
    node.applyToGraph?.();
  }
}
"""
# Laid out after the demo has run, so the previews it shows have room.
ARRANGE = "(() => { app.graph.arrange(60); app.canvas.setDirty(true, true); return app.graph.serialize(); })()"


def graph_spec(nodes: list, labels: dict) -> list:
    """[[id, class_type, widget values, [[input, source id, slot]], [title, colour, bgcolour] or None, models]] with
    ids from 1 in list order; models: the node's `model_metadata`."""
    ids = {key: i for i, (key, _, _) in enumerate(nodes, 1)}
    return [[ids[key], class_type, {n: v for n, v in inputs.items() if not isinstance(v, Link)},
             [[n, ids[v.node], v.slot] for n, v in inputs.items() if isinstance(v, Link)], labels.get(key),
             model_metadata(class_type, inputs)]
            for key, class_type, inputs in nodes]


SNAPSHOT = """
(() => {
  const nodes = app.graph.nodes;
  const left = Math.min(...nodes.map((n) => n.pos[0])), top = Math.min(...nodes.map((n) => n.pos[1])) - 40;
  const right = Math.max(...nodes.map((n) => n.pos[0] + n.size[0]));
  const bottom = Math.max(...nodes.map((n) => n.pos[1] + n.size[1]));
  app.canvas.show_info = false;
  app.canvas.min_font_size_for_lod = 0;  // full detail at the thumbnail's zoom
  app.canvas.ds.fitToBounds([left - 20, top - 20, right - left + 40, bottom - top + 40]);
  app.canvas.setDirty(true, true);
  app.canvas.draw(true, true);
  return app.canvas.canvas.toDataURL("image/jpeg", 0.85).split(",")[1];
})()
"""


async def thumbnail(browser: Browser, path: Path) -> None:
    """The graph canvas alone, fitted to the nodes, as a 1024-pixel-wide JPEG."""
    await asyncio.sleep(0.5)
    image = Image.open(io.BytesIO(base64.b64decode(await browser.evaluate(SNAPSHOT)))).convert("RGB")
    background = Image.new("RGB", image.size, image.getpixel((0, 0)))
    ink = ImageChops.difference(image, background).convert("L").point(lambda v: 255 if v > 40 else 0)
    left, top, right, bottom = ink.getbbox()  # the nodes, without the canvas's dotted background
    image = image.crop((max(left - 24, 0), max(top - 24, 0), right + 24, bottom + 24))
    image.resize((1024, round(1024 * image.height / image.width)), Image.Resampling.LANCZOS).save(path, quality=85)


async def build(server, names: list[str]) -> None:
    async with Browser(width=2400, height=1300) as browser:
        for name in names:
            nodes = WORKFLOWS[name]
            await browser.goto(server.url, APP_READY)  # a fresh page: no previews left from the last graph
            await browser.evaluate(f"({BUILD_GRAPH})({json.dumps(graph_spec(nodes, LABELS.get(name, {})))})")
            if name in RUN_FIRST:
                done = len(http_json(f"{server.url}/history"))
                await browser.evaluate("app.queuePrompt(0, 1)")
                deadline = time.monotonic() + 300
                while http_json(f"{server.url}/queue")["queue_running"] or len(http_json(f"{server.url}/history")) == done:
                    if time.monotonic() > deadline:
                        raise TimeoutError("the demo workflow did not finish")
                    await asyncio.sleep(1)
                await asyncio.sleep(2)
            workflow = await browser.evaluate(ARRANGE)
            (OUT / f"{name}.json").write_text(json.dumps(workflow, indent=1) + "\n")
            await thumbnail(browser, OUT / f"{name}.jpg")
            print(f"wrote {OUT / name}.json and .jpg")
        if browser.errors:
            print("browser errors:", *browser.errors, sep="\n  ")


def main() -> None:
    names = sys.argv[1:] or list(WORKFLOWS)
    unknown = set(names) - set(WORKFLOWS)
    if unknown:
        sys.exit(f"no such template: {', '.join(sorted(unknown))}; the templates: {', '.join(WORKFLOWS)}")
    OUT.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="vrg-build-") as tmp:
        base = Path(tmp)
        (base / "models" / "checkpoints").mkdir(parents=True)
        for file_name in TEMPLATE_MODELS.values():  # names only, for the loader's list
            (base / "models" / "checkpoints" / file_name).touch()
        with running(os.environ["COMFYUI_PATH"], base, REPO) as server:
            asyncio.run(build(server, names))


if __name__ == "__main__":
    main()
