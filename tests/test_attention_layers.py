"""Attention, AdditiveAttention and MultiHeadAttention against live Keras 3 (JAX backend):
masks from Embedding(mask_zero) through LSTMs into the attention and on to later layers,
every option, an attention seq2seq, and save_keras back into files Keras 3 loads."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

import jaxlstm
from jaxlstm._src.core import attention as A

keras = pytest.importorskip("keras")
L = keras.layers


@pytest.fixture(autouse=True)
def cheap_initializers(monkeypatch):
    """Keras's random initializers compile a JAX program per weight shape (seconds each on a
    busy machine); every weight is overwritten by randomize() anyway."""
    from keras.src.initializers import random_initializers

    monkeypatch.setattr(
        random_initializers.VarianceScaling,
        "__call__",
        lambda self, shape, dtype=None: keras.ops.zeros(shape, dtype=dtype),
    )


def randomize(model, seed):
    rng = np.random.default_rng(seed)
    for w in model.weights:
        w.assign(rng.uniform(-0.5, 0.5, w.shape).astype("float32"))
    return model


def padded_ids(rng, shape, pads):
    """int32 token ids in 1..19 with zeros (masked steps) at ``pads``: (row, slice) pairs."""
    ids = rng.integers(1, 20, shape).astype("int32")
    for row, where in pads:
        ids[row, where] = 0
    return ids


def keras_outputs(model, feeds):
    out = model.predict(feeds, verbose=0)
    return [np.asarray(o) for o in (out if isinstance(out, list | tuple) else [out])]


def assert_outputs(got, want):
    got = got if isinstance(got, tuple) else (got,)
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        assert g.shape == w.shape, i
        np.testing.assert_allclose(np.asarray(g), w, atol=1e-5, rtol=0, err_msg=f"output {i}")


def check_model(model, feeds, tmp_path, seed=0):
    """Keras's outputs = jaxlstm's; save_keras gives back Keras's weights in Keras's order."""
    randomize(model, seed)
    want = keras_outputs(model, feeds)
    model.save(tmp_path / "m.keras")
    jmodel = jaxlstm.load_keras(tmp_path / "m.keras")
    assert_outputs(jmodel(*feeds), want)
    jaxlstm.save_keras(jmodel, tmp_path / "back.keras")
    back = keras.saving.load_model(tmp_path / "back.keras")
    for b, w in zip(back.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(b, w)
    return jmodel, want


def encoder_decoder_inputs():
    q_ids, v_ids = keras.Input((5,), dtype="int32"), keras.Input((6,), dtype="int32")
    dec = L.LSTM(4, return_sequences=True)(L.Embedding(20, 4, mask_zero=True)(q_ids))
    enc_emb = L.Embedding(20, 4, mask_zero=True)(v_ids)
    enc = L.LSTM(4, return_sequences=True)(enc_emb)
    return (q_ids, v_ids), dec, enc, enc_emb


def feeds(seed=1):
    rng = np.random.default_rng(seed)
    q = padded_ids(rng, (3, 5), [(0, slice(3, None)), (1, slice(0, 1))])
    v = padded_ids(rng, (3, 6), [(0, slice(4, None)), (2, slice(0, 2))])
    return [q, v]


def test_dense_attention_with_masks_matches_keras3(tmp_path):
    """Decoder steps (query, masked) attend over encoder steps (value, masked): the value mask
    hides padded encoder steps, the query mask zeroes padded decoder steps and travels on to the
    LSTM after the attention."""
    ins, dec, enc, enc_emb = encoder_decoder_inputs()
    scores_out, scores = L.Attention(name="with_scores")([dec, enc], return_attention_scores=True)
    outs = [
        L.Attention()([dec, enc]),
        L.Attention(use_scale=True, score_mode="concat")([dec, enc, enc_emb]),
        L.Attention(use_scale=True)([dec, enc], use_causal_mask=True),
        L.AdditiveAttention()([dec, enc]),
        L.AdditiveAttention(use_scale=False, dropout=0.3)([dec, enc, enc_emb]),
        scores_out,
        scores,
        L.LSTM(3)(L.Attention()([dec, enc])),  # the query mask reaches this LSTM
        L.GlobalAveragePooling1D()(L.AdditiveAttention()([dec, enc])),
    ]
    check_model(keras.Model(list(ins), outs), feeds(), tmp_path)


def test_multi_head_attention_matches_keras3(tmp_path):
    """Kept apart from other mask readers: Keras 3's MultiHeadAttention clears the masks of its
    input tensors while running, so another layer reading the same tensors sees a mask or not
    depending on the order Keras runs them in."""
    ins, dec, enc, enc_emb = encoder_decoder_inputs()

    def own(*tensors):  # new tensors (tanh: new arrays) carrying the same masks
        return [L.Activation("tanh")(t) for t in tensors]

    out, scores = L.MultiHeadAttention(2, 2, value_dim=3)(
        *own(dec, enc), return_attention_scores=True
    )
    outs = [
        L.MultiHeadAttention(2, 3)(*own(dec, enc)),
        L.MultiHeadAttention(2, 3, output_shape=(5,), use_bias=False)(*own(dec, enc, enc_emb)),
        L.MultiHeadAttention(2, 3)(*own(dec, dec), use_causal_mask=True),
        L.MultiHeadAttention(3, 2, dropout=0.2)(*own(dec, enc), key=own(enc_emb)[0]),
        out,
        scores,
    ]
    check_model(keras.Model(list(ins), outs), feeds(), tmp_path)


def test_multi_head_attention_over_2d_attention_axes_and_attention_mask(tmp_path):
    x = keras.Input((3, 4, 5))
    m = keras.Input((3, 4, 4), dtype="bool")  # (T, S) over the last attention axis
    outs = [
        L.MultiHeadAttention(2, 3, attention_axes=(1, 2))(x, x),
        L.MultiHeadAttention(2, 3, attention_axes=2, output_shape=(2, 3))(x, x),
        L.MultiHeadAttention(2, 2, attention_axes=(2,))(x, x, attention_mask=m),
    ]
    rng = np.random.default_rng(3)
    mask = rng.uniform(size=(2, 3, 4, 4)) > 0.3
    mask[..., 0] = True  # each query attends to something
    check_model(
        keras.Model([x, m], outs), [rng.normal(size=(2, 3, 4, 5)).astype("f4"), mask], tmp_path
    )


def attention_seq2seq():
    """A translation-style model: Embedding(mask_zero) encoder LSTM, decoder LSTM started from
    the encoder's state, Luong attention over the encoder's (masked) outputs."""
    src, tgt = keras.Input((None,), dtype="int32"), keras.Input((None,), dtype="int32")
    enc_seq, h, c = L.LSTM(6, return_sequences=True, return_state=True)(
        L.Embedding(20, 5, mask_zero=True)(src)
    )
    dec_seq = L.LSTM(6, return_sequences=True)(
        L.Embedding(20, 5, mask_zero=True)(tgt), initial_state=[h, c]
    )
    context = L.Attention()([dec_seq, enc_seq])
    merged = L.Concatenate()([context, dec_seq])
    return keras.Model([src, tgt], L.TimeDistributed(L.Dense(20, activation="softmax"))(merged))


def test_attention_seq2seq_matches_keras3(tmp_path):
    rng = np.random.default_rng(4)
    src = padded_ids(rng, (3, 7), [(0, slice(5, None)), (1, slice(2, None))])
    tgt = padded_ids(rng, (3, 6), [(0, slice(4, None)), (2, slice(3, None))])
    check_model(attention_seq2seq(), [src, tgt], tmp_path, seed=5)


def test_dropout_is_active_in_train_mode_only(tmp_path):
    ins, dec, enc, _ = encoder_decoder_inputs()
    model = randomize(keras.Model(list(ins), L.Attention(dropout=0.5)([dec, enc])), 0)
    model.save(tmp_path / "d.keras")
    jmodel = jaxlstm.load_keras(tmp_path / "d.keras")
    f = feeds()
    np.testing.assert_allclose(
        np.asarray(jmodel(*f)), keras_outputs(model, f)[0], atol=1e-5, rtol=0
    )
    jmodel.train()
    assert not np.allclose(np.asarray(jmodel(*f)), keras_outputs(model, f)[0], atol=1e-3)


def test_masked_softmax_styles_differ_only_on_fully_masked_rows():
    scores = np.array([[1.0, 2.0, 3.0], [0.5, -1.0, 2.0]], np.float32)
    mask = np.array([[True, False, True], [False, False, False]])
    outs = {
        s: np.asarray(A.masked_softmax(scores, mask, style=s)) for s in (A.SUBTRACT, A.FILL, A.ZERO)
    }
    for s in outs:
        np.testing.assert_allclose(outs[s][0], outs[A.ZERO][0], atol=1e-7)
    np.testing.assert_allclose(outs[A.FILL][1], np.full(3, 1 / 3), atol=1e-7)
    np.testing.assert_array_equal(outs[A.ZERO][1], np.zeros(3))


def edit_attention_entry(src, dst, edit):
    """Copy the .keras archive ``src`` to ``dst`` with ``edit(entry)`` applied to the config
    entry of its Attention layer."""
    with zipfile.ZipFile(src) as z:
        files = {n: z.read(n) for n in z.namelist()}
    config = json.loads(files["config.json"])
    edit(next(e for e in config["config"]["layers"] if e["class_name"] == "Attention"))
    files["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(dst, "w") as z:
        for n, data in files.items():
            z.writestr(n, data)


def test_unknown_call_option_is_refused(tmp_path):
    ins, dec, enc, _ = encoder_decoder_inputs()
    model = keras.Model(list(ins), L.Attention()([dec, enc]))
    model.save(tmp_path / "a.keras")

    def add_option(entry):
        entry["inbound_nodes"][0]["kwargs"]["sliding_window"] = 2

    edit_attention_entry(tmp_path / "a.keras", tmp_path / "b.keras", add_option)
    with pytest.raises(jaxlstm.UnsupportedOptionError, match=r"called with \['sliding_window'\]"):
        jaxlstm.load_keras(tmp_path / "b.keras")(*feeds())


def test_causal_in_the_layer_config_as_older_tf_keras_saved_it(tmp_path):
    """tf.keras 2.4-2.10 kept ``causal=True`` in Attention's config rather than as a call
    option: the same file with the call option moved into the config gives Keras's numbers."""
    ins, dec, enc, _ = encoder_decoder_inputs()
    model = randomize(keras.Model(list(ins), L.Attention()([dec, enc], use_causal_mask=True)), 2)
    want = keras_outputs(model, feeds())
    model.save(tmp_path / "a.keras")

    def move_to_config(entry):
        del entry["inbound_nodes"][0]["kwargs"]["use_causal_mask"]
        entry["config"]["causal"] = True

    edit_attention_entry(tmp_path / "a.keras", tmp_path / "b.keras", move_to_config)
    assert_outputs(jaxlstm.load_keras(tmp_path / "b.keras")(*feeds()), want)
