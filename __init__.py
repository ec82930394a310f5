"""ComfyUI entry of the VRG node pack (V3 API). Importing this package outside ComfyUI loads nothing."""

WEB_DIRECTORY = "./web"  # the frontend extension: a chart of each VRG node's results (web/vrg_chart.js)


async def comfy_entrypoint():
    from .nodes import comfy_entrypoint as entrypoint

    return await entrypoint()
