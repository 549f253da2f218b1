"""The recurrence of every cell, with a hand-written JVP whose transpose is a fast backward pass.

A cell (``lstm.LSTMCell``, ``gru.GRUCell``, ``simple_rnn.SimpleRNNCell``) says how its step splits
into one matmul and an elementwise update: ``z_t = [x_t, h_{t-1}] @ [w_x; w_h] + b`` with
``(w_x, w_h, b) = cell.fuse(params)``, then ``state_t = cell.update(z_t, state_{t-1})``. Every
cell of that shape (LSTM, GRU with ``reset_after=True``, SimpleRNN) runs through
:func:`recurrence`. A ``split`` cell (the GRU) keeps the two parts apart,
``z_t = (x_t @ w_x + b_x, h_{t-1} @ w_h + b_h)``, because its update uses them differently
(the reset gate multiplies the recurrent part of the candidate only): its matmuls are ``3u``
wide, with no zero block, and the input part's share of the tangent is computed for all steps
outside the loop (``cell.tangent_input``). A cell that needs a second matmul inside the step
(GRU with ``reset_after=False``: ``(r * h) @ U_h``) runs through :func:`_plain_recurrence`, a
``lax.scan`` of ``cell.step`` differentiated by plain autodiff (a fast JVP for it measured
slower: ``benchmarks/README.md``). Both share the masks, the chunked checkpointing and the
entry point :func:`run`.

Plain autodiff of a ``lax.scan`` accumulates the weight gradients step by step: every step of
the backward loop adds a ``(units, B) @ (B, n)`` outer product into a ``(units, n)`` buffer, and
computes ``dx_t = dz_t @ kernel.T`` on ``B`` rows. Here only what must be sequential stays in the
loop. With ``Z`` the stacked pre-activations ``(T, B, n)``, ``H_prev`` the stacked ``h_{t-1}``
(times the recurrent dropout mask ``r``, when there is one)::

    forward     z_t = x_t @ w_x + b + (h_{t-1} * r) @ w_h
                state_t = cell.update(z_t, state_{t-1})               elementwise, masks
    tangent     A   = dx @ w_x + x @ dw_x + db + H_prev @ dw_h + (H * dr) @ w_h
                                                                   all T*B rows at once
                dz_t = A_t + (dh_{t-1} * r) @ w_h                     the only loop
                dstate_t = jvp(cell.update)(dz_t, dstate_{t-1})

JAX transposes that tangent to the backward pass: one reverse loop that emits ``dZ`` (one
``(B, n) @ (n, u)`` matmul a step) and then ``dw_x = X^T dZ``, ``dw_h = H_prev^T dZ``,
``dx = dZ @ w_x^T``, ``db = sum(dZ)`` as single matmuls over all ``T*B`` rows. Being a JVP
(not a VJP), it also serves forward-mode differentiation. ``remat_chunk`` checkpoints the scan in
chunks so the backward pass keeps one chunk's residuals at a time.

States are plain tuples here, ``h`` first (the step's output); the cells' NamedTuples are
rebuilt by the driver (``rnn.py``).
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax
from jax.custom_derivatives import SymbolicZero

from jaxlstm._src.core.activations import ACTIVATIONS


class Config(NamedTuple):
    """Static options of one recurrence (hashable: it is a ``nondiff_argnums`` argument)."""

    cell: Any  # a cell: LSTMCell, GRUCell or SimpleRNNCell (hashable NamedTuples)
    masked: bool
    zero_output_for_mask: bool
    return_sequences: bool
    compute_dtype: Any
    unroll: int | bool

    @property
    def elementwise(self) -> bool:
        """The cell's activations are known to act elementwise, so a step's JVP is a product with
        per-element coefficients (``cell.linearize``); anything else, e.g. a softmax or a user's
        callable, takes the generic path: ``jax.jvp`` of ``cell.update`` inside the tangent
        loop."""
        return all(f in ELEMENTWISE for f in self.cell.activations)


ELEMENTWISE = frozenset(
    f for name, f in ACTIVATIONS.items() if name not in ("softmax", "log_softmax", "sparsemax")
)


def matmul(a, b, compute_dtype=None):
    """``a @ b``; with ``compute_dtype``, in that dtype with float32 accumulation and result."""
    if compute_dtype is None:
        return a @ b
    return jnp.matmul(
        a.astype(compute_dtype), b.astype(compute_dtype), preferred_element_type=jnp.float32
    )


def value_and_slope(f, x):
    """``f(x)`` and ``f'(x)`` of an elementwise ``f`` (as autodiff would give them)."""
    return jax.jvp(f, (x,), (jnp.ones_like(x),))


