"""TensorFlow SavedModel directories and TF checkpoints written by tf-keras 2.21
(``tests/fixtures/make_savedmodel_fixtures.py``): whole models against the outputs
``tf_keras.models.load_model`` computed, the checkpoint paths, ``inspect`` and ``convert``,
refusals, and damaged or crafted directories."""

from __future__ import annotations

import json
import os
import shutil
import struct
from pathlib import Path

import google_crc32c
import jax
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jaxlstm
from jaxlstm import KerasFileError, UnsupportedLayerError
from jaxlstm._src.cli import main
from jaxlstm._src.errors import ChecksumError, UnsafeFileError
from jaxlstm._src.readers import limits, read_keras_file
from jaxlstm._src.readers.savedmodel import OBJECT_GRAPH_KEY, masked_crc32c
from jaxlstm._src.readers.tfproto import messages

FIX = Path(__file__).parent / "fixtures" / "savedmodel"
SAVED = [
    "conv_lstm",
    "stateful",
    "lstm_seq",
    "gru_both",
    "simple_rnn_mask",
    "bidi_td",
    "stacked",
    "encoder_decoder",
    "nested",
    "tf24_lstm",
]
CHECKPOINTS = ["bidi_td_ckpt", "encoder_decoder_ckpt", "lstm_seq_ckpt"]
TOL = 1e-5


def recorded(name):
    data = np.load(FIX / f"{name}.npz")
    xs = [data[f"x{i}"] for i in range(sum(k.startswith("x") for k in data.files))]
    outs = [data[f"out{i}"] for i in range(sum(k.startswith("out") for k in data.files))]
    return xs, outs


def max_error(model, xs, want, jit: bool) -> float:
    call = jaxlstm.predictor(model) if jit else model
    with jax.default_matmul_precision("highest"):
        got = call(*xs)
    got = got if isinstance(got, tuple) else (got,)
    assert len(got) == len(want)
    return max(float(np.max(np.abs(np.asarray(g) - w))) for g, w in zip(got, want, strict=True))


@pytest.mark.parametrize("name", SAVED)
def test_savedmodel_matches_tf_keras(name):
    xs, want = recorded(name)
    model = jaxlstm.load_keras(FIX / name)
    for jit in (False, True):
        err = max_error(model, xs, want, jit)
        print(f"{name} jit={jit}: max |JAX - tf-keras| = {err:.3g}")
        assert err < TOL, (name, jit, err)


def test_a_layer_and_a_cut_from_a_savedmodel():
    """load_keras_layer names layers in nested models; load_keras(outputs=...) reads only
    what the cut keeps, through the same reader."""
    gru = jaxlstm.load_keras_layer(FIX / "nested", "inner/gru")
    assert isinstance(gru, jaxlstm.GRU)
    xs, want = recorded("encoder_decoder")
    model = jaxlstm.load_keras(FIX / "encoder_decoder", outputs=["head"])
    with jax.default_matmul_precision("highest"):
        got = np.asarray(model(*xs))
    assert float(np.max(np.abs(got - want[0]))) < TOL


@pytest.mark.parametrize("name", CHECKPOINTS)
def test_checkpoint_into_its_to_json_architecture(name):
    xs, want = recorded(name)
    folder = FIX / name
    for weights in (folder, folder / "ckpt", folder / "ckpt.index"):
        model = jaxlstm.load_keras(folder / "model.json", weights=weights)
        assert max_error(model, xs, want, jit=False) < TOL, weights
    assert max_error(model, xs, want, jit=True) < TOL


def test_checkpoint_into_a_model_file(tmp_path):
    """The architecture may come from a model file: here the .keras that convert wrote."""
    xs, want = recorded("encoder_decoder_ckpt")
    out = tmp_path / "arch.keras"
    jaxlstm.save_keras(jaxlstm.load_keras(FIX / "encoder_decoder"), out)
    model = jaxlstm.load_keras(out, weights=FIX / "encoder_decoder_ckpt" / "ckpt")
    assert max_error(model, xs, want, jit=False) < TOL


