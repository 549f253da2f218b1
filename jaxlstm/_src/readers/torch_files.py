"""PyTorch weights as a flat ``{key: numpy array}`` state dict, from a dict, a ``.safetensors``
file or a ``.pt`` / ``.pth`` file.

* ``.safetensors``: the 8-byte header length and the JSON header are checked here before the
  ``safetensors`` package (extra ``jaxlstm[torch]``) reads anything: a header longer than
  :data:`MAX_HEADER_BYTES` or than the file, tensors whose declared bytes exceed what the file
  holds, or a dtype numpy cannot hold (bfloat16, 8-bit floats) are refused. The tensors are then
  read with ``safetensors.safe_open(framework="np")``: no PyTorch needed.
* ``.pt`` / ``.pth`` / ``.bin``: only through ``torch.load(weights_only=True)`` (PyTorch's
  restricted unpickler, which builds tensors and plain containers and nothing else), and only
  when PyTorch is installed. A pickle holding anything else (a whole ``nn.Module``, a custom
  class) is refused; jaxlstm never unpickles otherwise.
"""

from __future__ import annotations

import inspect
import json
import math
import os
import struct
from collections.abc import Mapping

import numpy as np

from jaxlstm._src.errors import KerasFileError, MissingDependencyError, UnsafeFileError
from jaxlstm._src.readers.limits import Budget, human

MAX_HEADER_BYTES = 100 * (1 << 20)  # the safetensors format's own limit
SAFETENSORS_SUFFIXES = (".safetensors",)
PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")

# safetensors dtype -> numpy, for the dtypes numpy holds.
_DTYPES = {
    "F64": np.float64,
    "F32": np.float32,
    "F16": np.float16,
    "I64": np.int64,
    "I32": np.int32,
    "I16": np.int16,
    "I8": np.int8,
    "U8": np.uint8,
    "BOOL": np.bool_,
}


def read_state_dict(source) -> tuple[dict[str, np.ndarray], str]:
    """``(state_dict, where)``: every array of ``source`` by key, as numpy, and the name to
    quote in messages. ``source`` is a mapping of arrays (numpy, JAX, or CPU torch tensors),
    or the path of a ``.safetensors`` or ``.pt``/``.pth`` file."""
    if isinstance(source, Mapping):
        return {str(k): _as_numpy(v, str(k), "state_dict") for k, v in source.items()}, (
            "state_dict"
        )
    if not isinstance(source, str | os.PathLike):
        raise KerasFileError(
            f"received a {type(source).__name__}; expected a state_dict (a dict of arrays) or "
            "the path of a .safetensors or .pt/.pth file."
        )
    path = os.fspath(source)
    if not os.path.isfile(path):
        raise KerasFileError(f"{path}: no such file.")
    lower = path.lower()
    if lower.endswith(SAFETENSORS_SUFFIXES):
        return read_safetensors(path), path
    if lower.endswith(PICKLE_SUFFIXES):
        return read_torch_pickle(path), path
    raise KerasFileError(
        f"{path}: unknown PyTorch weights file; expected a name ending in .safetensors, or "
        f"{', '.join(PICKLE_SUFFIXES)} for torch.save files."
    )


def safetensors_header(path: str) -> dict:
    """The JSON header of a ``.safetensors`` file, checked: its length fits the file and
    :data:`MAX_HEADER_BYTES`, each tensor has a known dtype, a shape and byte offsets that fit
    the data section and agree with its shape, and the tensors total no more than the file
    holds (the :class:`~jaxlstm._src.readers.limits.Budget`)."""
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise KerasFileError(
                f"{path}: {size} bytes, too short for a .safetensors file (an 8-byte header "
                "length, then a JSON header); the file is truncated or not safetensors."
            )
        (n,) = struct.unpack("<Q", head)
        if n > MAX_HEADER_BYTES or n > size - 8:
            raise UnsafeFileError(
                f"{path}: the safetensors header declares {human(n)} ({n} bytes); a "
                f"{human(size)} file holds at most {max(size - 8, 0)} and the format allows "
                f"{human(MAX_HEADER_BYTES)}; refusing to read it (the file is damaged or hostile)."
            )
        raw = fh.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise KerasFileError(f"{path}: the safetensors header is not JSON ({err}).") from None
    if not isinstance(header, dict):
        raise KerasFileError(
            f"{path}: the safetensors header is a {type(header).__name__}; expected an object."
        )
    data_bytes = size - 8 - n
    budget = Budget(path, size)
    for key, entry in header.items():
        if key == "__metadata__":
            continue
        _check_entry(path, key, entry, data_bytes, budget)
    return header


