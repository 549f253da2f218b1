"""Fuzzing the readers and loaders (issue #6): valid fixture files, mutated at the byte level
(bit flips, truncation, overwritten ranges), in their JSON configs (values replaced by arbitrary
JSON, keys dropped, class names swapped), in their HDF5 attributes (layer and weight name lists,
versions) and datasets (dtypes, shapes, groups for datasets, huge declared shapes, aliases), must
either load or raise a documented error: a :class:`jaxlstm.JaxLSTMError`. Any other exception is
a reader bug.

The default run is derandomized: the same 1000 cases every time, about half a minute on two cores.
``pytest -m slow tests/test_fuzz.py`` runs 24,000 random ones. A case that hangs inside libhdf5
(which Python cannot interrupt) ends the run with a traceback after two minutes; the file is left
in the test's temporary folder as ``case.*``.
"""

from __future__ import annotations

import faulthandler
import io
import json
import shutil
import warnings
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from helpers import CallCount
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jaxlstm
from jaxlstm import JaxLSTMError

FIX = Path(__file__).parent / "fixtures"
H5_SEEDS = {  # name -> bytes: Keras 1, 2 (full, weights only, nested, CuDNN, wrappers), models
    p: (FIX / p).read_bytes()
    for p in (
        "keras2/lstm_seq.h5",
        "keras2/bidi_concat.h5",
        "keras2/cudnn.h5",
        "keras2/time_distributed.h5",
        "keras2/nested.h5",
        "keras2/weights_only.h5",
        "keras2/lstm_no_bias.h5",
        "keras1/k1_lstm.h5",
        "keras1/k1_bidi.h5",
        "keras2_models/forecaster.h5",
        "keras2_models/classifier_left_pad.h5",
        "keras2_models/seq2seq.h5",
        "keras2_models/masking_layers.h5",
    )
}
ARCHIVE = (Path(jaxlstm.__file__).parent / "data" / "keras3_bidirectional.keras").read_bytes()
with zipfile.ZipFile(io.BytesIO(ARCHIVE)) as _z:
    MEMBERS = {n: _z.read(n) for n in _z.namelist()}
V3_WEIGHTS = MEMBERS["model.weights.h5"]  # also a Keras 3 .weights.h5 file on its own