def test_checkpoint_alone_is_weights_only():
    folder = FIX / "encoder_decoder_ckpt"
    with pytest.raises(KerasFileError, match="has no model config, only weights"):
        jaxlstm.load_keras(folder)
    # the layer from the checkpoint's arrays equals the SavedModel's (same model, saved twice)
    x = recorded("encoder_decoder")[0][0]
    alone = jaxlstm.load_keras_layer(folder, "encoder", return_state=True)
    full = jaxlstm.load_keras_layer(FIX / "encoder_decoder", "encoder")
    for a, b in zip(alone(x), full(x), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    kf = read_keras_file(folder / "ckpt.index")
    assert sorted(kf.layers) == ["decoder", "encoder"]
    assert "records no Keras version" in kf.format
    bidi = read_keras_file(FIX / "bidi_td_ckpt").layers["bidirectional"]
    assert bidi.class_name == "Bidirectional" and bidi.forward.class_name == "LSTM"


def test_checkpoint_ignores_optimizer_slots():
    """lstm_seq was fitted with Adam: its checkpoint holds slots and an iteration count, none
    of which become layer arrays."""
    kf = read_keras_file(FIX / "lstm_seq")
    names = [n for arrays in kf.arrays.values() for n, _ in arrays]
    assert names and not [n for n in names if "Adam" in n or "iter" in n or "/m:" in n]
    for index in (FIX / "lstm_seq" / "variables" / "variables.index",
                  FIX / "lstm_seq_ckpt" / "ckpt.index"):  # fmt: skip
        assert any(b"optimizer" in k for k in _index_entries(index))  # there, and ignored
    kf = read_keras_file(FIX / "lstm_seq_ckpt")
    names = [n for arrays in kf.arrays.values() for n, _ in arrays]
    names += [n for r in kf.layers.values() for n, _ in r.weights]
    assert names and not [n for n in names if "Adam" in n or "iter" in n or "/m:" in n]


def test_inspect_a_savedmodel(capsys):
    assert main(["inspect", str(FIX / "encoder_decoder")]) == 0
    out = capsys.readouterr().out
    assert "TensorFlow SavedModel (keras_metadata.pb), keras_version: 2.21.0" in out
    assert "encoder     LSTM        (None, 3) (None, 3) (None, 3)" in out
    assert "encoder/lstm_cell/recurrent_kernel:0  (3, 12)  float32" in out
    assert main(["inspect", str(FIX / "tf24_lstm")]) == 0
    assert "saved_model.pb object graph, TF 2.0-2.4" in capsys.readouterr().out
    assert main(["inspect", str(FIX / "bidi_td_ckpt")]) == 0
    out = capsys.readouterr().out
    assert "class LSTM (inferred: Keras layout, bias 4u)" in out
    assert "merge_mode=concat (inferred: Keras default)" in out


@pytest.mark.parametrize("name", ["bidi_td", "encoder_decoder"])
@pytest.mark.parametrize("ext", [".keras", ".h5"])
def test_convert_reloads_in_keras3_with_the_same_numbers(name, ext, tmp_path):
    convert_and_reload(name, ext, tmp_path)


def convert_and_reload(name, ext, tmp_path):
    keras = pytest.importorskip("keras")
    xs, want = recorded(name)
    out = tmp_path / f"{name}{ext}"
    assert main(["convert", str(FIX / name), str(out)]) == 0
    got = keras.saving.load_model(out, compile=False).predict(
        xs if len(xs) > 1 else xs[0], verbose=0
    )
    got = got if isinstance(got, list | tuple) else [got]
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(np.asarray(g), w, atol=TOL, rtol=0)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(set(SAVED) - {"bidi_td", "encoder_decoder", "conv_lstm"}))
def test_convert_reloads_in_keras3_slow(name, tmp_path):
    convert_and_reload(name, ".keras", tmp_path)


def test_convert_keeps_the_writing_versions_hard_sigmoid(tmp_path, capsys):
    """tf.keras's ConvLSTM2D defaults to its hard_sigmoid, which Keras 3 computes otherwise:
    loaded as tf.keras computed it (above), refused by convert rather than changed."""
    assert main(["convert", str(FIX / "conv_lstm"), str(tmp_path / "c.keras")]) == 2
    assert "recurrent_activation='hard_sigmoid', which meant clip" in capsys.readouterr().err


# --- refusals -----------------------------------------------------------------------------------


