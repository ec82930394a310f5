"""ComfyUI entry of the VRG node pack (V3 API). Importing this package outside ComfyUI loads nothing."""


async def comfy_entrypoint():
    from .nodes import comfy_entrypoint as entrypoint

    return await entrypoint()