def _check_entry(path: str, key: str, entry, data_bytes: int, budget: Budget) -> None:
    ok = (
        isinstance(entry, dict)
        and isinstance(entry.get("dtype"), str)
        and isinstance(entry.get("shape"), list)
        and all(isinstance(d, int) and d >= 0 for d in entry["shape"])
        and isinstance(entry.get("data_offsets"), list)
        and len(entry["data_offsets"]) == 2
        and all(isinstance(d, int) and d >= 0 for d in entry["data_offsets"])
    )
    if not ok:
        raise KerasFileError(
            f"{path}: tensor {key!r} has header entry {entry!s:.200}; expected "
            '{"dtype": ..., "shape": [...], "data_offsets": [begin, end]}.'
        )
    dtype = entry["dtype"]
    if dtype not in _DTYPES:
        raise KerasFileError(
            f"{path}: tensor {key!r} has dtype {dtype}, which numpy cannot hold; expected one of "
            f"{sorted(_DTYPES)}. Convert it in PyTorch (e.g. state_dict = {{k: v.float() ...}}) "
            "and save again."
        )
    begin, end = entry["data_offsets"]
    nbytes = math.prod(entry["shape"]) * np.dtype(_DTYPES[dtype]).itemsize  # exact, no overflow
    if end < begin or end > data_bytes or end - begin != nbytes:
        raise UnsafeFileError(
            f"{path}: tensor {key!r} {dtype} {tuple(entry['shape'])} declares bytes "
            f"{begin}:{end} ({nbytes} needed) of a {data_bytes}-byte data section; refusing to "
            "read it (the file is damaged or hostile)."
        )
    budget.take(nbytes, f"tensor {key!r}")


def read_safetensors(path: str) -> dict[str, np.ndarray]:
    """Every tensor of a ``.safetensors`` file as numpy (header checked first)."""
    header = safetensors_header(path)
    safetensors = _import("safetensors", "torch")
    from safetensors import SafetensorError

    try:
        with safetensors.safe_open(path, framework="np") as fh:
            return {k: np.asarray(fh.get_tensor(k)) for k in header if k != "__metadata__"}
    except SafetensorError as err:
        raise KerasFileError(f"{path}: safetensors could not read the file ({err}).") from None


def read_torch_pickle(path: str) -> dict[str, np.ndarray]:
    """A ``torch.save`` file's state dict, through ``torch.load(weights_only=True)`` only."""
    try:
        import torch
    except ModuleNotFoundError:
        raise MissingDependencyError(
            f"{path}: a .pt/.pth file is a pickle, which jaxlstm reads only through PyTorch's "
            "restricted loader torch.load(weights_only=True), and PyTorch is not installed. "
            "Install PyTorch, or convert the file to .safetensors where PyTorch is (safetensors."
            "torch.save_file(torch.load(path, weights_only=True), 'model.safetensors'))."
        ) from None
    if "weights_only" not in inspect.signature(torch.load).parameters:
        raise UnsafeFileError(
            f"{path}: this PyTorch ({torch.__version__}) has no torch.load(weights_only=True), "
            "and jaxlstm unpickles nothing else; upgrade PyTorch (>= 1.13)."
        )
    import pickle

    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise UnsafeFileError(
            f"{path}: refused by torch.load(weights_only=True): the pickle holds more than "
            f"tensors and plain containers ({first[:200]}). jaxlstm unpickles nothing else: "
            "save model.state_dict() (not the model), or convert to .safetensors."
        ) from None
    except (RuntimeError, EOFError, OSError) as err:
        raise KerasFileError(f"{path}: torch.load could not read the file ({err}).") from None
    if isinstance(loaded, Mapping) and isinstance(loaded.get("state_dict"), Mapping):
        loaded = loaded["state_dict"]  # a checkpoint dict around the state dict
    if not isinstance(loaded, Mapping):
        raise KerasFileError(
            f"{path}: holds a {type(loaded).__name__}; expected a state_dict (a dict of "
            "tensors): save model.state_dict()."
        )
    return {
        str(k): _as_numpy(v, str(k), path)
        for k, v in loaded.items()
        if hasattr(v, "shape")  # a checkpoint may hold counters, strings beside the tensors
    }


def _as_numpy(value, key: str, where: str) -> np.ndarray:
    if hasattr(value, "detach") and hasattr(value, "numpy"):  # a torch tensor
        value = value.detach().cpu()
        if str(value.dtype) == "torch.bfloat16":
            value = value.float()
        value = value.numpy()
    array = np.asarray(value)
    if array.dtype == object:
        raise KerasFileError(
            f"{where}: entry {key!r} is a {type(value).__name__}; expected an array or tensor."
        )
    return array


def _import(module: str, extra: str):
    try:
        return __import__(module)
    except ModuleNotFoundError:
        raise MissingDependencyError(
            f"reading this file needs the {module!r} package, which is not installed; install "
            f'it with: pip install "jaxlstm[{extra}]" (or pip install {module}).'
        ) from None
