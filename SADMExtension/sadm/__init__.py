"""SADM: Sequence-Aware Diffusion Model for longitudinal 3D medical image generation.

The engine of the SADM 3D Slicer extension. Importing this package never imports Slicer or Qt.
"""

from sadm.errors import (
    CheckpointError,
    GenerationCancelled,
    InvalidFramesError,
    InvalidRolesError,
    SADMError,
)

__version__ = "0.1.0"

__all__ = [
    "Engine",
    "CheckpointError",
    "GenerationCancelled",
    "InvalidFramesError",
    "InvalidRolesError",
    "SADMError",
    "__version__",
]


def __getattr__(name: str):
    # Engine pulls in torch; keep `import sadm` cheap for tools that only need the errors.
    if name == "Engine":
        from sadm.generate import Engine

        return Engine
    raise AttributeError(f"module 'sadm' has no attribute {name!r}")