def test_refuses_a_tf_module():
    with pytest.raises(KerasFileError, match=r"tf_module: not a Keras model: .*tf\.Module"):
        jaxlstm.load_keras(FIX / "tf_module")


def test_refuses_a_graph_only_savedmodel(tmp_path):
    """A TF 1.x / estimator export: a meta graph and no object graph at all."""
    folder = _copy("tf_module", tmp_path)
    sm = messages()["SavedModel"]()
    sm.meta_graphs.add()
    (folder / "saved_model.pb").write_bytes(sm.SerializeToString())
    with pytest.raises(KerasFileError, match=r"not a Keras model"):
        read_keras_file(folder)


def test_a_subclassed_model_loads_layer_by_layer():
    """No model_config: load_keras refuses; its LSTM loads from its own metadata config, with
    the numbers of the revived model's LSTM in tf-keras."""
    with pytest.raises(KerasFileError, match=r"subclassed model \(Sub: .*has no model config"):
        jaxlstm.load_keras(FIX / "subclassed")
    xs, want = recorded("subclassed")
    lstm = jaxlstm.load_keras_layer(FIX / "subclassed", "lstm")
    assert max_error(lstm, xs, want[:1], jit=False) < TOL
    kf = read_keras_file(FIX / "subclassed")
    assert kf.other_layers == [("dense", "Dense")]


def test_refuses_a_directory_that_is_neither(tmp_path):
    with pytest.raises(KerasFileError, match=r"neither saved_model\.pb .* nor a 'checkpoint'"):
        read_keras_file(tmp_path)


def test_refuses_sha256_on_a_directory():
    with pytest.raises(KerasFileError, match="sha256= pins one file"):
        read_keras_file(FIX / "lstm_seq", sha256="0" * 64)


def test_weights_must_be_a_tf_checkpoint(tmp_path):
    with pytest.raises(KerasFileError, match="weights= takes a TF-format checkpoint"):
        jaxlstm.load_keras(FIX / "encoder_decoder_ckpt" / "model.json", weights=tmp_path / "w.h5")


def _copy(name, tmp_path) -> Path:
    return Path(shutil.copytree(FIX / name, tmp_path / name))


def _edit_root_metadata(folder: Path, edit) -> None:
    meta = messages()["SavedMetadata"]()
    meta.ParseFromString((folder / "keras_metadata.pb").read_bytes())
    for node in meta.nodes:
        if node.node_path == "root":
            value = json.loads(node.metadata)
            edit(value)
            node.metadata = json.dumps(value)
    (folder / "keras_metadata.pb").write_bytes(meta.SerializeToString())


def test_refuses_an_unknown_layer_class(tmp_path):
    folder = _copy("gru_both", tmp_path)

    def rename(root):
        layers = root["model_config"]["config"]["layers"]
        layers[-1]["class_name"] = "MyDense"

    _edit_root_metadata(folder, rename)
    with pytest.raises(UnsupportedLayerError, match="MyDense"):
        jaxlstm.load_keras(folder)


def test_refuses_metadata_that_disagrees_with_the_object_graph(tmp_path):
    folder = _copy("gru_both", tmp_path)

    def swap(root):
        layers = root["model_config"]["config"]["layers"]
        layers[1]["config"]["name"], layers[2]["config"]["name"] = "gru_1", "gru"

    _edit_root_metadata(folder, swap)
    with pytest.raises(KerasFileError, match=r"object of layer 'gru_1' is layer 'gru' in its own"):
        read_keras_file(folder)


# --- hostile directories -----------------------------------------------------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _block(entries) -> bytes:
    body = bytearray()
    restarts = []
    for key, value in entries:
        restarts.append(len(body))
        body += _varint(0) + _varint(len(key)) + _varint(len(value)) + key + value
    for r in restarts or [0]:
        body += struct.pack("<I", r)
    body += struct.pack("<I", len(restarts or [0]))
    return bytes(body)