def _masked(cfg: Config, m, new, old, out):
    """Keras's masked step: carry the state, repeat the last output (or output zeros)."""
    out = jnp.where(m, new[0], jnp.zeros_like(new[0]) if cfg.zero_output_for_mask else out)
    return tuple(jnp.where(m, n, o) for n, o in zip(new, old, strict=True)), out


def _biases(cell, bias):
    """``(b_x, b_h)``: a split cell's bias pair (either may be ``None``), or ``(bias, None)``."""
    if not cell.split:
        return bias, None
    return (None, None) if bias is None else bias


def _forward(cfg, w_x, w_h, bias, x, state0, out0, rdm, mask, save):
    """The forward scan over time-major ``x`` ``(T, B, in)``. Returns
    ``((ys_or_last, state_T, out_T), residuals)``; with ``save`` the residuals are the stacked
    ``h_{t-1}`` and the linearisation of each step: its coefficients (elementwise activations)
    or ``(z_t, state_{t-1} without h)``.

    One ``[x_t, 1, h_{t-1}] @ [w_x; b; w_h]`` matmul a step: on CPU this beats two matmuls a
    step, a separate bias add, and a precomputed ``x @ w_x`` (whose per-step slice, fused into
    the gate math, makes XLA:CPU's fusion several times slower). A ``split`` cell (the GRU)
    takes its two parts apart: ``z_t = ([x_t, 1] @ [w_x; b_x], (h_{t-1} * r) @ w_h + b_h)``.
    """
    cd, cell = cfg.compute_dtype, cfg.cell
    b_x, b_h = _biases(cell, bias)
    fold_bias = b_x is not None and cd is None  # (bfloat16 matmuls would round the bias)
    if fold_bias:  # [x_t, 1, h] @ [w_x; b; w_h]: no bias add in the gate math
        x = jnp.concatenate([x, jnp.ones((*x.shape[:-1], 1), x.dtype)], axis=-1)
    if cell.split:  # ([x_t, 1] @ [w_x; b_x], h @ w_h + b_h)
        if fold_bias:
            w_x = jnp.concatenate([w_x, b_x[None].astype(w_x.dtype)], axis=0)
        w = (w_x, w_h) if cd is None else (w_x.astype(cd), w_h.astype(cd))
    elif fold_bias:
        w = jnp.concatenate([w_x, b_x[None].astype(w_x.dtype), w_h], axis=0)
    else:
        w = jnp.concatenate([w_x, w_h], axis=0)  # (in + u, n)
    if cd is not None and not cell.split:
        w = w.astype(cd)

    def preactivation(x_t, h_r):
        if cell.split:
            z_x, z_h = matmul(x_t, w[0], cd), matmul(h_r, w[1], cd)
            if b_h is not None:
                z_h = z_h + b_h
            return (z_x if b_x is None or fold_bias else z_x + b_x), z_h
        z = matmul(jnp.concatenate([x_t, h_r], axis=-1), w, cd)
        return z if b_x is None or fold_bias else z + b_x

    def step(carry, inputs):
        state, out = carry
        h = state[0]
        x_t, m = inputs
        z = preactivation(x_t, h if rdm is None else h * rdm)
        if not save:
            new = cell.update(z, state)
            res = None
        elif cfg.elementwise:
            new, coefficients = cell.linearize(z, state)
            res = (h, coefficients)
        else:
            new = cell.update(z, state)
            res = (h, (z, state[1:]))
        if cfg.masked:
            new, new_out = _masked(cfg, m, new, state, out)
        else:
            new_out = new[0]
        emit = (new_out if cfg.return_sequences else None, res)
        return (new, new_out if cfg.masked else None), emit

    (state, out), (ys, res) = lax.scan(step, (state0, out0), (x, mask), unroll=cfg.unroll)
    first = ys if cfg.return_sequences else (out if cfg.masked else state[0])
    return (first, state, out), res


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def recurrence(cfg, w_x, w_h, bias, x, state0, out0, rdm, mask):
    """A one-matmul-a-step cell over time-major inputs, with the fast JVP below.

    Args:
      cfg: :class:`Config`.
      w_x ``(in, n)``, w_h ``(u, n)``, bias ``(n,)`` or ``None``: ``cell.fuse(params)``
        (a ``split`` cell: w_h ``(u, m)`` and bias a pair ``(b_x (n,), b_h (m,))`` or ``None``).
      x: ``(T, B, in)``, time-major (already reversed for ``go_backwards`` and dropped out).
      state0: tuple of ``(B, u)`` arrays, ``h`` first. out0: ``(B, u)`` (the "previous
        output", zeros) when masked, else None.
      rdm: ``(B, u)`` recurrent dropout multiplier or ``None``. mask: ``(T, B, 1)`` bool or None.

    Returns:
      ``(ys_or_last, state_T, out_T)``: the ``(T, B, u)`` outputs (or the last output when
      ``cfg.return_sequences`` is False), the final state, and the last output when masked.
    """
    return _forward(cfg, w_x, w_h, bias, x, state0, out0, rdm, mask, save=False)[0]


