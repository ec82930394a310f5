"""VRG Optimize Sigmas: any scheduler's SIGMAS -> the same steps with the least cumulative prediction error."""

from __future__ import annotations


from comfy_api.v0_0_2 import io

from ..vrg_core.error_table import INTERPOLATIONS
from ..vrg_core.optimize import METHODS, optimize_sigmas
from ..vrg_core.plot import error_curve_png
from .common import (
    CATEGORY, ErrorTableIO, gamma_input, png_to_image, report, result_report, start_input, stop_if_cancelled,
)
from .model_identity import table_warnings


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
            return io.NodeOutput(sigmas, plot, ui=report(cls, text, warnings, panel=True, sigmas=sigmas.tolist()))
        result = optimize_sigmas(sigmas, table, gamma=gamma or "auto", start=start, method=method,
                                 interp=interpolation, should_stop=stop_if_cancelled)
        optimised, plot, ui = result_report(cls, result, table, warnings, gamma_auto=not gamma)
        return io.NodeOutput(optimised, plot, ui=ui)


NODES = [VRGOptimizeSigmas]