def write_table(entries: dict[bytes, bytes]) -> bytes:
    """A LevelDB-format table as TensorFlow writes a bundle index: one data block, one index
    block, an empty metaindex, the footer."""
    out = bytearray()

    def put(block: bytes) -> tuple[int, int]:
        offset = len(out)
        out.extend(block + b"\x00")
        out.extend(struct.pack("<I", masked_crc32c(block + b"\x00")))
        return offset, len(block)

    data = put(_block(sorted(entries.items())))
    meta = put(_block([]))
    index = put(_block([(max(entries), _varint(data[0]) + _varint(data[1]))]))
    footer = _varint(meta[0]) + _varint(meta[1]) + _varint(index[0]) + _varint(index[1])
    out += footer.ljust(40, b"\x00") + struct.pack("<Q", 0xDB4775248B80FB57)
    return bytes(out)


def _index_entries(path: Path) -> dict[bytes, bytes]:
    from jaxlstm._src.readers.savedmodel import _Source, _table

    src = _Source(str(path.parent), str(path), [path.name])
    return _table(src.read(path.name), path.name, src)


def _rewrite_entry(folder: Path, key: bytes, **fields) -> None:
    index = folder / "variables" / "variables.index"
    entries = _index_entries(index)
    entry = messages()["BundleEntryProto"]()
    entry.ParseFromString(entries[key])
    for name, value in fields.items():
        if name == "dims":
            del entry.shape.dim[:]
            for d in value:
                entry.shape.dim.add(size=d)
        elif name == "slices":
            entry.slices.add(extent=[b""])
        else:
            setattr(entry, name, value)
    entries[key] = entry.SerializeToString()
    index.write_bytes(write_table(entries))


KERNEL = b"variables/0/.ATTRIBUTES/VARIABLE_VALUE"  # lstm_seq's first LSTM kernel (3, 16)


def test_the_table_writer_round_trips(tmp_path):
    """The test's own table writer gives an index the reader accepts, same numbers."""
    folder = _copy("lstm_seq", tmp_path)
    index = folder / "variables" / "variables.index"
    index.write_bytes(write_table(_index_entries(index)))
    xs, want = recorded("lstm_seq")
    assert max_error(jaxlstm.load_keras(folder), xs, want, jit=False) < TOL


@pytest.mark.parametrize(
    ("fields", "error", "match"),
    [
        ({"offset": 1 << 40}, KerasFileError, r"outside its \d+ bytes"),
        ({"size": 4}, KerasFileError, r"declares 4 bytes, but its dtype and shape take 192"),
        ({"crc32c": 1234}, ChecksumError, r"fails its CRC-32C check; .*damaged"),
        ({"dtype": 14}, KerasFileError, r"holds bfloat16 values; jaxlstm reads weights of"),
        ({"dtype": 7}, KerasFileError, r"holds string values"),
        ({"shard_id": 3}, KerasFileError, r"is in shard 3 of 1"),
        ({"slices": True}, KerasFileError, r"saved in slices \(a partitioned variable\)"),
        ({"dims": [1 << 20, 1 << 20]}, UnsafeFileError, r"over the 2 GiB limit for one array"),
        ({"dims": [3000, 3000]}, KerasFileError, r"declares 192 bytes, but .* take 36000000"),
        ({"dims": [-1, 16]}, KerasFileError, r"has shape \[-1, 16\]; expected a known shape"),
        ({"dims": [1] * 9}, KerasFileError, r"has 9 axes; too many for weights"),
    ],
)
def test_crafted_bundle_entries_are_refused(fields, error, match, tmp_path):
    folder = _copy("lstm_seq", tmp_path)
    _rewrite_entry(folder, KERNEL, **fields)
    with pytest.raises(error, match=match) as info:
        read_keras_file(folder)
    assert str(folder) in str(info.value)


def test_a_flipped_weight_byte_fails_the_tensor_crc(tmp_path):
    folder = _copy("lstm_seq", tmp_path)
    entry = messages()["BundleEntryProto"]()
    entry.ParseFromString(_index_entries(folder / "variables" / "variables.index")[KERNEL])
    shard = folder / "variables" / "variables.data-00000-of-00001"
    data = bytearray(shard.read_bytes())
    data[entry.offset + 5] ^= 0x10
    shard.write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match=r"tensor 'variables/0/.* fails its CRC-32C check"):
        read_keras_file(folder)


