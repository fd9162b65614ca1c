"""Typed exceptions: every bad input is reported where it is first understood."""


class SADMError(Exception):
    """Base class of every error the SADM engine raises on purpose."""


class InvalidRequestError(SADMError, ValueError):
    """A generation request (roles, times, sampling options) cannot be run; the message says why."""


class InvalidRolesError(InvalidRequestError):
    """The observed / missing / future roles of a sequence break a rule of the method."""


class InvalidFramesError(SADMError, ValueError):
    """Frames have the wrong dimensionality, disagree in shape, or hold NaN/Inf voxels."""


class CheckpointError(SADMError):
    """A model folder is missing, truncated, or made for another version, grid or architecture."""


class ConfigError(SADMError, ValueError):
    """A model or training configuration is inconsistent (e.g. a grid not divisible by the patches)."""


class GenerationCancelled(SADMError):
    """The caller's cancel event was set; the run produced nothing."""


class DataError(SADMError, ValueError):
    """A file or folder cannot be read as a longitudinal sequence (unreadable, wrong layout, bad voxels)."""


class DeviceError(SADMError, RuntimeError):
    """The requested device cannot be used (no CUDA in this PyTorch build, an unknown device name)."""


class InsufficientDeviceMemoryError(DeviceError):
    """Even a low estimate of what the run needs does not fit in the device's free memory."""
