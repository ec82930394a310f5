"""PNG plots drawn with Pillow (a ComfyUI dependency): error curve, base vs optimised or searched schedule."""

from __future__ import annotations

import dataclasses
import io
import math

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .error_table import ErrorTable
from .optimize import OptimizeResult
from .objective import cumulative_error
from .search import Family, SearchResult

# One colour per thing in every plot (and in the frontend chart, web/vrg_chart.js): the base schedule grey,
# VRG blue, VRG+ red, the best other schedule orange, a table's error curve green.
GREY, BLUE, RED, ORANGE, GREEN, BAND = (120, 120, 120), (31, 119, 180), (214, 39, 40), (255, 127, 14), (44, 160, 44), \
    (199, 233, 192)


@dataclasses.dataclass(frozen=True)
class _Axes:
    """A plot area mapping data (optionally log) coordinates to pixels."""

    box: tuple[int, int, int, int]  # left, top, right, bottom in pixels
    x_range: tuple[float, float]
    y_range: tuple[float, float]
    x_log: bool
    y_log: bool

    def _t(self, v: np.ndarray, rng: tuple[float, float], log: bool) -> np.ndarray:
        v = np.asarray(v, dtype=np.float64)
        lo, hi = rng
        if log:
            v, lo, hi = np.log10(np.maximum(v, 1e-300)), math.log10(lo), math.log10(hi)
        return (v - lo) / ((hi - lo) or 1.0)

    def points(self, x: np.ndarray, y: np.ndarray) -> list[tuple[float, float]]:
        left, top, right, bottom = self.box
        px = left + self._t(x, self.x_range, self.x_log) * (right - left)
        py = bottom - self._t(y, self.y_range, self.y_log) * (bottom - top)
        return list(zip(px.tolist(), py.tolist()))


def _range(values: np.ndarray, log: bool) -> tuple[float, float]:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v) & (v > 0)] if log else v[np.isfinite(v)]
    lo, hi = float(v.min()), float(v.max())
    if log:
        return lo / 1.2, hi * 1.2
    pad = (hi - lo) * 0.05 or 1.0
    return lo - pad, hi + pad