def test_a_flipped_index_byte_fails_the_block_crc(tmp_path):
    folder = _copy("lstm_seq", tmp_path)
    index = folder / "variables" / "variables.index"
    data = bytearray(index.read_bytes())
    data[20] ^= 0x01
    index.write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match=r"data block at 0 fails its CRC-32C check"):
        read_keras_file(folder)


@pytest.mark.parametrize("keep", [0, 10, 47, 300])
def test_a_truncated_index_is_refused(keep, tmp_path):
    folder = _copy("lstm_seq", tmp_path)
    index = folder / "variables" / "variables.index"
    index.write_bytes(index.read_bytes()[:keep])
    with pytest.raises(
        KerasFileError, match=r"variables\.index (is \d+ bytes, shorter|does not end)"
    ):
        read_keras_file(folder)


def test_a_truncated_shard_is_refused(tmp_path):
    folder = _copy("lstm_seq", tmp_path)
    shard = folder / "variables" / "variables.data-00000-of-00001"
    shard.write_bytes(shard.read_bytes()[:100])
    with pytest.raises(KerasFileError, match=r"outside its 100 bytes; the file is truncated"):
        read_keras_file(folder)


@pytest.mark.parametrize("size", [1 << 40, 1 << 62])
def test_an_oversized_index_block_is_refused(size, tmp_path):
    folder = _copy("lstm_seq", tmp_path)
    index = folder / "variables" / "variables.index"
    data = index.read_bytes()
    footer = _varint(0) + _varint(0) + _varint(0) + _varint(size)
    index.write_bytes(data[:-48] + footer.ljust(40, b"\x00") + data[-8:])
    with pytest.raises(UnsafeFileError, match=r"index block declares \d+ bytes at offset 0"):
        read_keras_file(folder)


def test_a_snappy_block_is_refused(tmp_path):
    folder = _copy("lstm_seq", tmp_path)
    index = folder / "variables" / "variables.index"
    data = bytearray(index.read_bytes())
    # the last block before the footer is the index block; make its type byte say snappy
    meta_end = len(data) - 48
    data[meta_end - 5] = 1
    body_start = _find_index_block(bytes(data))
    block = bytes(data[body_start : meta_end - 4])
    data[meta_end - 4 : meta_end] = struct.pack("<I", masked_crc32c(block))
    index.write_bytes(bytes(data))
    with pytest.raises(KerasFileError, match="snappy-compressed; jaxlstm reads uncompressed"):
        read_keras_file(folder)


def _find_index_block(data: bytes) -> int:
    pos, end = len(data) - 48, len(data) - 8
    values = []
    while len(values) < 3 and pos < end:
        n, shift = 0, 0
        while True:
            b = data[pos]
            pos += 1
            n |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        values.append(n)
    return values[2]


def test_a_symlink_out_of_the_directory_is_refused(tmp_path):
    folder = _copy("lstm_seq", tmp_path)
    outside = tmp_path / "elsewhere.bin"
    shard = folder / "variables" / "variables.data-00000-of-00001"
    shutil.move(shard, outside)
    os.symlink(outside, shard)
    with pytest.raises(UnsafeFileError, match=r"is a link leading out of the directory"):
        read_keras_file(folder)
    meta = folder / "keras_metadata.pb"
    meta.unlink()
    os.symlink("/etc/passwd", meta)
    with pytest.raises(UnsafeFileError, match=r"'keras_metadata\.pb' is a link leading out"):
        read_keras_file(folder)


def test_unknown_files_are_never_opened(tmp_path):
    folder = _copy("lstm_seq", tmp_path)
    (folder / "evil.py").write_text("raise SystemExit('executed')\n")
    os.symlink("/etc/passwd", folder / "assets_link")
    (folder / "variables" / "variables.data-00000-of-00001.tmp").write_bytes(b"\x00" * 10)
    xs, want = recorded("lstm_seq")
    assert max_error(jaxlstm.load_keras(folder), xs, want, jit=False) < TOL


def test_a_missing_shard_is_named(tmp_path):
    folder = _copy("lstm_seq", tmp_path)
    (folder / "variables" / "variables.data-00000-of-00001").unlink()
    with pytest.raises(KerasFileError, match=r"'variables/variables\.data-00000-of-00001' is "
                       "missing"):  # fmt: skip
        read_keras_file(folder)


