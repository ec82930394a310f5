"""Small demo diffusion models trained on real 16×16 digits (see `vrg_core.demo.train`).

`load_demo_model("eps" | "flow")` gives a model called exactly as ComfyUI calls SD1.5-style
EPS and SD3-style flow models; `vrg_core.demo.metric` scores samples by Fréchet distance to
held-out real digits.
"""

from .models import DemoModel, load_demo_model, make_context

__all__ = ["DemoModel", "load_demo_model", "make_context"]