def _frame(draw: ImageDraw.ImageDraw, ax: _Axes, title: str, xlabel: str, ylabel: str, font) -> None:
    left, top, right, bottom = ax.box
    draw.rectangle(ax.box, outline=(0, 0, 0))
    draw.text((left, top - 18), title, fill=(0, 0, 0), font=font)
    draw.text(((left + right) // 2 - 3 * len(xlabel), bottom + 22), xlabel, fill=(0, 0, 0), font=font)
    draw.text((4, top - 16), ylabel, fill=(0, 0, 0), font=font)
    for axis, rng, log in (("x", ax.x_range, ax.x_log), ("y", ax.y_range, ax.y_log)):
        for tick in _ticks(rng, log):
            (px, py), = ax.points([tick if axis == "x" else ax.x_range[0]], [tick if axis == "y" else ax.y_range[0]])
            label = f"{tick:.3g}"
            if axis == "x":
                draw.line([(px, bottom), (px, bottom + 4)], fill=(0, 0, 0))
                draw.text((px - 3 * len(label), bottom + 6), label, fill=(0, 0, 0), font=font)
            else:
                draw.line([(left - 4, py), (left, py)], fill=(0, 0, 0))
                draw.text((left - 6 - 6 * len(label), py - 6), label, fill=(0, 0, 0), font=font)


def _ticks(rng: tuple[float, float], log: bool) -> list[float]:
    lo, hi = rng
    if log:
        return [10.0**e for e in range(math.ceil(math.log10(lo)), math.floor(math.log10(hi)) + 1)]
    return [float(t) for t in np.linspace(lo, hi, 5)]


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _canvas(width: int, height: int):
    img = Image.new("RGB", (width, height), "white")
    return img, ImageDraw.Draw(img), ImageFont.load_default()


def error_curve_png(table: ErrorTable, width: int = 640, height: int = 400) -> bytes:
    """w(σ) against σ (log–log) with a ±2 standard-error band; PNG bytes."""
    img, draw, font = _canvas(width, height)
    w, se = table.mean_mse, table.standard_error
    lower = np.maximum(w - 2 * se, w * 1e-3)
    ax = _Axes((80, 40, width - 20, height - 50), _range(table.sigmas, True), _range(np.r_[lower, w + 2 * se], True), True, True)
    draw.polygon(ax.points(table.sigmas, w + 2 * se) + ax.points(table.sigmas[::-1], lower[::-1]), fill=BAND)
    draw.line(ax.points(table.sigmas, w), fill=GREEN, width=2)
    n = int(table.count.sum())
    _frame(draw, ax, f"prediction error w(sigma), {table.kind.label}, {len(table.sigmas)} levels, {n} samples (band ±2 s.e.)",
           "sigma", "w", font)
    return _png(img)


def schedule_png(result: OptimizeResult, table: ErrorTable, width: int = 640, height: int = 480) -> bytes:
    """Top: σ per step, base vs optimised (log σ). Bottom: per-step CPE terms. PNG bytes."""
    img, draw, font = _canvas(width, height)
    steps = np.arange(len(result.sigmas))
    pos = lambda s: np.where(s > 0, s, np.nan)  # noqa: E731 — σ_N = 0 has no log
    both = np.r_[result.base_sigmas, result.sigmas]
    top = _Axes((80, 40, width - 20, height // 2 - 20), (0, len(steps) - 1), _range(pos(both), True), False, True)
    for sig, colour in ((result.base_sigmas, GREY), (result.sigmas, BLUE)):
        finite = sig > 0
        draw.line(top.points(steps[finite], sig[finite]), fill=colour, width=2)
    _frame(draw, top, f"sigmas: base (grey) vs VRG (blue); CPE {result.cpe_before:.5g} -> {result.cpe_after:.5g}", "step", "sigma", font)
    before = cumulative_error(result.base_sigmas, table, result.interp).per_step
    after = cumulative_error(result.sigmas, table, result.interp).per_step
    k = np.arange(len(before))
    y_top = float(max(before.max(), after.max())) * 1.1
    bottom = _Axes((80, height // 2 + 40, width - 20, height - 50), (-0.5, len(k) - 0.5), (0, y_top), False, False)
    bar = max(1.0, (bottom.box[2] - bottom.box[0]) / (2.5 * len(k)))
    for vals, colour, shift in ((before, GREY, -bar / 2), (after, BLUE, bar / 2)):
        for (px, py), (_, p0) in zip(bottom.points(k, vals), bottom.points(k, np.zeros_like(vals))):
            draw.rectangle([px + shift - bar / 2, py, px + shift + bar / 2, p0], fill=colour)
    _frame(draw, bottom, f"per-step CPE terms (start: {result.start}, gamma {result.gamma:g})", "step", "CPE term", font)
    return _png(img)


def schedules_png(lines: list[tuple[np.ndarray, tuple]], title: str, width: int = 640, height: int = 400) -> bytes:
    """σ per step (log σ) of each (sigmas, colour) of `lines`, all of one step count; PNG bytes."""
    img, draw, font = _canvas(width, height)
    count = len(lines[0][0]) - 1
    steps = np.arange(count + 1)
    every = np.concatenate([np.asarray(sig) for sig, _ in lines])
    ax = _Axes((80, 40, width - 20, height - 50), (0, count), _range(every[every > 0], True), False, True)
    for sig, colour in lines:
        sig = np.asarray(sig)
        draw.line(ax.points(steps[sig > 0], sig[sig > 0]), fill=colour, width=2)
    _frame(draw, ax, title, "step", "sigma", font)
    return _png(img)


def search_png(result: SearchResult, width: int = 640, height: int = 400) -> bytes:
    """The base, the best other measured and the chosen schedules of a VRG+ search (`schedules_png`)."""
    rival, v = result.rival, result.verdict
    return schedules_png([(result.candidates[name], colour) for name, colour in
                          (("base", GREY), (rival, ORANGE), (result.chosen, RED))],
                         f"{result.sampler}: base (grey), {rival} (orange), kept {result.chosen} (red): best searched "
                         f"{100 * v.gain:+.0f} % closer (90 % {100 * v.low:+.0f} to {100 * v.high:+.0f} %) on "
                         f"{v.noises} held-back noises", width, height)


def family_png(family: Family, steps: int, base, width: int = 640, height: int = 400) -> bytes:
    """The base and a family's interpolated schedule at `steps` (`schedules_png`)."""
    return schedules_png([(np.asarray(base), GREY), (family.sigmas(steps), RED)],
                         f"{steps} steps: base (grey), VRG+ (red) {family.source(steps)}", width, height)
