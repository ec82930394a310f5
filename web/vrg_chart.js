// VRG nodes: after a run, a vector chart of the node's results inside the node (schedules per step, or a
// table's error curve), drawn from the node's UI data. Readable at any zoom; each point shows its value on
// hover. One colour per thing, as in the nodes' PNG plots (vrg_core/plot.py): base grey, VRG blue, VRG+ red,
// the best other schedule orange, a table's error curve green.
import { app } from "../../scripts/app.js";

const COLOURS = { base: "#787878", vrg: "#1f77b4", plus: "#d62728", other: "#ff7f0e", error: "#2ca02c" };
const WIDTH = 360;
const HEIGHT = 210;
const PLOT = { left: 52, right: WIDTH - 10, top: 26, bottom: HEIGHT - 30 };
const SVG = "http://www.w3.org/2000/svg";

/** The chart a node's UI data asks for: {series: [{label, colour, points: [[x, y]]}], logX, xLabel, yLabel}. */
export function chartOf(ui) {
  const positive = (points) => points.filter(([x, y]) => x > 0 && y > 0);
  const perStep = (sigmas) => sigmas.map((s, i) => [i + 1, s]).filter(([, s]) => s > 0);
  if (ui.table_sigmas && ui.table_error) {
    const points = positive(ui.table_sigmas.map((s, i) => [s, ui.table_error[i]]));
    return { series: [{ label: "error w(σ)", colour: COLOURS.error, points }], logX: true, xLabel: "σ", yLabel: "error" };
  }
  if (!ui.sigmas) return null;
  const series = [];
  if (ui.base_sigmas) series.push({ label: "base", colour: COLOURS.base, points: perStep(ui.base_sigmas) });
  if (ui.rival_sigmas) series.push({ label: `${ui.rival[0]} (best other)`, colour: COLOURS.other, points: perStep(ui.rival_sigmas) });
  const searched = ui.chosen !== undefined;
  series.push({ label: searched ? "VRG+" : "VRG", colour: searched ? COLOURS.plus : COLOURS.vrg, points: perStep(ui.sigmas) });
  return { series, logX: false, xLabel: "step", yLabel: "σ" };
}

/** Tick values for [lo, hi]: decades (with 2 and 5 when the range is short) on a log axis, 1-2-5 steps otherwise. */
function ticks(lo, hi, log) {
  if (log) {
    const out = [];
    const short = Math.log10(hi / lo) < 2;
    for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) {
      for (const m of short ? [1, 2, 5] : [1]) {
        const v = m * 10 ** e;
        if (v >= lo * 0.999 && v <= hi * 1.001) out.push(v);
      }
    }
    return out;
  }
  const raw = (hi - lo) / 6;
  const base = 10 ** Math.floor(Math.log10(raw || 1));
  const step = [1, 2, 5, 10].map((m) => m * base).find((s) => s >= raw) || base;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9; v += step) out.push(Math.round(v * 1e9) / 1e9);
  return out;
}

const format = (v) => (Math.abs(v) >= 100 || Math.abs(v) < 0.01 ? v.toExponential(1) : String(+v.toPrecision(3)));

function element(name, attributes = {}, text) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attributes)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

