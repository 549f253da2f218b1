"""``jaxlstm convert`` between frameworks: one recurrent layer from a Keras file, a PyTorch
state dict (``.safetensors``, ``.pt``) or an ONNX model, written as PyTorch weights
(``.safetensors``) or an ONNX model, where the numbers survive (each writer refuses what the
other framework would compute differently). Keras -> Keras model conversion stays in
``save_keras``."""

from __future__ import annotations

import os

from jaxlstm._src.errors import UnsupportedOptionError

KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
TORCH_SUFFIXES = (".safetensors", ".pt", ".pth")


def is_foreign(path: str) -> bool:
    """Whether ``path`` names a PyTorch or ONNX file (by its suffix)."""
    return path.lower().endswith((*TORCH_SUFFIXES, ".onnx"))


def load_recurrent(path: str, name: str | None = None, *, batch_first: bool = False):
    """One recurrent layer (module) of a Keras, PyTorch or ONNX file."""
    lower = path.lower()
    if lower.endswith(TORCH_SUFFIXES):
        from jaxlstm._src.torch import load_torch

        return load_torch(path, name, batch_first=batch_first)
    if lower.endswith(".onnx"):
        from jaxlstm._src.onnx import load_onnx

        return load_onnx(path, name)
    from jaxlstm._src.load import load_keras_layer

    return load_keras_layer(path, name)


def convert_layer(src: str, dst: str, name: str | None = None, *, batch_first: bool = False) -> str:
    """Read one recurrent layer of ``src`` and write it to ``dst`` (``.safetensors`` or
    ``.onnx``); returns what was written, for the command to print."""
    src, dst = os.fspath(src), os.fspath(dst)
    lower = dst.lower()
    if lower.endswith(KERAS_SUFFIXES):
        raise UnsupportedOptionError(
            f"writing {dst}: a PyTorch or ONNX layer alone cannot be written as a Keras model "
            "file (jaxlstm writes Keras files from whole Keras models: jaxlstm convert "
            "model.h5 model.keras); write .safetensors or .onnx instead."
        )
    module = load_recurrent(src, name, batch_first=batch_first)
    if lower.endswith(".safetensors"):
        from jaxlstm._src.torch import save_torch

        config = save_torch(module, dst)
        args = ", ".join(f"{k}={v!r}" for k, v in config.kwargs().items())
        return f"wrote {dst}: load it into torch.nn.{config.mode}({args}) with strict=True"
    if lower.endswith(".onnx"):
        from jaxlstm._src.onnx import save_onnx

        save_onnx(module, dst)
        return f"wrote {dst}: input X, output Y (the layer's output sequence), Y_h*/Y_c* states"
    raise UnsupportedOptionError(
        f"writing {dst}: expected a name ending in .safetensors (PyTorch) or .onnx, or .keras/.h5 "
        "for a Keras model file."
    )