def test_garbage_metadata_is_refused(tmp_path):
    folder = _copy("lstm_seq", tmp_path)
    (folder / "keras_metadata.pb").write_bytes(b"\xff" * 64)
    with pytest.raises(KerasFileError, match=r"keras_metadata\.pb is not a valid SavedMetadata"):
        read_keras_file(folder)


def test_an_object_graph_pointing_outside_is_refused(tmp_path):
    folder = _copy("lstm_seq", tmp_path)
    index = folder / "variables" / "variables.index"
    entries = _index_entries(index)
    graph = messages()["TrackableObjectGraph"]()
    # a graph whose root's layer-0 points at object 99 of 2
    root = graph.nodes.add()
    root.children.add(node_id=99, local_name="layer-0")
    graph.nodes.add()
    raw = graph.SerializeToString()
    length = _varint(len(raw))
    length_crc = struct.pack("<I", masked_crc32c(struct.pack("<I", len(raw))))
    payload = length + length_crc + raw
    shard = folder / "variables" / "variables.data-00000-of-00001"
    data = shard.read_bytes()
    shard.write_bytes(data + payload)
    entry = messages()["BundleEntryProto"]()
    entry.ParseFromString(entries[OBJECT_GRAPH_KEY])
    entry.offset, entry.size = len(data), len(payload)
    entry.crc32c = masked_crc32c(struct.pack("<I", len(raw)) + length_crc + raw)
    entries[OBJECT_GRAPH_KEY] = entry.SerializeToString()
    index.write_bytes(write_table(entries))
    with pytest.raises(KerasFileError, match=r"points at object 99, outside the checkpoint's 2"):
        read_keras_file(folder)


def test_a_checkpoint_file_naming_another_directory_is_refused(tmp_path):
    folder = _copy("encoder_decoder_ckpt", tmp_path)
    (folder / "checkpoint").write_text('model_checkpoint_path: "../../etc/ckpt"\n')
    with pytest.raises(
        KerasFileError, match=r"names prefix '\.\./\.\./etc/ckpt'; expected a plain"
    ):
        read_keras_file(folder)


def test_the_budget_bounds_what_is_read(tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "MIN_BUDGET_BYTES", 1000)
    monkeypatch.setattr(limits, "EXPANSION_RATIO", 0)
    with pytest.raises(UnsafeFileError, match=r"exceeds what a .* may hold"):
        read_keras_file(FIX / "lstm_seq")


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    target=st.sampled_from(
        [
            ("lstm_seq", "variables/variables.index"),
            ("lstm_seq", "keras_metadata.pb"),
            ("tf24_lstm", "saved_model.pb"),
            ("encoder_decoder_ckpt", "ckpt.index"),
        ]
    ),
    flips=st.lists(
        st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)), min_size=1, max_size=4
    ),
)
def test_fuzzed_directories_load_or_raise_our_error(target, flips, tmp_path_factory):
    """Damage anywhere in an index, keras_metadata.pb or saved_model.pb: the model loads (the
    bytes hit were not read or still decode) or jaxlstm's own error comes; nothing else."""
    name, member = target
    folder = _copy(name, tmp_path_factory.mktemp("fuzz"))
    path = folder / member
    data = bytearray(path.read_bytes())
    for where, bits in flips:
        data[int(where * len(data))] ^= bits
    path.write_bytes(bytes(data))
    try:
        if name.endswith("_ckpt"):
            jaxlstm.load_keras(folder / "model.json", weights=folder)
        else:
            jaxlstm.load_keras(folder)
    except jaxlstm.JaxLSTMError:
        pass


def test_crc32c_is_tensorflows():
    """The masked CRC-32C of the LevelDB/TensorFlow spec's example ("123456789": 0xE3069283
    unmasked)."""
    assert google_crc32c.value(b"123456789") == 0xE3069283
    crc = 0xE3069283
    assert masked_crc32c(b"123456789") == (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def test_a_missing_crc32c_package_is_named(monkeypatch):
    import sys

    from jaxlstm import MissingDependencyError

    monkeypatch.setitem(sys.modules, "google_crc32c", None)
    with pytest.raises(MissingDependencyError, match=r"needs the 'google-crc32c' package"):
        read_keras_file(FIX / "lstm_seq")
