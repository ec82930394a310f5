"""Scale at real model sizes: fingerprint time, profile / search memory per latent element, cost per family.

    COMFYUI_PATH=<a ComfyUI checkout> python -m benchmarks.family_scale [--skip-memory] [--skip-fingerprint]

1. **Fingerprint** of full-size SDXL and Flux-dev diffusion-model state dicts (the shapes ComfyUI's
   own classes build, read from a model constructed on the meta device) in fp16, bf16 and fp8.
   The tensors are `torch.empty` of those shapes: the fingerprint reads at most 16 values a
   tensor, so the untouched pages are never committed and the process stays small whatever the
   model size (peak RSS printed). Without COMFYUI_PATH this part is skipped.
2. **Memory per latent element** of `vrg_core.profile` and the VRG+ search (`vrg_core.search`) at
   SDXL 1024², Flux 1024² and Wan 2.1 480p × 81 frames, each in a fresh process, on a stand-in
   model: the exact denoiser of unit-Gaussian data (D = x / (1 + σ²) for EPS; (1 − σ) x /
   ((1 − σ)² + σ²) for flow), so the engine's own memory is measured, not a network's. Printed
   beside the `vrg_core.memory` estimate, and whether the search node's default batch (4) would
   be refused here, with the refusal.
3. **Cost** of profile and search per family in model evaluations and images' worth (one image =
   the family's usual step count of model calls).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
import torch

GIB = 2**30
SHAPES = {  # latent of one sample: channels x (frames x) height x width
    "SDXL 1024x1024": (4, 128, 128),
    "Flux 1024x1024": (16, 128, 128),
    "Wan 2.1 480x832 x 81 frames": (16, 21, 60, 104),
}
KINDS = {"SDXL 1024x1024": "eps", "Flux 1024x1024": "const", "Wan 2.1 480x832 x 81 frames": "const"}
# family: (usual steps, usual cfg) as in ComfyUI's example workflows / this pack's templates
USUAL = {"SD1.5": (20, 7.0), "SD2.x-v": (20, 7.0), "SDXL": (20, 6.0), "Playground 2.5 (EDM)": (30, 3.0),
         "SD3": (28, 4.5), "Flux-dev": (20, 1.0), "Flux-schnell": (4, 1.0), "Wan 2.1 (video)": (30, 6.0)}


def rss(field: str = "VmHWM") -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


# --- 1. fingerprint ---------------------------------------------------------------------------------

SDXL_UNET = {"use_checkpoint": False, "image_size": 32, "out_channels": 4, "use_spatial_transformer": True,
             "legacy": False, "num_classes": "sequential", "adm_in_channels": 2816, "in_channels": 4,
             "model_channels": 320, "num_res_blocks": [2, 2, 2], "transformer_depth": [0, 0, 2, 2, 10, 10],
             "channel_mult": [1, 2, 4], "transformer_depth_middle": 10, "use_linear_in_transformer": True,
             "context_dim": 2048, "num_head_channels": 64, "transformer_depth_output": [0, 0, 0, 2, 2, 2, 10, 10, 10],
             "use_temporal_attention": False, "use_temporal_resblock": False}
FLUX_DEV = {"image_model": "flux", "guidance_embed": True, "in_channels": 16, "out_channels": 16, "vec_in_dim": 768,
            "context_in_dim": 4096, "hidden_size": 3072, "mlp_ratio": 4.0, "num_heads": 24, "depth": 19,
            "depth_single_blocks": 38, "axes_dim": [16, 56, 56], "theta": 10000, "patch_size": 2, "qkv_bias": True}


def real_shapes(comfyui: str) -> dict[str, dict[str, tuple]]:
    """{model: {tensor name: shape}} of ComfyUI's SDXL and Flux-dev diffusion models, built on the meta device."""
    sys.path.insert(0, comfyui)
    from comfy.cli_args import args

    args.cpu = True
    import comfy.supported_models as sm

    out = {}
    for label, config_class, unet in (("SDXL", sm.SDXL, SDXL_UNET), ("Flux-dev", sm.Flux, FLUX_DEV)):
        config = config_class(dict(unet))
        config.set_inference_dtype(torch.float16, None)
        model = config.get_model({}, device="meta")
        out[label] = {k: tuple(v.shape) for k, v in model.diffusion_model.state_dict().items()}
    return out


def fingerprint_part() -> None:
    from vrg_core.fingerprint import fingerprint_weights

    comfyui = os.environ.get("COMFYUI_PATH")
    if not comfyui:
        print("fingerprint: skipped (set COMFYUI_PATH to read SDXL / Flux shapes from ComfyUI's classes)")
        return
    shapes = real_shapes(comfyui)
    print("\n1. fingerprint of full-size diffusion-model state dicts (torch.empty of ComfyUI's shapes)")
    print(f"{'model':10s} {'dtype':13s} {'tensors':>7s} {'params':>8s} {'size':>9s} {'seconds':>8s} {'peak RSS':>9s}")
    for label, named in shapes.items():
        params = sum(int(np.prod(s)) for s in named.values())
        for dtype in (torch.float16, torch.bfloat16, torch.float8_e4m3fn):
            weights = {k: torch.empty(s, dtype=dtype) for k, s in named.items()}
            started = time.perf_counter()
            result = fingerprint_weights(weights)
            seconds = time.perf_counter() - started
            size = params * weights[next(iter(weights))].element_size()
            print(f"{label:10s} {str(dtype)[6:]:13s} {len(named):7d} {params / 1e9:7.2f}B {size / GIB:7.1f}G "
                  f"{seconds:8.3f} {rss() / GIB:8.2f}G" + ("" if result.complete else "  (values not read!)"))
            del weights