/** An SVG element drawing `chart` (see chartOf). */
export function drawChart(chart) {
  const all = chart.series.flatMap((s) => s.points);
  const xs = all.map(([x]) => x);
  const ys = all.map(([, y]) => y);
  const [xLo, xHi] = [Math.min(...xs), Math.max(...xs)];
  const [yLo, yHi] = [Math.min(...ys) * 0.9, Math.max(...ys) * 1.1];
  const scale = (v, lo, hi, a, b, log) => {
    const t = log ? Math.log(v / lo) / Math.log(hi / lo) : (v - lo) / (hi - lo || 1);
    return a + t * (b - a);
  };
  const px = (x) => scale(x, xLo, xHi, PLOT.left, PLOT.right, chart.logX);
  const py = (y) => scale(y, yLo, yHi, PLOT.bottom, PLOT.top, true);
  const svg = element("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, width: "100%", height: "100%", class: "vrg-chart-svg" });
  svg.append(element("rect", { x: 0, y: 0, width: WIDTH, height: HEIGHT, fill: "#fff" }));
  const axis = { stroke: "#444", "stroke-width": 1 };
  svg.append(element("line", { x1: PLOT.left, y1: PLOT.bottom, x2: PLOT.right, y2: PLOT.bottom, ...axis }));
  svg.append(element("line", { x1: PLOT.left, y1: PLOT.top, x2: PLOT.left, y2: PLOT.bottom, ...axis }));
  const label = { "font-size": 10, fill: "#222", "font-family": "sans-serif" };
  for (const v of ticks(yLo, yHi, true)) {
    svg.append(element("line", { x1: PLOT.left, y1: py(v), x2: PLOT.right, y2: py(v), stroke: "#e4e4e4" }));
    svg.append(element("text", { x: PLOT.left - 4, y: py(v) + 3, "text-anchor": "end", ...label }, format(v)));
  }
  for (const v of ticks(xLo, xHi, chart.logX)) {
    svg.append(element("text", { x: px(v), y: PLOT.bottom + 13, "text-anchor": "middle", ...label }, format(v)));
  }
  svg.append(element("text", { x: (PLOT.left + PLOT.right) / 2, y: HEIGHT - 4, "text-anchor": "middle", ...label }, chart.xLabel));
  svg.append(element("text", { x: 12, y: PLOT.top - 8, ...label }, chart.yLabel));
  let legendX = PLOT.left;
  for (const s of chart.series) {
    const points = s.points.map(([x, y]) => `${px(x).toFixed(1)},${py(y).toFixed(1)}`).join(" ");
    svg.append(element("polyline", { points, fill: "none", stroke: s.colour, "stroke-width": 2, class: "vrg-series" }));
    for (const [x, y] of s.points) {
      const dot = element("circle", { cx: px(x), cy: py(y), r: 3.5, fill: s.colour, class: "vrg-point" });
      dot.append(element("title", {}, `${s.label}: ${chart.xLabel} ${format(x)}, ${chart.yLabel} ${format(y)}`));
      svg.append(dot);
    }
    svg.append(element("rect", { x: legendX, y: 8, width: 10, height: 10, fill: s.colour }));
    const name = element("text", { x: legendX + 13, y: 17, ...label }, s.label);
    svg.append(name);
    legendX += 20 + 6 * s.label.length;
  }
  return svg;
}

// The nodes that draw a chart. Its room is made when the node is created, so a run never enlarges the node over its
// neighbours; until the first run it holds a hint.
const CHARTED = new Set(["VRGProfile", "VRGOptimizeSigmas", "VRGLoadSchedule", "VRGSearchSchedule"]);

function chartWidget(node) {
  let widget = node.widgets?.find((w) => w.name === "vrg_chart");
  if (!widget) {
    const holder = document.createElement("div");
    holder.className = "vrg-chart";
    holder.style.cssText = "width:100%;height:100%;min-height:180px;display:flex;align-items:center;" +
      "justify-content:center;color:#888;font:12px sans-serif;";
    holder.textContent = "the chart of the result appears here after a run";
    widget = node.addDOMWidget("vrg_chart", "vrg_chart", holder, { serialize: false, hideOnZoom: false, getMinHeight: () => 190 });
    node.setSize([Math.max(node.size[0], 380), node.computeSize()[1]]);
  }
  return widget;
}

function showChart(node, ui) {
  const chart = chartOf(ui);
  if (!chart || chart.series.every((s) => s.points.length === 0)) return;
  const widget = chartWidget(node);
  widget.element.replaceChildren(drawChart(chart));
  node.setDirtyCanvas(true, true);
}

app.registerExtension({
  name: "vrg.chart",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (!CHARTED.has(nodeData.name)) return;
    const onNodeCreated = nodeType.prototype.onNodeCreated;
    nodeType.prototype.onNodeCreated = function () {
      const made = onNodeCreated?.apply(this, arguments);
      chartWidget(this);
      return made;
    };
    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (ui) {
      onExecuted?.apply(this, arguments);
      showChart(this, ui);
    };
  },
});
