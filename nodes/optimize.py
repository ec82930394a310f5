"""VRG Optimize Sigmas: any scheduler's SIGMAS -> the same steps with the least cumulative prediction error."""

from __future__ import annotations

import torch

from comfy_api.v0_0_2 import io

from ..vrg_core.error_table import INTERPOLATIONS
from ..vrg_core.optimize import METHODS, START_MODES, OptimizeResult, optimize_sigmas
from ..vrg_core.plot import error_curve_png, schedule_png
from .common import CATEGORY, ErrorTableIO, png_to_image, report, stop_if_cancelled
from .host import table_warnings


def gamma_input() -> io.Float.Input:
    return io.Float.Input("gamma", default=0.0, min=0.0, max=1.0, step=0.001,
                          tooltip="How far each step may move (the paper's learning portion). "
                                  "0 = auto: 0.05 up to 10 steps, else 0.01.")


def start_input() -> io.Combo.Input:
    return io.Combo.Input("start", options=list(START_MODES), default="fixed",
                          tooltip="fixed: the first sigma stays exactly (the noise is drawn there). "
                                  "paper: the official soft penalty lets it move a little.")


def result_report(cls, result: OptimizeResult, table, warnings: list[str] = (), head: str = "") -> tuple:
    """(SIGMAS, plot IMAGE, ui dict) of an optimisation result."""
    plot = png_to_image(schedule_png(result, table))
    text = (f"{head}CPE {result.cpe_before:.6g} -> {result.cpe_after:.6g} ({100 * result.improvement:+.2f} %), "
            f"sigma_0 {result.start_sigma_before:.6g} -> {result.start_sigma_after:.6g}, {len(result.sigmas) - 1} "
            f"steps, gamma {result.gamma:g}, start {result.start}, {result.status}, {1000 * result.seconds:.0f} ms")
    ui = report(cls, text, warnings, plot, base_sigmas=result.base_sigmas.tolist(), sigmas=result.sigmas.tolist(),
                cpe=[result.cpe_before, result.cpe_after])
    return torch.tensor(result.sigmas, dtype=torch.float32), plot, ui


class VRGOptimizeSigmas(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VRGOptimizeSigmas",
            display_name="VRG Optimize Sigmas",
            category=CATEGORY,
            description="Moves the noise levels of any schedule (Karras, normal, AYS, beta, ...) to where the "
                        "model's measured error adds up least, keeping the step count and the last sigma. "
                        "Shows the cumulative prediction error (CPE) before -> after and a plot.",
            inputs=[
                io.Sigmas.Input("sigmas", tooltip="The schedule to optimise, from any scheduler node; denoise < 1 "
                                                  "and schedules not ending at 0 are fine."),
                ErrorTableIO.Input("table", tooltip="The model's error table (VRG Profile, Load Error Table or Load "
                                                  "Schedule)."),
                gamma_input(),
                start_input(),
                io.Combo.Input("method", options=list(METHODS), default="exact",
                               tooltip="exact: deterministic global solver, milliseconds. paper: the official "
                                       "network + SGD optimiser (minutes; for reproduction; needs start=paper)."),
                io.Combo.Input("interpolation", options=list(INTERPOLATIONS), default="loglog",
                               tooltip="How the error is read between measured levels: loglog (linear in "
                                       "log sigma, log error) or paper (the official rule, linear in alpha-bar)."),
                io.Model.Input("model", optional=True,
                               tooltip="Optional: the model the sigmas are for, to warn when the table was "
                                       "measured on another model."),
            ],
            outputs=[io.Sigmas.Output(display_name="sigmas"), io.Image.Output(display_name="plot")],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def execute(cls, sigmas, table, gamma, start, method, interpolation, model=None) -> io.NodeOutput:
        warnings = table_warnings(table, model) if model is not None else []
        if len(sigmas) < 2:  # denoise 0: no step to move; ComfyUI's samplers return such a latent unchanged
            text = f"{len(sigmas)} sigma(s), no step to optimise (denoise 0?): passed through unchanged"
            plot = png_to_image(error_curve_png(table))
            return io.NodeOutput(sigmas, plot, ui=report(cls, text, warnings, plot, sigmas=sigmas.tolist()))
        result = optimize_sigmas(sigmas, table, gamma=gamma or "auto", start=start, method=method,
                                 interp=interpolation, should_stop=stop_if_cancelled)
        optimised, plot, ui = result_report(cls, result, table, warnings)
        return io.NodeOutput(optimised, plot, ui=ui)


NODES = [VRGOptimizeSigmas]