def _rows_matmul(a, dw, compute_dtype):
    """``a @ dw`` for ``a`` ``(T, B, n)`` and a weight tangent ``dw`` ``(n, m)``, written as
    ``(a^T)^T @ dw`` with ``a^T`` ``(n, T*B)`` materialised, so that its transpose (the
    weight gradient ``a^T @ dZ``) is a plain row-major matmul instead of one contracting the
    ``T*B`` leading axis of both operands (which XLA:CPU answers by transposing the much larger
    ``dZ`` and running a slower kernel). The barrier keeps XLA from cancelling the two
    transposes."""
    t, b, n = a.shape
    a_t = lax.optimization_barrier(a.reshape(t * b, n).T)
    return matmul(a_t.T, dw, compute_dtype).reshape(t, b, dw.shape[-1])


def _zero(t):
    return type(t) is SymbolicZero


def _dense(t):
    return jnp.zeros(t.shape, t.dtype) if _zero(t) else t


@recurrence.defjvp
def _recurrence_jvp(cfg, primals, tangents):
    w_x, w_h, bias, x, state0, out0, rdm, mask = primals
    d_w_x, d_w_h, d_bias, dx, dstate0, dout0, d_rdm, _ = tangents
    cd, cell = cfg.compute_dtype, cfg.cell
    outs, (h_prev, linearisation) = _forward(
        cfg, w_x, w_h, bias, x, state0, out0, rdm, mask, save=True
    )
    b_x, b_h = _biases(cell, bias)
    db_x, db_h = _biases(cell, d_bias)
    rows = h_prev.shape[:-1]

    # Everything that does not depend on the carried tangent, for all T*B rows at once: the
    # input part (x_terms) and the recurrent part (h_terms), one sum unless the cell is split.
    x_terms, h_terms = [], []
    if not _zero(dx):
        x_terms.append(matmul(dx, w_x, cd))
    if not _zero(d_w_x):
        x_terms.append(_rows_matmul(x, d_w_x, cd))
    if b_x is not None and not _zero(db_x):
        x_terms.append(jnp.broadcast_to(db_x, (*rows, w_x.shape[-1])))
    if not _zero(d_w_h):
        h_terms.append(_rows_matmul(h_prev if rdm is None else h_prev * rdm, d_w_h, cd))
    if b_h is not None and not _zero(db_h):
        h_terms.append(jnp.broadcast_to(db_h, (*rows, w_h.shape[-1])))
    if rdm is not None and not _zero(d_rdm):
        h_terms.append(matmul(h_prev * d_rdm, w_h, cd))
    dtype = h_prev.dtype

    def total(terms, width):
        return sum(terms[1:], terms[0]).astype(dtype) if terms else jnp.zeros((*rows, width), dtype)

    if not cell.split:
        a, a_x = total(x_terms + h_terms, w_h.shape[-1]), None
    else:
        a, a_x = total(h_terms, w_h.shape[-1]), total(x_terms, w_x.shape[-1])
        if cfg.elementwise:  # the input part's share of the tangent, outside the loop
            a_x = cell.tangent_input(linearisation, a_x)
    # dz = dh @ w_h, written against w_h.T so that its transpose (the backward pass's one
    # matmul a step) is a plain (B, n) @ (n, u) on a contiguous matrix.
    w_t = w_h.T if cd is None else w_h.T.astype(cd)

    def step(carry, inputs):
        dstate, dout = carry
        dh = dstate[0]
        a_t, a_x_t, lin, m = inputs
        dh_r = dh if rdm is None else dh * rdm
        dz = a_t + jnp.einsum(
            "bu,gu->bg",
            dh_r if cd is None else dh_r.astype(cd),
            w_t,
            preferred_element_type=None if cd is None else jnp.float32,
        )
        if cell.split:
            dz = (a_x_t, dz)
        if cfg.elementwise:
            dnew = cell.tangent(lin, dz, dstate)
        else:
            h_t, (z_t, rest) = lin
            _, dnew = jax.jvp(cell.update, (z_t, (h_t, *rest)), (dz, dstate))
        if cfg.masked:
            dnew, dout_new = _masked(cfg, m, dnew, dstate, dout)
        else:
            dout_new = dnew[0]
        emit = dout_new if cfg.return_sequences else None
        return (dnew, dout_new if cfg.masked else None), emit

    if not cfg.elementwise:
        linearisation = (h_prev, linearisation)
    carry0 = (tuple(_dense(d) for d in dstate0), _dense(dout0) if cfg.masked else None)
    (dstate, dout), dys = lax.scan(step, carry0, (a, a_x, linearisation, mask), unroll=cfg.unroll)
    first = dys if cfg.return_sequences else (dout if cfg.masked else dstate[0])
    return outs, (first, dstate, dout)