# --- 2. memory per latent element -------------------------------------------------------------------

def measure(what: str, label: str, batch: int) -> dict:
    """Run in a fresh process: the peak memory `what` (profile | search) adds at `label`'s latent size."""
    from vrg_core.bundle import load_bundled_table
    from vrg_core.parameterization import ModelKind, noise_level_grid
    from vrg_core.search.schedule_search import MIN_SAMPLES, plan_for

    torch.set_num_threads(1)
    shape, kind = SHAPES[label], ModelKind(KINDS[label])
    table = load_bundled_table("demo_eps" if kind is ModelKind.EPS else "demo_flow")

    def denoise(x, sigma, index):
        s = sigma.reshape(-1, *([1] * (x.ndim - 1))).to(x.dtype)
        return (1 - s) * x / ((1 - s) ** 2 + s**2) if kind.is_flow else x / (1 + s**2)

    elements = int(np.prod(shape))
    before = rss("VmRSS")
    started = time.perf_counter()
    if what == "profile":
        from vrg_core.profile import profile

        clean = torch.randn((2, *shape))
        grid = noise_level_grid(table.sigma_min, table.sigma_max, 4, kind)
        profile(denoise, clean, kind, grid, batch, batch_size=batch, seed=0)
        held = 2
    else:
        from vrg_core.search import search_schedule

        steps = 8
        top = table.sigma_max
        base = (np.append(np.geomspace(top, table.sigma_min, steps), 0.0) if not kind.is_flow
                else np.append(np.linspace(1.0, 1.0 / steps, steps), 0.0))
        plan = plan_for(0, steps, "euler")
        evaluations = MIN_SAMPLES * (plan.grid + plan.checks * steps)

        def start(n, sigma):
            noise = torch.randn((n, *shape), generator=torch.Generator().manual_seed(0))
            return noise * sigma if not kind.is_flow else noise

        result = search_schedule(denoise, start, base, "euler", kind, table.sigma_min, evaluations=evaluations,
                                 batch_size=batch)
        held = result.samples
    peak = rss("VmHWM") - before
    return {"what": what, "label": label, "batch": batch, "elements": elements, "held": held,
            "peak_bytes": peak, "seconds": time.perf_counter() - started}


def memory_part() -> None:
    from vrg_core.memory import available_bytes, check_search_memory, profile_bytes, search_bytes
    from vrg_core.search.schedule_search import DEFAULT_GRID, MIN_SAMPLES

    print("\n2. memory the engine adds, per latent element, on a stand-in model (fresh process each)")
    print(f"{'latent':30s} {'what':8s} {'batch':>5s} {'elements':>10s} {'peak added':>10s} {'B/elem':>7s} "
          f"{'B/elem/batch':>12s} {'estimate':>9s} {'seconds':>7s}")
    for label in SHAPES:
        for what, batch in (("profile", 4), ("search", 1)):
            run = subprocess.run([sys.executable, "-m", "benchmarks.family_scale", "--measure", what, label,
                                  str(batch)], capture_output=True, text=True)
            if run.returncode != 0:
                print(f"{label:30s} {what:8s} failed: {run.stderr.strip().splitlines()[-1:]}")
                continue
            r = json.loads(run.stdout.strip().splitlines()[-1])
            e = r["elements"]
            estimate = (profile_bytes(e, batch, 2) if what == "profile" else
                        search_bytes(e, batch, DEFAULT_GRID, r["held"]))
            print(f"{label:30s} {what:8s} {batch:5d} {e:10,d} {r['peak_bytes'] / GIB:9.2f}G "
                  f"{r['peak_bytes'] / e:7.0f} {r['peak_bytes'] / e / batch:12.0f} {estimate / GIB:8.2f}G "
                  f"{r['seconds']:7.1f}")
    available = available_bytes()
    print(f"\nsearch node default batch 4 here ({available / GIB:.1f} GiB available now):")
    for label, shape in SHAPES.items():
        try:
            need = check_search_memory((1, *shape), 4, DEFAULT_GRID, 13)
            print(f"  {label}: fits (about {need / GIB:.1f} GiB)")
        except Exception as e:  # noqa: BLE001 - the refusal is what is shown
            print(f"  {label}: refused: {e}")
    del MIN_SAMPLES


# --- 3. cost ----------------------------------------------------------------------------------------

def cost_part() -> None:
    from vrg_core.search import DEFAULT_EVALUATIONS

    profile_evals = 48 * 32  # VRG Profile defaults: 48 levels x 32 samples
    print("\n3. cost in model evaluations (one evaluation = one model call on one latent; cfg != 1 runs the "
          "positive and negative in that call, as sampling does)")
    print(f"{'family':22s} {'usual steps':>11s} {'cfg':>4s} {'profile evals':>13s} {'= images':>8s} "
          f"{'search evals':>12s} {'= images':>8s}")
    for family, (steps, cfg) in USUAL.items():
        print(f"{family:22s} {steps:11d} {cfg:4g} {profile_evals:13d} {profile_evals / steps:8.0f} "
              f"{DEFAULT_EVALUATIONS:12d} {DEFAULT_EVALUATIONS / steps:8.0f}")
    print("(search: at most that many, once per model x sampler x steps x cfg, then cached; the profile once per "
          "model and cfg)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--skip-fingerprint", action="store_true")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--measure", nargs=3, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.measure:
        what, label, batch = a.measure
        print(json.dumps(measure(what, label, int(batch))))
        return
    if not a.skip_fingerprint:
        fingerprint_part()
    if not a.skip_memory:
        memory_part()
    cost_part()


if __name__ == "__main__":
    main()
