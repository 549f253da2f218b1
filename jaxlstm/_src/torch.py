"""PyTorch weights in, and back out: ``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN`` (any ``num_layers``,
``bidirectional``, ``bias``), ``nn.Linear`` and ``nn.Embedding`` from a state dict, a
``.safetensors`` file or a ``.pt``/``.pth`` file, as jaxlstm modules with PyTorch's numbers;
and jaxlstm's recurrent modules as a state dict ``nn.LSTM``/``nn.GRU``/``nn.RNN`` load with
``strict=True``.

The gate permutation is ``converters/torch.py``'s table; this module finds the layers in a
state dict by key (``{prefix}weight_ih_l{k}[_reverse]``, ...), reads sizes from the arrays, and
builds modules. What a state dict cannot say is an argument with PyTorch's default:
``batch_first=False`` (inputs ``(T, B, F)``) and, for ``nn.RNN``, ``nonlinearity="tanh"``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

import numpy as np

from jaxlstm._src.converters.gates import gate_slices
from jaxlstm._src.converters.torch import (
    GATES_PER_FAMILY,
    TORCH_CLASSES,
    TORCH_GATES,
    from_torch,
    to_torch,
)
from jaxlstm._src.core.activations import ACTIVATIONS, get_activation
from jaxlstm._src.errors import KerasFileError, LayerNotFoundError, UnsupportedOptionError
from jaxlstm._src.readers.torch_files import read_state_dict

_KEY = re.compile(
    r"^(?P<prefix>(?:.*\.)?)(?P<param>weight_ih|weight_hh|bias_ih|bias_hh|weight_hr)"
    r"_l(?P<layer>\d+)(?P<rev>_reverse)?$"
)
_FAMILY_OF_GATES = {4: "LSTM", 3: "GRU", 1: "SimpleRNN"}
NONLINEARITIES = ("tanh", "relu")


@dataclass
class TorchRecurrent:
    """One ``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN`` found in a state dict, its sizes read from the
    arrays. ``arrays[(layer, direction)]`` maps ``weight_ih``/``weight_hh``/``bias_ih``/
    ``bias_hh`` to numpy arrays (direction 0 forward, 1 ``_reverse``)."""

    name: str
    family: str
    input_size: int
    hidden_size: int
    num_layers: int
    bidirectional: bool
    bias: bool
    arrays: dict = field(repr=False)
    proj_size: int = 0

    @property
    def torch_class(self) -> str:
        return TORCH_CLASSES[self.family]


@dataclass
class TorchOther:
    """An ``nn.Linear`` (``weight (out, in)``, optional ``bias``) or ``nn.Embedding``
    (``weight (num, dim)``) found by its prefix."""

    name: str
    weight: np.ndarray
    bias: np.ndarray | None


def _module_name(prefix: str) -> str:
    return prefix[:-1] if prefix.endswith(".") else prefix


def find_modules(state: dict[str, np.ndarray], where: str) -> dict[str, object]:
    """The recurrent modules of a state dict (:class:`TorchRecurrent`) and the other
    ``weight``/``bias`` modules (:class:`TorchOther`), by module name (``""`` for a bare
    ``nn.LSTM``'s own state dict), in key order."""
    groups: dict[str, dict] = {}
    rest: dict[str, dict] = {}
    for key, array in state.items():
        m = _KEY.match(key)
        if m:
            name = _module_name(m["prefix"])
            direction = 1 if m["rev"] else 0
            groups.setdefault(name, {}).setdefault((int(m["layer"]), direction), {})[m["param"]] = (
                key,
                array,
            )
            continue
        prefix, _, tail = key.rpartition(".")
        if tail in ("weight", "bias"):
            rest.setdefault(prefix, {})[tail] = array
    found: dict[str, object] = {}
    for name, layers in groups.items():
        found[name] = _recurrent(name, layers, where)
    for name, arrays in rest.items():
        if name in found or "weight" not in arrays or np.ndim(arrays["weight"]) != 2:
            continue
        found[name] = TorchOther(name, arrays["weight"], arrays.get("bias"))
    return found


def _recurrent(name: str, layers: dict, where: str) -> TorchRecurrent:
    label = f"{where}: module {name!r}" if name else f"{where}"
    listing = "; ".join(
        f"{key} {tuple(np.shape(a))}"
        for _, params in sorted(layers.items())
        for key, a in params.values()
    )
    num_layers = max(k for k, _ in layers) + 1
    directions = sorted({d for _, d in layers})
    bidirectional = directions == [0, 1]
    want = {(k, d) for k in range(num_layers) for d in range(len(directions))}
    if directions not in ([0], [0, 1]) or set(layers) != want:
        raise KerasFileError(
            f"{label}: layers and directions found {sorted(layers)}; expected every layer "
            f"0..{num_layers - 1}, each with a forward (and, if any has one, a _reverse) "
            f"direction. The state dict is incomplete: {listing}."
        )
    first = layers[(0, 0)]
    if "weight_ih" not in first or "weight_hh" not in first:
        raise KerasFileError(f"{label}: weight_ih_l0 and weight_hh_l0 are needed; found {listing}.")
    w_hh = first["weight_hh"][1]
    w_hr = first["weight_hr"][1] if "weight_hr" in first else None
    proj = 0
    if w_hr is not None:  # nn.LSTM(proj_size=P): weight_hr (P, H), weight_hh (4H, P)
        if np.ndim(w_hr) != 2 or not 0 < w_hr.shape[0] < w_hr.shape[1]:
            raise KerasFileError(
                f"{label}: weight_hr_l0 should be (proj_size, hidden_size) with proj_size < "
                f"hidden_size; found {listing}."
            )
        proj, hidden = w_hr.shape
        if np.shape(w_hh) != (4 * hidden, proj):
            raise KerasFileError(
                f"{label}: weight_hr_l0 {tuple(w_hr.shape)} is an nn.LSTM's projection, so "
                f"weight_hh_l0 should be (4*hidden_size, proj_size) = ({4 * hidden}, {proj}); "
                f"found {listing}."
            )
        family = "LSTM"
    else:
        if np.ndim(w_hh) != 2 or w_hh.shape[1] < 1 or w_hh.shape[0] % w_hh.shape[1]:
            raise KerasFileError(
                f"{label}: weight_hh_l0 should be (G*hidden_size, hidden_size), G = 4 (LSTM), 3 "
                f"(GRU) or 1 (RNN); found {listing}."
            )
        hidden = w_hh.shape[1]
        family = _FAMILY_OF_GATES.get(w_hh.shape[0] // hidden)
        if family is None:
            raise KerasFileError(
                f"{label}: weight_hh_l0 is {tuple(w_hh.shape)}: {w_hh.shape[0] // hidden} gate "
                "blocks of hidden_size rows; expected 4 (nn.LSTM), 3 (nn.GRU) or 1 (nn.RNN)."
            )
    g = GATES_PER_FAMILY[family]
    out_size = proj or hidden
    input_size = np.shape(first["weight_ih"][1])[-1] if np.ndim(first["weight_ih"][1]) else -1
    has_bias = "bias_ih" in first
    arrays = {}
    for (k, d), params in sorted(layers.items()):
        in_k = input_size if k == 0 else out_size * len(directions)
        shapes = {"weight_ih": (g * hidden, in_k), "weight_hh": (g * hidden, out_size)}
        if has_bias:
            shapes.update(bias_ih=(g * hidden,), bias_hh=(g * hidden,))
        if proj:
            shapes["weight_hr"] = (proj, hidden)
        got = {p: tuple(np.shape(a)) for p, (_, a) in params.items()}
        if got != shapes:
            raise KerasFileError(
                f"{label}: layer {k}{' _reverse' if d else ''} has "
                f"{', '.join(f'{p} {s}' for p, s in got.items())}; expected "
                f"{', '.join(f'{p} {s}' for p, s in shapes.items())} for an "
                f"nn.{TORCH_CLASSES[family]}(input_size={input_size}, hidden_size={hidden}, "
                f"bias={has_bias}{f', proj_size={proj}' if proj else ''}"
                f"{', bidirectional=True' if bidirectional else ''})."
            )
        arrays[(k, d)] = {p: np.asarray(a) for p, (_, a) in params.items()}
    return TorchRecurrent(
        name,
        family,
        int(input_size),
        int(hidden),
        num_layers,
        bidirectional,
        has_bias,
        arrays,
        proj_size=int(proj),
    )


def _pick(found: dict, name: str | None, where: str):
    recurrent = [n for n, m in found.items() if isinstance(m, TorchRecurrent)]
    if name is None:
        if len(recurrent) == 1:
            return found[recurrent[0]]
        raise LayerNotFoundError(
            f"{where} has {len(recurrent)} recurrent modules "
            f"({', '.join(map(repr, recurrent)) or 'none'}); "
            f"pass name= one of the modules: {', '.join(map(repr, found)) or 'none'}."
        )
    key = name[:-1] if name.endswith(".") else name
    if key not in found:
        raise LayerNotFoundError(
            f"{where} has no module {name!r}; its modules (by key prefix) are: "
            f"{', '.join(map(repr, found)) or 'none'}."
        )
    return found[key]


def _check_nonlinearity(nonlinearity: str | None, family: str) -> str:
    if nonlinearity is None:
        return "tanh"
    if family != "SimpleRNN":
        raise UnsupportedOptionError(
            f"nonlinearity={nonlinearity!r} was given for an nn.{TORCH_CLASSES[family]}; only "
            "nn.RNN takes a nonlinearity (LSTM and GRU are tanh/sigmoid)."
        )
    if nonlinearity not in NONLINEARITIES:
        raise UnsupportedOptionError(
            f"nonlinearity={nonlinearity!r}; expected one of {NONLINEARITIES}, as nn.RNN takes."
        )
    return nonlinearity


def load_torch(
    source,
    name: str | None = None,
    *,
    batch_first: bool = False,
    nonlinearity: str | None = None,
    return_state: bool = False,
    kind: str | None = None,
):
    """A PyTorch module's weights as a jaxlstm (Flax NNX) module with PyTorch's numbers.

    Args:
      source: a state dict (a mapping of numpy/JAX arrays or CPU torch tensors), or the path of
        a ``.safetensors`` file (read with the ``safetensors`` package, extra
        ``jaxlstm[torch]``; no PyTorch needed), or of a ``.pt``/``.pth`` file (only through
        ``torch.load(weights_only=True)``, so only where PyTorch is installed).
      name: the module's key prefix in the state dict (``"encoder.lstm"`` for keys
        ``encoder.lstm.weight_ih_l0``, ...); may be left out when there is one recurrent
        module (or the state dict is a bare ``nn.LSTM``'s).
      batch_first: as the PyTorch module was built (the state dict does not record it):
        ``False`` (PyTorch's default) means inputs ``(T, B, F)``, and the jaxlstm module is
        built ``time_major=True``.
      nonlinearity: an ``nn.RNN``'s (``"tanh"``, PyTorch's default, or ``"relu"``); not
        recorded in the state dict either.
      return_state: build the module to return its final states too (per call:
        ``module(x, return_state=True)``).
      kind: for a module with only a 2-D ``weight``: ``"linear"`` (``nn.Linear(bias=False)``)
        or ``"embedding"`` (``nn.Embedding``), which the arrays cannot tell apart.

    Returns:
      * ``nn.LSTM``/``nn.GRU``/``nn.RNN`` with one layer, one direction: a
        :class:`jaxlstm.LSTM`, :class:`jaxlstm.GRU` or :class:`jaxlstm.SimpleRNN` returning
        sequences, zeros at masked steps (as ``pad_packed_sequence`` pads);
        ``bidirectional=True``: a :class:`jaxlstm.Bidirectional` (``merge_mode="concat"``,
        forward first, as PyTorch concatenates); ``num_layers > 1``: a
        :class:`jaxlstm.RNNLayers` of those, layer ``k + 1`` reading layer ``k``'s output.
        A packed sequence is a mask: ``mask = jnp.arange(T)[:, None] < lengths`` (``(T, B)``,
        or ``(B, T)`` with ``batch_first``). With ``return_state`` the call returns
        ``(output, *states)``: per layer ``h, c`` (LSTM) or ``h`` (GRU, RNN), forward then
        reverse, layer 0 first; PyTorch's ``h_n[2 * k + d]``. With ``proj_size`` (arrays
        ``weight_hr_l*``) the LSTMs are :class:`jaxlstm.ProjLSTM` (outputs and ``h`` of
        ``proj_size``, ``c`` of ``hidden_size``).
      * ``nn.Linear``: a ``Dense`` layer (``x @ weight.T + bias``); ``nn.Embedding``: an
        ``Embedding`` layer (integer ids -> rows of ``weight``); both NNX modules called as
        ``layer(x)``.

    Raises:
      UnsupportedOptionError: an option PyTorch does not have.
      LayerNotFoundError: ``name`` is not a module of the state dict (the message lists them).
      KerasFileError: arrays inconsistent with one PyTorch module, or a damaged file
        (:class:`UnsafeFileError` for a hostile one; :class:`MissingDependencyError` when
        the package a file needs is not installed).

    Example:
      >>> import numpy as np
      >>> H, F = 3, 2
      >>> sd = {"weight_ih_l0": np.ones((4 * H, F), np.float32),
      ...       "weight_hh_l0": np.ones((4 * H, H), np.float32)}
      >>> lstm = load_torch(sd)               # nn.LSTM(2, 3, bias=False)
      >>> lstm(np.ones((5, 1, F), np.float32)).shape   # (T, B, F): batch_first=False
      (5, 1, 3)
    """
    state, where = read_state_dict(source)
    found = find_modules(state, where)
    module = _pick(found, name, where)
    if isinstance(module, TorchOther):
        return _other_module(module, kind, where)
    if kind is not None:
        raise UnsupportedOptionError(
            f"kind={kind!r} is for a module holding only a weight (Linear or Embedding); "
            f"{module.name or where!r} is an nn.{module.torch_class}."
        )
    return build_recurrent(
        module,
        time_major=not batch_first,
        activation=_check_nonlinearity(nonlinearity, module.family),
        return_state=return_state,
    )


def build_recurrent(
    module: TorchRecurrent,
    *,
    time_major: bool,
    activation: str = "tanh",
    return_state: bool = False,
    zero_output_for_mask: bool = True,
):
    """The jaxlstm module of one :class:`TorchRecurrent` (see :func:`load_torch`)."""
    from jaxlstm._src.modules.nnx import Bidirectional
    from jaxlstm._src.modules.nnx_layers import RNNLayers, cell_module

    layers = []
    for k in range(module.num_layers):
        per_direction = []
        for d in range(2 if module.bidirectional else 1):
            a = module.arrays[(k, d)]
            params = from_torch(
                module.family,
                a["weight_ih"],
                a["weight_hh"],
                a.get("bias_ih"),
                a.get("bias_hh"),
                a.get("weight_hr"),
            )
            per_direction.append(
                cell_module(
                    "ProjLSTM" if module.proj_size else module.family,
                    params,
                    activation=activation,
                    reset_after=True,  # nn.GRU resets after the matmul
                    return_sequences=True,
                    go_backwards=bool(d),
                    time_major=time_major,
                    return_state=return_state,
                    zero_output_for_mask=zero_output_for_mask,
                )
            )
        if module.bidirectional:
            layers.append(Bidirectional(*per_direction, merge_mode="concat"))
        else:
            layers.append(per_direction[0])
    if len(layers) == 1:
        return layers[0]
    return RNNLayers(layers, return_state=return_state)


def _other_module(module: TorchOther, kind: str | None, where: str):
    from jaxlstm._src.models.layers import BuildContext, Dense, Embedding
    from jaxlstm._src.modules.nnx import DropoutStreams

    label = f"{where}: module {module.name!r}"
    if kind is None:
        if module.bias is None:
            raise UnsupportedOptionError(
                f"{label} holds only a 2-D weight {tuple(module.weight.shape)}: an nn.Linear "
                "without bias or an nn.Embedding, which the arrays cannot tell apart; pass "
                'kind="linear" or kind="embedding".'
            )
        kind = "linear"
    if kind not in ("linear", "embedding"):
        raise UnsupportedOptionError(f'kind={kind!r}; expected "linear" or "embedding".')
    ctx = BuildContext(module.name, kind, "3", where, DropoutStreams())
    if kind == "embedding":
        if module.bias is not None:
            raise UnsupportedOptionError(
                f"{label} has a bias {tuple(module.bias.shape)}: an nn.Linear, not an "
                'nn.Embedding; pass kind="linear" (or leave kind out).'
            )
        return Embedding({}, [module.weight], ctx)
    if module.bias is not None and module.bias.shape != module.weight.shape[:1]:
        raise KerasFileError(
            f"{label}: weight {tuple(module.weight.shape)} and bias "
            f"{tuple(module.bias.shape)}; an nn.Linear's bias is (out_features,)."
        )
    weights = [np.ascontiguousarray(module.weight.T)]
    if module.bias is not None:
        weights.append(module.bias)
    return Dense({"use_bias": module.bias is not None}, weights, ctx)


# ---------------------------------------------------------------------------------------------
# jaxlstm -> PyTorch


def _activation_name(value) -> str | None:
    """The name of a module's activation when it is one of jaxlstm's by name or function."""
    if isinstance(value, str):
        return value.lower()
    fn = get_activation(value)
    for name, own in ACTIVATIONS.items():
        if fn is own:
            return name
    return None


def _family_of(module) -> str:
    from jaxlstm._src.modules.nnx import LSTM
    from jaxlstm._src.modules.nnx_proj import ProjLSTM
    from jaxlstm._src.modules.nnx_rnn import GRU, SimpleRNN

    classes = ((LSTM, "LSTM"), (ProjLSTM, "LSTM"), (GRU, "GRU"), (SimpleRNN, "SimpleRNN"))
    for cls, family in classes:
        if isinstance(module, cls):
            return family
    raise UnsupportedOptionError(
        f"a {type(module).__name__} has no PyTorch equivalent here; expected a jaxlstm LSTM, "
        "GRU, SimpleRNN, a Bidirectional of them, a StackedRNN of one family and size, or an "
        "RNNLayers of those."
    )


def _check_cell(module, family: str, where: str) -> str:
    """Refuse what ``nn.LSTM``/``GRU``/``RNN`` cannot compute; returns the nonlinearity."""
    act = _activation_name(module.activation)
    if family == "SimpleRNN":
        if act not in NONLINEARITIES:
            raise UnsupportedOptionError(
                f"{where}: a SimpleRNN with activation={module.activation!r}; nn.RNN computes "
                "only tanh or relu, so it has no PyTorch equivalent."
            )
        return act
    rec = _activation_name(module.recurrent_activation)
    if act != "tanh" or rec != "sigmoid":
        raise UnsupportedOptionError(
            f"{where}: a {family} with activation={module.activation!r}, recurrent_activation="
            f"{module.recurrent_activation!r}; nn.{family} computes only tanh and sigmoid "
            "(hard_sigmoid, relu, ... have no PyTorch equivalent), so it is refused rather "
            "than written with other numbers."
        )
    if family == "GRU" and not module.reset_after:
        raise UnsupportedOptionError(
            f"{where}: a GRU with reset_after=False applies the reset gate before the "
            "recurrent matmul, (r * h) @ U_h; nn.GRU applies it after (r * (h @ U_h + b_hn), "
            "Keras's reset_after=True), so it has no PyTorch equivalent."
        )
    return "tanh"


@dataclass(frozen=True)
class TorchConfig:
    """The PyTorch module a written state dict belongs to: build it as
    ``getattr(torch.nn, mode)(**config.kwargs())`` and ``load_state_dict(sd, strict=True)``."""

    mode: str
    input_size: int
    hidden_size: int
    num_layers: int = 1
    bias: bool = True
    bidirectional: bool = False
    batch_first: bool = False
    nonlinearity: str | None = None
    proj_size: int = 0

    def kwargs(self) -> dict:
        out = dict(
            input_size=self.input_size,
            hidden_size=self.hidden_size,
            num_layers=self.num_layers,
            bias=self.bias,
            bidirectional=self.bidirectional,
            batch_first=self.batch_first,
        )
        if self.nonlinearity is not None:
            out["nonlinearity"] = self.nonlinearity
        if self.proj_size:
            out["proj_size"] = self.proj_size
        return out


def _directions_per_layer(module) -> list[list]:
    """The cell modules of ``module`` as layers, each a list of one (forward) or two
    (forward, backward) modules."""
    from jaxlstm._src.modules.nnx import Bidirectional
    from jaxlstm._src.modules.nnx_layers import RNNLayers
    from jaxlstm._src.modules.nnx_rnn import StackedRNN

    if isinstance(module, RNNLayers):
        return [d for layer in module.layers for d in _directions_per_layer(layer)]
    if isinstance(module, StackedRNN):
        if module.go_backwards:
            raise UnsupportedOptionError(
                "a StackedRNN with go_backwards=True alone: PyTorch runs reverse directions "
                "only inside bidirectional=True; no nn.LSTM/GRU/RNN equivalent."
            )
        return [[cell] for cell in module.cells]
    if isinstance(module, Bidirectional):
        if module.merge_mode != "concat":
            raise UnsupportedOptionError(
                f"a Bidirectional with merge_mode={module.merge_mode!r}; PyTorch's "
                'bidirectional=True concatenates the directions (merge_mode="concat") only.'
            )
        if isinstance(module.forward, StackedRNN):
            raise UnsupportedOptionError(
                "a Bidirectional of stacked cells runs each direction's cells in turn at every "
                "step; PyTorch's bidirectional stacks concatenate both directions between "
                "layers, so it has no nn.LSTM/GRU/RNN equivalent."
            )
        _family_of(module.forward), _family_of(module.backward)
        return [[module.forward, module.backward]]
    _family_of(module)
    if module.go_backwards:
        raise UnsupportedOptionError(
            f"a {type(module).__name__} with go_backwards=True alone: PyTorch runs reverse "
            "directions only inside bidirectional=True; no nn.LSTM/GRU/RNN equivalent."
        )
    return [[module]]


def _time_major(module) -> bool:
    if hasattr(module, "layers"):  # RNNLayers
        return _time_major(module.layers[0])
    if hasattr(module, "forward"):  # Bidirectional
        return bool(module.forward.time_major)
    return bool(module.time_major)


def torch_state_dict(module, prefix: str = "") -> tuple[dict[str, np.ndarray], TorchConfig]:
    """A jaxlstm recurrent module's weights as PyTorch's state dict, and the
    :class:`TorchConfig` of the ``nn.LSTM``/``nn.GRU``/``nn.RNN`` that loads it with
    ``strict=True`` and computes the same numbers.

    ``module`` is a :class:`jaxlstm.LSTM`, :class:`jaxlstm.GRU` (``reset_after=True``) or
    :class:`jaxlstm.SimpleRNN` (tanh or relu), a :class:`jaxlstm.Bidirectional` of two of them
    (``merge_mode="concat"``), a :class:`jaxlstm.StackedRNN` of cells of one family and size
    (per-step stacking is PyTorch's ``num_layers`` for forward-only layers), or an
    :class:`jaxlstm.RNNLayers` of those (e.g. from :func:`load_torch` or ``load_keras_layer``).
    Keys get ``prefix`` (``"lstm."``). Everything that would compute other numbers in PyTorch
    is refused with :class:`UnsupportedOptionError` saying why (hard_sigmoid or other
    activations, a GRU with ``reset_after=False``, a lone backward layer, other merge modes,
    layers of different families or sizes).
    """
    layers = _directions_per_layer(module)
    first = layers[0][0]
    family = _family_of(first)
    hidden, use_bias = first.units, first.bias is not None
    proj_size = getattr(first, "proj_size", 0)
    bidirectional = len(layers[0]) == 2
    nonlinearity = None
    state: dict[str, np.ndarray] = {}
    for k, directions in enumerate(layers):
        if len(directions) != len(layers[0]):
            raise UnsupportedOptionError(
                f"layer {k} has {len(directions)} direction(s) but layer 0 has "
                f"{len(layers[0])}; a PyTorch module's layers all have the same."
            )
        for d, cell in enumerate(directions):
            where = f"layer {k}{' (backward)' if d else ''}"
            if _family_of(cell) != family:
                raise UnsupportedOptionError(
                    f"{where} is a {_family_of(cell)} but layer 0 is a {family}; a PyTorch "
                    "module's layers are all of one class."
                )
            proj = getattr(cell, "proj_size", 0)
            if cell.units != hidden or (cell.bias is not None) != use_bias or proj != proj_size:
                raise UnsupportedOptionError(
                    f"{where} has units={cell.units}, use_bias={cell.bias is not None}, "
                    f"proj_size={proj}; layer 0 has units={hidden}, use_bias={use_bias}, "
                    f"proj_size={proj_size}; a PyTorch module's layers share hidden_size, bias "
                    "and proj_size."
                )
            act = _check_cell(cell, family, where)
            if family == "SimpleRNN":
                if nonlinearity not in (None, act):
                    raise UnsupportedOptionError(
                        f"{where} has activation {act} but layer 0 {nonlinearity}; nn.RNN "
                        "takes one nonlinearity for all layers."
                    )
                nonlinearity = act
            suffix = f"_l{k}{'_reverse' if d else ''}"
            for key, array in to_torch(family, cell.params).items():
                state[f"{prefix}{key}{suffix}"] = array.astype(np.float32)
    config = TorchConfig(
        TORCH_CLASSES[family],
        first.in_features,
        hidden,
        num_layers=len(layers),
        bias=use_bias,
        bidirectional=bidirectional,
        batch_first=not _time_major(module),
        nonlinearity=nonlinearity,
        proj_size=proj_size,
    )
    return state, config


def save_torch(module, path: str | os.PathLike, prefix: str = "") -> TorchConfig:
    """Write :func:`torch_state_dict` ``(module, prefix)`` as a ``.safetensors`` file
    (``safetensors.torch.load_file`` then ``load_state_dict(strict=True)`` in PyTorch); returns
    the :class:`TorchConfig` of the PyTorch module that loads it."""
    from jaxlstm._src.readers.torch_files import _import

    path = os.fspath(path)
    if not path.lower().endswith(".safetensors"):
        raise UnsupportedOptionError(
            f"save_torch writes .safetensors files; received {path!r}. (For a .pt file, load "
            "the .safetensors in PyTorch and torch.save its state dict.)"
        )
    state, config = torch_state_dict(module, prefix)
    _import("safetensors", "torch")
    from safetensors.numpy import save_file

    save_file(state, path, metadata={"jaxlstm_torch_module": repr(config)})
    return config


# ---------------------------------------------------------------------------------------------
# inspect


def describe_torch_file(source, *, batch_first: bool = False, nonlinearity=None) -> str:
    """A readable report on a PyTorch state dict / ``.safetensors`` / ``.pt`` file: each
    recurrent module's class, sizes (from the arrays), the options assumed where the arrays
    say nothing (``batch_first``, ``nonlinearity``, marked ``(assumed: ...)``), and each gate
    block's rows in the file next to its jaxlstm columns; then the other modules."""
    state, where = read_state_dict(source)
    found = find_modules(state, where)
    out = [where, "  format: PyTorch state dict"]
    recurrent = [m for m in found.values() if isinstance(m, TorchRecurrent)]
    if not recurrent:
        out.append("  no recurrent modules (nn.LSTM, nn.GRU, nn.RNN)")
    for m in recurrent:
        target = "ProjLSTM" if m.proj_size else m.family
        out.append(f"\nmodule {m.name!r}: nn.{m.torch_class} -> jaxlstm.{target}")
        out.append(
            f"  input_size={m.input_size}, hidden_size={m.hidden_size}, num_layers="
            f"{m.num_layers}, bidirectional={m.bidirectional}, bias={m.bias} (from the arrays)"
        )
        out.append(
            f"  batch_first={batch_first} (assumed: PyTorch's default; not in the state dict; "
            "load_torch(..., batch_first=True) for (B, T, F) inputs)"
        )
        if m.family == "SimpleRNN":
            text = nonlinearity or "tanh (assumed: PyTorch's default; not in the state dict)"
            out.append(f"  nonlinearity={text}")
        if m.proj_size:
            out.append(
                f"  proj_size={m.proj_size} (from the arrays: weight_hr_l* ({m.proj_size}, "
                f"{m.hidden_size}), projection = weight_hr^T)"
            )
        elif m.family == "LSTM":
            out.append("  proj_size=0 (from the arrays: no weight_hr)")
        g, h = GATES_PER_FAMILY[m.family], m.hidden_size
        out.append(
            f"  weight_ih_l* ({g}*{h}, in) / weight_hh_l* ({g}*{h}, {m.proj_size or h}): rows "
            "in PyTorch's order -> jaxlstm kernel/recurrent_kernel columns (transposed):"
        )
        for name, rows, cols in gate_slices(TORCH_GATES[m.family], h):
            out.append(f"    {name}: rows {rows:<12} -> {cols}")
        if m.bias:
            target = (
                "bias (2, 3u): row 0 bias_ih, row 1 bias_hh (reset_after=True)"
                if m.family == "GRU"
                else "bias = bias_ih + bias_hh"
            )
            out.append(f"  bias_ih_l*, bias_hh_l*: same row order -> {target}")
    others = [m for m in found.values() if isinstance(m, TorchOther)]
    if others:
        out.append(
            "\nother modules: "
            + ", ".join(
                f"{m.name!r} weight {tuple(m.weight.shape)}"
                + (f" bias {tuple(m.bias.shape)} (nn.Linear)" if m.bias is not None else "")
                for m in others
            )
        )
    return "\n".join(out)