def _plain_recurrence(cfg, params, x, state0, out0, rdm, mask):
    """A cell whose step is not one matmul and an elementwise update (``cell.fused`` is
    False): a ``lax.scan`` of ``cell.step``, differentiated by plain autodiff. Same arguments
    and returns as :func:`recurrence`, with the cell's params in place of the fused weights."""
    cell = cfg.cell

    def step(carry, inputs):
        state, out = carry
        x_t, m = inputs
        new = cell.step(params, state, x_t, rdm, cfg.compute_dtype)
        if cfg.masked:
            new, new_out = _masked(cfg, m, new, state, out)
        else:
            new_out = new[0]
        return (new, new_out if cfg.masked else None), (new_out if cfg.return_sequences else None)

    (state, out), ys = lax.scan(step, (state0, out0), (x, mask), unroll=cfg.unroll)
    first = ys if cfg.return_sequences else (out if cfg.masked else state[0])
    return first, state, out


@functools.partial(jax.jit, static_argnums=(0,), static_argnames=("remat_chunk",))
def run(cfg, params, x, state0, rdm, mask, remat_chunk=None):
    """The cell ``cfg.cell`` over time-major ``x`` ``(T, B, in)`` from ``state0`` (a tuple of
    ``(B, u)`` arrays, ``h`` first): :func:`recurrence` (the fast JVP) for a cell whose step is
    one matmul and an elementwise update, :func:`_plain_recurrence` otherwise; over the whole
    sequence, or checkpointed in chunks of ``remat_chunk`` steps: the backward pass then
    recomputes one chunk's forward at a time and keeps only the state at chunk boundaries
    (memory ``O(T/chunk + chunk)`` steps instead of ``O(T)``, for about one more forward pass of
    compute). Returns ``(ys_or_last, state_T)``.

    Jitted (static ``cfg`` and ``remat_chunk``): inside a caller's ``jit`` it is inlined; called
    eagerly it compiles once per configuration and shape instead of re-tracing its scans on
    every call."""
    cell = cfg.cell
    if cell.fused:
        fused = cell.fuse(params)

        def recur(x, state, out, mask):
            return recurrence(cfg, *fused, x, state, out, rdm, mask)
    else:

        def recur(x, state, out, mask):
            return _plain_recurrence(cfg, params, x, state, out, rdm, mask)

    state0 = tuple(state0)
    out0 = jnp.zeros_like(state0[0]) if cfg.masked else None
    steps = x.shape[0]
    if not remat_chunk or remat_chunk >= steps:
        ys, state, _ = recur(x, state0, out0, mask)
        return ys, state

    @jax.checkpoint
    def chunk(carry, inputs):
        x_k, m_k = inputs
        ys, state, out = recur(x_k, *carry, m_k)
        return (state, out), (ys if cfg.return_sequences else None)

    n = remat_chunk
    full = (steps // n) * n

    def split(a):  # (T, ...) -> (T // n, n, ...)
        return None if a is None else a[:full].reshape(steps // n, n, *a.shape[1:])

    carry, ys = lax.scan(chunk, (state0, out0), (split(x), split(mask)))
    if cfg.return_sequences:
        ys = ys.reshape(full, *ys.shape[2:])
    if full < steps:
        rest = None if mask is None else mask[full:]
        carry, ys_rest = chunk(carry, (x[full:], rest))
        ys = jnp.concatenate([ys, ys_rest]) if cfg.return_sequences else None
    state, out = carry
    if not cfg.return_sequences:
        ys = out if cfg.masked else state[0]
    return ys, state