CASES = {"n": 0}
# Work, not seconds (a busy machine moves no call count): a runaway loop on a damaged file
# passes this in a fraction of a second; the costliest cases (a whole model built twice, its
# first-use set-up included) stay well under it. HANG_S only ends a run stuck in C.
CALL_LIMIT = 20_000_000
HANG_S = 300
DEFAULT = settings(
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
SLOW = settings(DEFAULT, derandomize=False)


def fuzz(cases, n: int, workdir: Path, slow: bool = False) -> None:
    """Run ``check`` on ``n`` files drawn by ``cases(draw) -> (bytes, suffix)``."""

    @settings(SLOW if slow else DEFAULT, max_examples=n)
    @given(st.data())
    def run(data):
        check(*cases(data.draw), workdir)

    run()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


def check(data: bytes, suffix: str, workdir: Path) -> None:
    """Every public entry point on ``data``: loads, or raises a JaxLSTMError."""
    CASES["n"] += 1
    path = workdir / f"case{suffix}"
    path.write_bytes(data)
    # A hang inside libhdf5 cannot be interrupted: end the run with a traceback instead of
    # waiting forever (the case is left in ``workdir`` to reproduce it).
    faulthandler.dump_traceback_later(HANG_S, exit=True)
    try:
        with CallCount() as work:
            _load_everything(path)
    finally:
        faulthandler.cancel_dump_traceback_later()
    CASES["most_calls"] = max(CASES.get("most_calls", 0), work.calls)
    assert work.calls < CALL_LIMIT, f"one case made {work.calls} calls"


def _load_everything(path: Path) -> None:
    """read_keras_file, then load_keras on full models and load_keras_layer on LSTM layers
    (on one case in four when load_keras already built them: it is the costly part)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unknown options, NaN weights: warnings are fine
        try:
            kf = jaxlstm.read_keras_file(path)
        except JaxLSTMError:
            return
        names = sorted(kf.layers)[:2]
        if kf.config is not None:
            try:
                jaxlstm.load_keras(path)
            except JaxLSTMError:
                pass
            names = names[:1] if CASES["n"] % 4 == 0 else []
        for name in names:
            try:
                jaxlstm.load_keras_layer(path, name)
            except JaxLSTMError:
                pass


# --- byte-level mutations ------------------------------------------------------------------


@st.composite
def byte_mutation(draw, data: bytes) -> bytes:
    out = bytearray(data)
    n = len(out)
    kind = draw(st.sampled_from(["flip", "flip", "truncate", "overwrite", "splice"]))
    if kind == "flip":
        for _ in range(draw(st.integers(1, 16))):
            out[draw(st.integers(0, n - 1))] ^= 1 << draw(st.integers(0, 7))
    elif kind == "truncate":
        del out[draw(st.integers(0, n - 1)) :]
    elif kind == "overwrite":
        at = draw(st.integers(0, n - 1))
        fill = draw(
            st.one_of(
                st.binary(min_size=1, max_size=64),
                st.sampled_from([b"\x00" * 8, b"\xff" * 8, b"\x7f\xff\xff\xff" * 2]),
            )
        )
        out[at : at + len(fill)] = fill[: n - at]
    else:  # copy a range elsewhere
        a, b = sorted((draw(st.integers(0, n - 1)), draw(st.integers(0, n - 1))))
        at = draw(st.integers(0, n - 1))
        chunk = out[a : min(b, a + 4096)]
        out[at : at + len(chunk)] = chunk[: n - at]
    return bytes(out)


def _archive(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def _bytes_cases(draw):
    target = draw(st.sampled_from([*H5_SEEDS, "archive", "archive member", "weights.h5"]))
    if target == "archive":  # the zip itself
        return draw(byte_mutation(ARCHIVE)), ".keras"
    if target == "archive member":  # a member's bytes, in a well-formed zip
        member = draw(st.sampled_from(sorted(MEMBERS)))
        mutated = draw(byte_mutation(MEMBERS[member]))
        return _archive({**MEMBERS, member: mutated}), ".keras"
    if target == "weights.h5":
        return draw(byte_mutation(V3_WEIGHTS)), ".weights.h5"
    return draw(byte_mutation(H5_SEEDS[target])), ".h5"


def test_fuzz_bytes(workdir):
    fuzz(_bytes_cases, 400, workdir, slow=False)


@pytest.mark.slow
def test_fuzz_bytes_slow(workdir):
    fuzz(_bytes_cases, 10_000, workdir, slow=True)


# --- JSON config mutations -----------------------------------------------------------------

CLASS_NAMES = [
    "LSTM", "CuDNNLSTM", "RNN", "LSTMCell", "Bidirectional", "TimeDistributed", "Sequential",
    "Functional", "Model", "InputLayer", "Dense", "Embedding", "Masking", "Dropout", "Lambda",
    "GRU", "Reshape", "Permute", "RepeatVector", "Concatenate", "Add", "Dot", "Conv1D",
    "MaxPooling1D", "BatchNormalization", "LayerNormalization", "NotEqual", "Cast", "Any",
    "ZeroPadding1D", "Cropping1D", "system", "",
]  # fmt: skip
KEYS = [
    "class_name", "config", "name", "layers", "layer", "backward_layer", "cell", "units",
    "inbound_nodes", "input_layers", "output_layers", "module", "registered_name", "activation",
    "recurrent_activation", "return_sequences", "go_backwards", "use_bias", "merge_mode",
    "keras_history", "args", "kwargs", "n", "target_shape", "dims", "axes", "axis", "padding",
    "cropping", "rate", "dtype", "mask_zero", "stateful", "time_major", "dropout",
]  # fmt: skip
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63),
    st.sampled_from([0, 1, -1, 2**31, 10**30]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(CLASS_NAMES),
    st.sampled_from(KEYS),
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=6)), inner, max_size=4),
    ),
    max_leaves=12,
)


def _paths(node, prefix=()):
    """Every (container path, key) in a JSON tree."""
    out = []
    if isinstance(node, dict):
        for k, v in node.items():
            out.append((*prefix, k))
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out.append((*prefix, i))
            out += _paths(v, (*prefix, i))
    return out


def mutate_json(draw, config):
    config = json.loads(json.dumps(config))
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(config)
        if not paths:
            return draw(JSON)
        path = draw(st.sampled_from(paths))
        parent = config
        for key in path[:-1]:
            parent = parent[key]
        key = path[-1]
        op = draw(st.sampled_from(["replace", "replace", "class", "delete", "duplicate"]))
        if op == "replace":
            parent[key] = draw(JSON)
        elif op == "class" and isinstance(parent, dict) and "class_name" in parent:
            parent["class_name"] = draw(st.sampled_from(CLASS_NAMES))
        elif op == "delete":
            del parent[key]
        elif op == "duplicate" and isinstance(parent, list):
            parent.insert(draw(st.integers(0, len(parent))), json.loads(json.dumps(parent[key])))
        else:
            parent[key] = draw(SCALARS)
    return config


def _h5_edit(data: bytes, edit) -> bytes:
    buf = io.BytesIO(data)
    with h5py.File(buf, "r+") as f:
        edit(f)
    return buf.getvalue()


H5_WITH_CONFIG = [n for n, d in H5_SEEDS.items() if "weights_only" not in n]


def _json_cases(draw):
    if draw(st.booleans()):
        config = mutate_json(draw, json.loads(MEMBERS["config.json"]))
        raw = draw(st.sampled_from(["json", "json", "text"]))
        text = (
            json.dumps(config) if raw == "json" else json.dumps(config)[: draw(st.integers(0, 200))]
        )
        return _archive({**MEMBERS, "config.json": text.encode()}), ".keras"
    seed = draw(st.sampled_from(H5_WITH_CONFIG))

    def edit(f):
        config = mutate_json(draw, json.loads(f.attrs["model_config"]))
        f.attrs["model_config"] = json.dumps(config)

    return _h5_edit(H5_SEEDS[seed], edit), ".h5"


def test_fuzz_configs(workdir):
    fuzz(_json_cases, 300, workdir, slow=False)


@pytest.mark.slow
def test_fuzz_configs_slow(workdir):
    fuzz(_json_cases, 7000, workdir, slow=True)


# --- HDF5 attribute and dataset mutations --------------------------------------------------

NAME_VALUES = st.one_of(
    st.text(max_size=20),
    st.binary(max_size=20),
    st.sampled_from(["", "/", ".", "..", "a/b/c", "lstm_seq", "model_weights", "vars/0"]),
)


def _attr_value(draw):
    kind = draw(st.sampled_from(["names", "names", "int", "float", "bytes", "2d", "empty"]))
    if kind == "names":
        return np.array([v if isinstance(v, bytes) else v.encode("utf8", "replace")
                         for v in draw(st.lists(NAME_VALUES, max_size=6))] or [b""])  # fmt: skip
    if kind == "int":
        return np.array(draw(st.lists(st.integers(-(2**31), 2**31 - 1), max_size=4)), "i4")
    if kind == "float":
        return draw(st.floats())
    if kind == "bytes":
        return np.void(draw(st.binary(min_size=1, max_size=16)))
    if kind == "2d":
        return np.array([[b"a", b"b"], [b"c", b"d"]])
    return np.array([], dtype="S1")


def _objects(f):
    found = []
    f.visititems(lambda name, obj: found.append((name, obj)))
    return found


def mutate_h5(draw, f):
    """One structural mutation of an open HDF5 file."""
    objects = _objects(f)
    groups = [f, *(o for _, o in objects if isinstance(o, h5py.Group))]
    datasets = [(n, o) for n, o in objects if isinstance(o, h5py.Dataset)]
    op = draw(st.sampled_from(["attr", "attr", "dataset", "dataset", "dataset", "link", "delete"]))
    if op == "attr" or not datasets:
        group = draw(st.sampled_from(groups))
        keys = [*group.attrs.keys(), "layer_names", "weight_names", "keras_version"]
        key = draw(st.sampled_from(keys))
        if draw(st.integers(0, 4)) == 0 and key in group.attrs:
            del group.attrs[key]
        else:
            group.attrs[key] = _attr_value(draw)
        return
    name, ds = draw(st.sampled_from(datasets))
    parent = ds.parent
    leaf = name.rsplit("/", 1)[-1]
    if op == "delete":
        del parent[leaf]
        return
    if op == "link":  # alias another dataset, or a group, under this name
        target = draw(st.sampled_from([o for _, o in datasets] + groups))
        del parent[leaf]
        parent[leaf] = target
        return
    shape = ds.shape or ()
    if np.prod(shape, dtype=float) > 1e5:  # an earlier mutation's huge declared shape
        shape = (3, 20)
    kind = draw(
        st.sampled_from(["dtype", "dtype", "shape", "huge", "group", "scalar", "empty", "nan"])
    )
    del parent[leaf]
    if kind == "dtype":
        dtype = draw(st.sampled_from(["i4", "u1", "?", "f2", "f8", "c8", "S4", "i8"]))
        parent.create_dataset(
            leaf, data=np.ones(shape, dtype) if dtype != "S4" else np.full(shape, b"ab")
        )
    elif kind == "string":
        parent.create_dataset(leaf, data="text", dtype=h5py.string_dtype())
    elif kind == "shape":
        new = tuple(draw(st.lists(st.integers(0, 9), min_size=0, max_size=4)))
        parent.create_dataset(leaf, data=np.ones(new, "f4"))
    elif kind == "huge":
        dims = draw(st.lists(st.sampled_from([1, 5, 20, 1 << 20, 1 << 31]), min_size=1, max_size=3))
        chunk = tuple(min(d, 16) for d in dims)
        parent.create_dataset(leaf, shape=tuple(dims), dtype="f4", chunks=chunk)
    elif kind == "group":
        parent.create_group(leaf)
    elif kind == "scalar":
        parent.create_dataset(leaf, data=np.float32(1.0))
    elif kind == "empty":
        parent.create_dataset(leaf, data=h5py.Empty("f4"))
    else:
        parent.create_dataset(leaf, data=np.full(shape, np.nan, "f4"))


def _h5_cases(draw):
    target = draw(st.sampled_from([*H5_SEEDS, "archive", "weights.h5"]))
    edit = lambda f: [mutate_h5(draw, f) for _ in range(draw(st.integers(1, 3)))]
    if target == "archive":
        weights = _h5_edit(V3_WEIGHTS, edit)
        return _archive({**MEMBERS, "model.weights.h5": weights}), ".keras"
    if target == "weights.h5":
        return _h5_edit(V3_WEIGHTS, edit), ".weights.h5"
    return _h5_edit(H5_SEEDS[target], edit), ".h5"


def test_fuzz_hdf5_structure(workdir):
    fuzz(_h5_cases, 300, workdir, slow=False)


@pytest.mark.slow
def test_fuzz_hdf5_structure_slow(workdir):
    fuzz(_h5_cases, 7000, workdir, slow=True)


# --- every option of a layer config, one at a time ------------------------------------------

SITE_VALUES = ([], {"a": 1}, "x", None, 1.5)  # unhashable, wrong kinds, missing, a float
SITE_FIXTURES = (  # where this found raw TypeError/KeyError/ValueError (now our errors)
    "keras2/stacked_cells.h5",
    "keras2/conv_lstm2d.h5",
    "keras2_models/conv_pool_2d.h5",
    "keras2_models/activation_layers.h5",
    "keras2_models/multi_head_attention.h5",
)


def _layer_option_sites(config):
    """Paths to every value inside each layer entry's ``config`` (options, nested cells,
    activations), not the graph wiring (inbound nodes: the byte and config fuzzers')."""

    def walk(value, path):
        yield path
        if isinstance(value, dict | list):
            for key, item in value.items() if isinstance(value, dict) else enumerate(value):
                yield from walk(item, (*path, key))

    for i, entry in enumerate(config["config"]["layers"]):
        for key, item in entry.get("config", {}).items():
            yield from walk(item, ("config", "layers", i, "config", key))


@pytest.mark.slow
@pytest.mark.parametrize("fixture", SITE_FIXTURES)
def test_every_layer_option_replaced_loads_or_raises_our_error(fixture, tmp_path):
    """Deterministic and exhaustive where the random fuzzers are not: each value in each layer
    config of a fixture replaced by each of SITE_VALUES, through every entry point."""
    import copy

    src = FIX / fixture
    with h5py.File(src) as f:
        config = json.loads(f.attrs["model_config"])
    sites = list(_layer_option_sites(config))
    assert len(sites) > 20
    for site in sites:
        for value in SITE_VALUES:
            mutated = copy.deepcopy(config)
            target = mutated
            for key in site[:-1]:
                target = target[key]
            target[site[-1]] = value
            path = tmp_path / src.name
            shutil.copy(src, path)
            with h5py.File(path, "r+") as f:
                f.attrs["model_config"] = json.dumps(mutated)
            check(path.read_bytes(), ".h5", tmp_path)


def test_fuzz_ran_the_cases():
    """(Runs last in this module.) The fuzz tests above really tried their cases."""
    if CASES["n"]:
        assert CASES["n"] >= 1000, CASES
