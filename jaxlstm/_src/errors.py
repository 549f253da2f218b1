"""The exceptions jaxlstm raises. Every one derives from :class:`JaxLSTMError`."""

from __future__ import annotations


class JaxLSTMError(Exception):
    """Base class of every error jaxlstm raises on purpose."""


class KerasFileError(JaxLSTMError, ValueError):
    """A Keras file is unreadable, malformed, or inconsistent with itself."""


class LayerNotFoundError(JaxLSTMError, KeyError):
    """The requested layer is not in the file; the message lists the ones that are."""

    def __str__(self) -> str:  # KeyError would quote the message.
        return str(self.args[0]) if self.args else ""


class UnsupportedOptionError(JaxLSTMError, ValueError):
    """A layer option (from a file or an argument) that jaxlstm does not implement."""


class UnsupportedLayerError(UnsupportedOptionError):
    """A layer class jaxlstm does not implement (Lambda, custom classes, ...)."""


class UnknownActivationError(UnsupportedOptionError):
    """An activation name that is not a Keras built-in."""


class ShapeError(JaxLSTMError, ValueError):
    """Inputs, masks, states or weights whose shapes do not fit the layer."""


class ChecksumError(KerasFileError):
    """The file's SHA-256 is not the one the caller pinned with ``sha256=``."""


class UnsafeFileError(KerasFileError):
    """A file refused for safety before it is read: an archive member that would inflate past
    the size limit, a member name that is not a plain relative path, an HDF5 dataset declaring
    more bytes than the limit, an HDF5 link or storage that points outside the file, or a filter
    that would load a plugin."""


class NonFiniteWeightsError(KerasFileError):
    """Weights holding NaN or Inf, refused because ``nonfinite="error"`` was asked for."""


class MissingDependencyError(JaxLSTMError, ImportError):
    """A file format or feature needs a package that is not installed (a core dependency
    missing from the environment, or an optional extra: ``pip install "jaxlstm[torch]"``,
    ``"jaxlstm[onnx]"``); the message names it and how to install it."""
