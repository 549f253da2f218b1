"""``jaxlstm inspect``: what a Keras file's LSTM layers are, and which columns are which gate."""

from __future__ import annotations

import os

import numpy as np

from jaxlstm._src.converters import params_from_arrays
from jaxlstm._src.load import layer_options
from jaxlstm._src.readers import LayerRecord, read_keras_file

_GATES = ("i (input)", "f (forget)", "c (cell candidate)", "o (output)")


def _gate_lines(record: LayerRecord) -> list[str]:
    params, layout = params_from_arrays(record.weights, f"{record.path}: layer {record.name!r}")
    u = params.units
    lines = ["    arrays in the file:"]
    lines += [f"      {n}  {tuple(np.shape(a))}  {np.asarray(a).dtype}" for n, a in record.weights]
    if layout == "keras1":
        lines.append("    layout: Keras 1, one W/U/b per gate, saved in order i, c, f, o;")
        lines.append("            repacked as kernel = [W_i | W_f | W_c | W_o] (and U, b likewise)")
        return lines
    if layout == "cudnn":
        lines.append("    layout: CuDNNLSTM: gates i, f, c, o; each kernel block stored transposed")
        lines.append(
            f"            (cuDNN order); bias of 8u = {8 * u}: input half + recurrent half"
        )
    else:
        lines.append("    layout: Keras, gates packed i, f, c, o along the last axis:")
    for g, gate in enumerate(_GATES):
        cols = f"[:, {g * u}:{(g + 1) * u}]"
        bias = f"bias[{g * u}:{(g + 1) * u}]"
        if layout == "cudnn":
            bias += f" + bias[{(g + 4) * u}:{(g + 5) * u}]"
        lines.append(f"      {gate:<20} kernel{cols}  recurrent_kernel{cols}  {bias}")
    return lines


def _describe_lstm(record: LayerRecord, indent: str = "  ") -> list[str]:
    params, _ = params_from_arrays(record.weights, f"{record.path}: layer {record.name!r}")
    opts = layer_options(record)
    text = ", ".join(f"{k}={v}" for k, v in opts.items())
    return [
        f"{indent}class {record.class_name}, in_features={params.in_features}, "
        f"units={params.units}, use_bias={params.bias is not None}",
        f"{indent}options: {text}" + ("" if record.config else "  (weights only: defaults)"),
        *(indent + line[2:] for line in _gate_lines(record)),
    ]


def describe_keras_file(path: str | os.PathLike) -> str:
    """A readable report on every LSTM layer of a Keras file: format, Keras version, options as
    they will be used, array shapes and the column ranges of each gate."""
    kf = read_keras_file(path)
    out = [f"{kf.path}", f"  format: {kf.format}, keras_version: {kf.keras_version}"]
    if not kf.layers:
        out.append("  no LSTM layers")
    for name, record in kf.layers.items():
        wrapped = f" (inside {record.wrapper})" if record.wrapper else ""
        out.append(f"\nlayer {name!r}: {record.class_name}{wrapped}")
        if record.class_name == "Bidirectional":
            out.append(f"  merge_mode={record.merge_mode}")
            for direction in (record.forward, record.backward):
                out.append(f"  {direction.name.rsplit('/', 1)[-1]}:")
                out.extend(_describe_lstm(direction, "    "))
        else:
            out.extend(_describe_lstm(record))
    if kf.other_layers:
        out.append(f"\nother layers: {', '.join(f'{n} ({c})' for n, c in kf.other_layers)}")
    return "\n".join(out)
