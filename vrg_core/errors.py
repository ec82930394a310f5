"""The one error type the engine raises for bad input."""


class VRGError(ValueError):
    """A bad input or file, with a message that names the input and the fix."""


class Cancelled(VRGError):
    """Long work (profiling, the paper optimiser) was stopped by its caller."""
