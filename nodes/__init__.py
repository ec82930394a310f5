"""ComfyUI adapters over `vrg_core`, one module per concern. Imported only inside ComfyUI."""

from __future__ import annotations

from typing_extensions import override

from comfy_api.v0_0_2 import ComfyExtension, io

from . import (compare, demo, distance, images, load_schedule, optimize, profile, search, searched_file, tables, text,
               vrg_scheduler)


class VRGExtension(ComfyExtension):
    @override
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return [*profile.NODES, *optimize.NODES, *tables.NODES, *load_schedule.NODES, *text.NODES, *images.NODES,
                *vrg_scheduler.NODES, *search.NODES, *searched_file.NODES, *compare.NODES, *distance.NODES, *demo.NODES]


async def comfy_entrypoint() -> VRGExtension:
    tables.register_folder()
    searched_file.register_folder()
    vrg_scheduler.register_scheduler()
    return VRGExtension()
