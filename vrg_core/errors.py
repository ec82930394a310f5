"""The one error type the engine raises for bad input."""


class VRGError(ValueError):
    """A bad input or file, with a message that names the input and the fix."""


class Cancelled(VRGError):
    """Long work (profiling, the paper optimiser) was stopped by its caller."""


# ComfyUI shows an error's type as "<module>.<name>"; inside a custom-node folder the module path
# would show the folder ("…custom_nodes/comfyui-vrg.vrg_core.errors"), so name it plainly.
VRGError.__module__ = Cancelled.__module__ = "vrg"
