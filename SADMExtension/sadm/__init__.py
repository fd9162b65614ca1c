"""SADM: Sequence-Aware Diffusion Model for longitudinal 3D medical image generation.

The engine of the SADM 3D Slicer extension. Importing this package never imports Slicer or Qt.
"""

from sadm.errors import (
    CheckpointError,
    GenerationCancelled,
    InvalidFramesError,
    InvalidRequestError,
    InvalidRolesError,
    SADMError,
)
from sadm.generation.request import GenerationRequest, SamplingOptions, build_request

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "Engine",
    "Generation",
    "GenerationCancelled",
    "GenerationRequest",
    "InvalidFramesError",
    "InvalidRequestError",
    "InvalidRolesError",
    "SADMError",
    "SamplingOptions",
    "__version__",
    "build_request",
]


def __getattr__(name: str):
    # Engine pulls in torch; keep `import sadm` cheap for tools that only need the errors.
    if name in ("Engine", "Generation"):
        from sadm.generation import engine

        return getattr(engine, name)
    raise AttributeError(f"module 'sadm' has no attribute {name!r}")
