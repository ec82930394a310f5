"""VRG Compare Schedules: how close each schedule's samples come to this model's converged ones."""

from __future__ import annotations

import dataclasses

import torch

import comfy.utils
from comfy_api.v0_0_2 import io

from ..vrg_core.compare import MIN_NOISES, Comparison, compare_schedules, compared_schedule
from ..vrg_core.errors import VRGError
from .common import CATEGORY, check_choice, empty_latent_input, report, sampling_model_input, stop_if_cancelled
from .guided import check_guidance, run_guided
from .host import comfy_sampler, covered_samplers, model_kind, start_states

SLOTS = 6  # sigmas_1 … sigmas_6; the first two are required


def labelled_schedules(inputs: dict) -> dict[str, torch.Tensor]:
    """{label: σ} of the connected `sigmas_k` inputs in order, each checked (a message naming the input); an empty
    `label_k` is the input's name."""
    out = {}
    for k in range(1, SLOTS + 1):
        sigmas, name = inputs.get(f"sigmas_{k}"), f"sigmas_{k}"
        if sigmas is None:
            continue
        label = (inputs.get(f"label_{k}") or "").strip() or name
        if label in out:
            raise VRGError(f"label_{k} {label!r} is already another input's label; give each schedule its own")
        compared_schedule(sigmas, f"{name} ({label})" if label != name else name)
        out[label] = sigmas
    return out


def side_by_side(result: Comparison) -> torch.Tensor:
    """Per noise, its converged sample then each schedule's, in input order: [noises × (1 + schedules), …]."""
    return torch.stack([result.reference, *result.samples.values()], dim=1).flatten(0, 1).float()


def comparison_ui(result: Comparison) -> dict:
    """The figures per schedule for API clients, in input order."""
    rows = result.measured.values()
    return {"labels": list(result.measured), "distance": [[m.mean, m.low, m.high] for m in rows],
            "best_closer_by": [[m.gain, m.gain_low, m.gain_high] for m in rows], "best": [result.best],
            "evaluations": [result.evaluations], "noises": [result.noises]}


def sigmas_inputs() -> list:
    """sigmas_1 … sigmas_6 (from the third on optional) and their labels (widgets, listed together)."""
    sigmas = [io.Sigmas.Input(f"sigmas_{k}", optional=k > 2,
                              tooltip=f"Schedule {k} to compare (a scheduler's SIGMAS, down to 0)"
                                      f"{'; optional' if k > 2 else ''}.") for k in range(1, SLOTS + 1)]
    labels = [io.String.Input(f"label_{k}", default="", placeholder=f"sigmas_{k}",
                              tooltip=f"Name of schedule {k} in the report (empty: sigmas_{k}).")
              for k in range(1, SLOTS + 1)]
    return sigmas + labels


class VRGCompareSchedules(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VRGCompareSchedules",
            display_name="VRG Compare Schedules",
            category=CATEGORY,
            description="Checks schedules on your model: samples each from the same noises with this sampler and "
                        "measures how close its results come to the model's own converged ones (DPM++2M, 100 "
                        "steps), with a 90 % interval, and how much closer the best one is. The schedules may "
                        "have different step counts. Costs about 100 model evaluations per noise.",
            inputs=[
                sampling_model_input(),
                empty_latent_input(),
                io.Combo.Input("sampler_name", options=covered_samplers(), default="euler",
                               tooltip="The sampler every schedule runs with. The SDE ones (dpmpp_sde, "
                                       "dpmpp_2m_sde, dpmpp_3m_sde, …) run with their noise, each noise on its own "
                                       "Brownian path, against their own result on a fine grid on that path; the "
                                       "other stochastic ones (ancestral, LCM) on their noise-free part."),
                *sigmas_inputs(),
                io.Int.Input("noises", default=16, min=MIN_NOISES, max=4096,
                             tooltip="Noises every schedule is sampled from; more give a narrower interval."),
                io.Int.Input("seed", default=1, min=0, max=0xFFFFFFFFFFFFFFFF,
                             tooltip="Seed of the noises, drawn as the KSampler draws a batch. Use another seed than "
                                     "a VRG+ node you compare, so its schedule is judged on noises it "
                                     "was not fitted to."),
                io.Int.Input("batch_size", default=4, min=1, max=256, tooltip="Samples per model call."),
                io.Float.Input("cfg", default=1.0, min=0.0, max=100.0, step=0.1, round=0.01,
                               tooltip="Guidance scale you sample with. Not 1 needs a negative conditioning."),
                io.Conditioning.Input("positive", optional=True,
                                      tooltip="A typical prompt (text-to-image models need one)."),
                io.Conditioning.Input("negative", optional=True, tooltip="Negative prompt, used when cfg is not 1."),
            ],
            outputs=[io.Latent.Output(display_name="samples",
                                      tooltip="Per noise: the converged sample, then each schedule's in input "
                                              "order. Decode them to see the schedules side by side."),
                     io.String.Output(display_name="report")],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def execute(cls, model, latent, sampler_name, noises, seed, batch_size, cfg, positive=None, negative=None,
                **inputs) -> io.NodeOutput:
        check_choice("sampler_name", sampler_name, covered_samplers())
        check_guidance(cfg, negative)
        schedules = labelled_schedules(inputs)
        model_sampling = model.get_model_object("model_sampling")
        kind = model_kind(model_sampling)
        latent_shape = (model.get_model_object("latent_format").latent_channels, *latent["samples"].shape[2:])
        bar = comfy.utils.ProgressBar(noises)

        def inside(call, model_k) -> Comparison:
            start = start_states(model_k.inner_model.inner_model, latent_shape, seed)
            sampler = dataclasses.replace(comfy_sampler(sampler_name), host=model_k.inner_model)
            return compare_schedules(lambda x, s, i: call(x, s), start, schedules, sampler, kind,
                                     float(model_sampling.sigma_min), noises, batch_size=batch_size,
                                     progress=lambda done, total: bar.update_absolute(done, total),
                                     should_stop=stop_if_cancelled)

        batch = torch.zeros((min(batch_size, noises), *latent_shape))  # the memory the guider plans for
        first = max(schedules.values(), key=lambda s: float(s[0]))
        result = run_guided(model, positive, negative, cfg, batch, torch.as_tensor(first).float(), seed, inside)
        text = "\n".join(result.lines())
        ui = report(cls, text, panel=True, **comparison_ui(result))
        samples = model.model.process_latent_out(side_by_side(result))
        return io.NodeOutput({"samples": samples}, text, ui=ui)


NODES = [VRGCompareSchedules]
