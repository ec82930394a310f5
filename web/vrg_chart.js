// VRG nodes: after a run, a vector chart of the node's results inside the node (schedules per step, a
// table's error curve, or the compared schedules' distances as bars), drawn from the node's UI data. Readable
// at any zoom; each point shows its value on hover. One colour per thing, as in the nodes' PNG plots (vrg_core/plot.py): base grey, VRG blue, VRG+ red,
// the best other schedule orange, a table's error curve green.
import { app } from "../../scripts/app.js";

const COLOURS = { base: "#787878", vrg: "#1f77b4", plus: "#d62728", other: "#ff7f0e", error: "#2ca02c" };
const WIDTH = 360;
const HEIGHT = 210;
const PLOT = { left: 52, right: WIDTH - 10, top: 26, bottom: HEIGHT - 30 };
const SVG = "http://www.w3.org/2000/svg";

/** The chart a node's UI data asks for: {series: [{label, colour, points: [[x, y]]}], logX, xLabel, yLabel, note}
 * (note: a line of measured figures, or null), or for compared schedules {bars: [{label, mean, low, high, best}],
 * xLabel}. */
export function chartOf(ui) {
  if (ui.labels && ui.distance) {  // VRG Compare Schedules: one bar per schedule, its interval as a whisker
    const bars = ui.labels.map((label, i) => {
      const [mean, low, high] = ui.distance[i];
      return { label, mean, low, high, best: label === ui.best[0] };
    });
    return { bars, xLabel: `distance to the converged samples (${ui.noises[0]} noises, 90 % intervals)` };
  }
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
  return { series, logX: false, xLabel: "step", yLabel: "σ", note: measured(ui) };
}

/** The search's out-of-sample measurement in a line: its best searched schedule against the best other. */
function measured(ui) {
  if (!ui.held_out_gain) return null;
  const [gain, low, high] = ui.held_out_gain.map((v) => Math.round(100 * v));
  const signed = (v) => (v > 0 ? `+${v}` : `${v}`);
  return `searched ${signed(gain)} % vs ${ui.rival?.[0] ?? "base"} (90 %: ${signed(low)} to ${signed(high)}), ` +
    `${ui.held_out_noises[0]} held-back noises`;
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

/** An SVG element drawing a bar chart (see chartOf): the best schedule red, the others grey. */
function drawBars(chart) {
  const svg = element("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, width: "100%", height: "100%", class: "vrg-chart-svg" });
  svg.append(element("rect", { x: 0, y: 0, width: WIDTH, height: HEIGHT, fill: "#fff" }));
  const label = { "font-size": 10, fill: "#222", "font-family": "sans-serif" };
  const left = 84, right = WIDTH - 62, top = 12, bottom = HEIGHT - 30;
  const hi = Math.max(...chart.bars.map((b) => b.high)) * 1.05 || 1;
  const px = (v) => left + (v / hi) * (right - left);
  const row = Math.min(28, (bottom - top) / chart.bars.length);
  for (const v of ticks(0, hi, false)) {
    svg.append(element("line", { x1: px(v), y1: top, x2: px(v), y2: bottom, stroke: "#e4e4e4" }));
    svg.append(element("text", { x: px(v), y: bottom + 13, "text-anchor": "middle", ...label }, format(v)));
  }
  chart.bars.forEach((b, i) => {
    const y = top + i * row + row * 0.2, h = row * 0.6;
    const colour = b.best ? COLOURS.plus : COLOURS.base;
    svg.append(element("text", { x: left - 4, y: y + h / 2 + 3, "text-anchor": "end", ...label }, b.label));
    const bar = element("rect", { x: left, y, width: px(b.mean) - left, height: h, fill: colour, class: "vrg-bar" });
    bar.append(element("title", {}, `${b.label}: distance ${format(b.mean)} (90 %: ${format(b.low)} to ${format(b.high)})`));
    svg.append(bar);
    svg.append(element("line", { x1: px(b.low), y1: y + h / 2, x2: px(b.high), y2: y + h / 2, stroke: "#222", "stroke-width": 1.5 }));
    svg.append(element("text", { x: right + 4, y: y + h / 2 + 3, ...label }, format(b.mean)));
  });
  svg.append(element("line", { x1: left, y1: top, x2: left, y2: bottom, stroke: "#444" }));
  svg.append(element("text", { x: (left + right) / 2, y: HEIGHT - 4, "text-anchor": "middle", ...label }, chart.xLabel));
  return svg;
}

/** An SVG element drawing `chart` (see chartOf). */
export function drawChart(chart) {
  if (chart.bars) return drawBars(chart);
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
  if (chart.note) {
    svg.append(element("text", { x: PLOT.left + 6, y: PLOT.bottom - 6, class: "vrg-note", ...label, "font-size": 9 },
      chart.note));
  }
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

// The nodes with a result panel: the chart, and below it the node's whole text wrapped at spaces (its first
// sentences visible without scrolling). The panel's room is made when the node is created, so a run never
// enlarges the node over its neighbours; until the first run it holds a hint. These nodes send no progress text
// and no image preview (nodes/common.py `report(panel=True)`), so nothing else is drawn over or above it.
const CHARTED = new Set(["VRGProfile", "VRGOptimizeSigmas", "VRGLoadSchedule", "VRGSearchSchedule", "VRGCompareSchedules"]);
const CHART_HEIGHT = 190;
const TEXT_HEIGHT = 124; // 8 lines of text: the search's verdict and its cost, at the panel's width

function chartWidget(node) {
  let widget = node.widgets?.find((w) => w.name === "vrg_chart");
  if (!widget) {
    const holder = document.createElement("div");
    holder.className = "vrg-chart";
    holder.style.cssText = "width:100%;height:100%;display:flex;flex-direction:column;gap:4px;";
    const chart = document.createElement("div");
    chart.className = "vrg-chart-plot";
    chart.style.cssText = `height:${CHART_HEIGHT - 4}px;flex:none;display:flex;align-items:center;` +
      "justify-content:center;color:#888;font:12px sans-serif;";
    chart.textContent = "the chart of the result appears here after a run";
    const text = document.createElement("div");
    text.className = "vrg-text";
    text.style.cssText = "flex:1 1 auto;min-height:0;overflow-y:auto;white-space:pre-wrap;word-break:normal;" +
      "overflow-wrap:break-word;font:11px/15px monospace;color:var(--input-text, #ddd);padding:2px 4px;" +
      "background:var(--comfy-input-bg, #222);border-radius:4px;";
    holder.append(chart, text);
    widget = node.addDOMWidget("vrg_chart", "vrg_chart", holder,
      { serialize: false, hideOnZoom: false, getMinHeight: () => CHART_HEIGHT + TEXT_HEIGHT });
    node.setSize([Math.max(node.size[0], 380), node.computeSize()[1]]);
  }
  return widget;
}

function showChart(node, ui) {
  const widget = chartWidget(node);
  const [plot, text] = widget.element.children;
  const chart = chartOf(ui);
  if (chart && (chart.bars || chart.series.some((s) => s.points.length > 0))) plot.replaceChildren(drawChart(chart));
  text.textContent = (ui.text ?? []).join("\n");
  text.scrollTop = 0;
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
