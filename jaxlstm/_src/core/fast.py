"""The LSTM recurrence with a hand-written JVP whose transpose is a fast backward pass.

Plain autodiff of a ``lax.scan`` LSTM accumulates the weight gradients step by step: every step
of the backward loop adds a ``(units, B) @ (B, 4*units)`` outer product into a
``(units, 4*units)`` buffer, and computes ``dx_t = dz_t @ kernel.T`` on ``B`` rows. Here only what
must be sequential stays in the loop. With ``Z`` the stacked pre-activations ``(T, B, 4u)``,
``H_prev`` the stacked ``h_{t-1}`` (times the recurrent dropout mask ``r``, when there is one)::

    forward     z_t = x_t @ kernel + bias + (h_{t-1} * r) @ recurrent_kernel
                (h_t, c_t) = cell(z_t, c_{t-1})                      elementwise, masks
    tangent     A   = dx @ kernel + x @ dkernel + dbias + H_prev @ drecurrent + (H * dr) @ recurrent
                                                                   all T*B rows at once
                dz_t = A_t + (dh_{t-1} * r) @ recurrent_kernel        the only loop
                (dh_t, dc_t) = jvp(cell)(dz_t, dc_{t-1})

JAX transposes that tangent to the backward pass: one reverse loop that emits ``dZ`` (one
``(B, 4u) @ (4u, u)`` matmul a step) and then ``dkernel = X^T dZ``, ``drecurrent = H_prev^T dZ``,
``dx = dZ @ kernel^T``, ``dbias = sum(dZ)`` as single matmuls over all ``T*B`` rows. Being a JVP
(not a VJP), it also serves forward-mode differentiation. ``remat_chunk`` checkpoints the scan in
chunks so the backward pass keeps one chunk's residuals at a time.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax
from jax.custom_derivatives import SymbolicZero

from jaxlstm._src.core.activations import ACTIVATIONS, Activation


class Config(NamedTuple):
    """Static options of one recurrence (hashable: it is a ``nondiff_argnums`` argument)."""

    activation: Activation
    recurrent_activation: Activation
    masked: bool
    zero_output_for_mask: bool
    return_sequences: bool
    compute_dtype: Any
    unroll: int | bool

    @property
    def elementwise(self) -> bool:
        """Both activations are known to act elementwise, so a step's JVP is a product with
        per-element coefficients (anything else, e.g. a softmax or a user's callable, takes the
        generic path: ``jax.jvp`` of the cell inside the tangent loop)."""
        return self.activation in ELEMENTWISE and self.recurrent_activation in ELEMENTWISE


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


def cell(cfg: Config, z, c_prev):
    """The elementwise part of a step: ``z`` ``(B, 4u)`` in gate order i, f, c, o -> (h, c)."""
    act, rec = cfg.activation, cfg.recurrent_activation
    z_i, z_f, z_c, z_o = jnp.split(z, 4, axis=-1)
    c = rec(z_f) * c_prev + rec(z_i) * act(z_c)
    return rec(z_o) * act(c), c


def _value_and_slope(f, x):
    """``f(x)`` and ``f'(x)`` of an elementwise ``f`` (as autodiff would give them)."""
    return jax.jvp(f, (x,), (jnp.ones_like(x),))


def cell_with_coefficients(cfg: Config, z, c_prev):
    """:func:`cell` and the coefficients of its (elementwise) linearisation::

        dc = f * dc_prev + k_i * dz_i + k_f * dz_f + k_c * dz_c
        dh = k_o * dz_o + e * dc

    with ``k = [σ'(z_i) φ(z_c), σ'(z_f) c_prev, σ(z_i) φ'(z_c), σ'(z_o) φ(c)]`` ``(B, 4u)``,
    ``f = σ(z_f)`` and ``e = σ(z_o) φ'(c)``. Returns ``(h, c, (k, f, e))``."""
    act, rec = cfg.activation, cfg.recurrent_activation
    z_i, z_f, z_c, z_o = jnp.split(z, 4, axis=-1)
    i, di = _value_and_slope(rec, z_i)
    f, df = _value_and_slope(rec, z_f)
    g, dg = _value_and_slope(act, z_c)
    o, do = _value_and_slope(rec, z_o)
    c = f * c_prev + i * g
    phi_c, dphi_c = _value_and_slope(act, c)
    k = jnp.concatenate([di * g, df * c_prev, i * dg, do * phi_c], axis=-1)
    return o * phi_c, c, (k, f, o * dphi_c)


def _cell_jvp(cfg: Config, coefficients, dz, dc_prev):
    """The step's tangent from the coefficients of :func:`cell_with_coefficients`."""
    k, f, e = coefficients
    kz_i, kz_f, kz_c, kz_o = jnp.split(k * dz, 4, axis=-1)
    dc = f * dc_prev + kz_i + kz_f + kz_c
    return kz_o + e * dc, dc


def _masked(cfg: Config, m, new_h, new_c, h, c, out):
    """Keras's masked step: carry the state, repeat the last output (or output zeros)."""
    out = jnp.where(m, new_h, jnp.zeros_like(new_h) if cfg.zero_output_for_mask else out)
    return jnp.where(m, new_h, h), jnp.where(m, new_c, c), out


def _forward(cfg, kernel, recurrent, bias, x, h0, c0, out0, rdm, mask, save):
    """The forward scan over time-major ``x`` ``(T, B, in)``. Returns
    ``((ys_or_last, h_T, c_T, out_T), residuals)``; with ``save`` the residuals are the stacked
    ``h_{t-1}`` and the linearisation of each step: its coefficients (elementwise activations)
    or ``(z_t, c_{t-1})``.

    One ``[x_t, 1, h_{t-1}] @ [kernel; bias; recurrent_kernel]`` matmul a step: on CPU this beats
    two matmuls a step, a separate bias add, and a precomputed ``x @ kernel`` (whose per-step
    slice, fused into the gate math, makes XLA:CPU's fusion several times slower).
    """
    cd = cfg.compute_dtype
    fold_bias = bias is not None and cd is None  # (bfloat16 matmuls would round the bias)
    if fold_bias:  # [x_t, 1, h] @ [kernel; bias; recurrent]: no bias add in the gate math
        x = jnp.concatenate([x, jnp.ones((*x.shape[:-1], 1), x.dtype)], axis=-1)
        w = jnp.concatenate([kernel, bias[None].astype(kernel.dtype), recurrent], axis=0)
    else:
        w = jnp.concatenate([kernel, recurrent], axis=0)  # (in + u, 4u)
    if cd is not None:
        w = w.astype(cd)

    def step(carry, inputs):
        h, c, out = carry
        x_t, m = inputs
        xh = jnp.concatenate([x_t, h if rdm is None else h * rdm], axis=-1)
        z = matmul(xh, w, cd)
        if bias is not None and not fold_bias:
            z = z + bias
        if not save:
            new_h, new_c = cell(cfg, z, c)
            res = None
        elif cfg.elementwise:
            new_h, new_c, coefficients = cell_with_coefficients(cfg, z, c)
            res = (h, coefficients)
        else:
            new_h, new_c = cell(cfg, z, c)
            res = (h, (z, c))
        if cfg.masked:
            new_h, new_c, new_out = _masked(cfg, m, new_h, new_c, h, c, out)
        else:
            new_out = new_h
        emit = (new_out if cfg.return_sequences else None, res)
        return (new_h, new_c, new_out if cfg.masked else None), emit

    (h, c, out), (ys, res) = lax.scan(step, (h0, c0, out0), (x, mask), unroll=cfg.unroll)
    first = ys if cfg.return_sequences else (out if cfg.masked else h)
    return (first, h, c, out), res


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def recurrence(cfg, kernel, recurrent, bias, x, h0, c0, out0, rdm, mask):
    """The LSTM over time-major inputs, with the fast JVP below.

    Args:
      cfg: :class:`Config`.
      kernel ``(in, 4u)``, recurrent ``(u, 4u)``, bias ``(4u,)`` or ``None``.
      x: ``(T, B, in)``, time-major (already reversed for ``go_backwards`` and dropped out).
      h0, c0: ``(B, u)``. out0: ``(B, u)`` (the "previous output", zeros) when masked, else None.
      rdm: ``(B, u)`` recurrent dropout multiplier or ``None``. mask: ``(T, B, 1)`` bool or None.

    Returns:
      ``(ys_or_last, h_T, c_T, out_T)``: the ``(T, B, u)`` outputs (or the last output when
      ``cfg.return_sequences`` is False), the final state, and the last output when masked.
    """
    return _forward(cfg, kernel, recurrent, bias, x, h0, c0, out0, rdm, mask, save=False)[0]


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
    kernel, recurrent, bias, x, h0, c0, out0, rdm, mask = primals
    d_kernel, d_recurrent, d_bias, dx, dh0, dc0, dout0, d_rdm, _ = tangents
    cd = cfg.compute_dtype
    outs, (h_prev, linearisation) = _forward(
        cfg, kernel, recurrent, bias, x, h0, c0, out0, rdm, mask, save=True
    )
    z_shape = (*h_prev.shape[:-1], 4 * h_prev.shape[-1])

    # Everything that does not depend on the carried tangent, for all T*B rows at once.
    terms = []
    if not _zero(dx):
        terms.append(matmul(dx, kernel, cd))
    if not _zero(d_kernel):
        terms.append(_rows_matmul(x, d_kernel, cd))
    if bias is not None and not _zero(d_bias):
        terms.append(jnp.broadcast_to(d_bias, z_shape))
    if not _zero(d_recurrent):
        terms.append(_rows_matmul(h_prev if rdm is None else h_prev * rdm, d_recurrent, cd))
    if rdm is not None and not _zero(d_rdm):
        terms.append(matmul(h_prev * d_rdm, recurrent, cd))
    dtype = h_prev.dtype
    a = sum(terms[1:], terms[0]).astype(dtype) if terms else jnp.zeros(z_shape, dtype)
    # dz = dh @ recurrent, written against recurrent.T so that its transpose (the backward
    # pass's one matmul a step) is a plain (B, 4u) @ (4u, u) on a contiguous matrix.
    w_t = recurrent.T if cd is None else recurrent.T.astype(cd)

    def step(carry, inputs):
        dh, dc, dout = carry
        a_t, lin, m = inputs
        dh_r = dh if rdm is None else dh * rdm
        dz = a_t + jnp.einsum(
            "bu,gu->bg",
            dh_r if cd is None else dh_r.astype(cd),
            w_t,
            preferred_element_type=None if cd is None else jnp.float32,
        )
        if cfg.elementwise:
            dh_new, dc_new = _cell_jvp(cfg, lin, dz, dc)
        else:
            _, (dh_new, dc_new) = jax.jvp(functools.partial(cell, cfg), lin, (dz, dc))
        if cfg.masked:
            dh_new, dc_new, dout_new = _masked(cfg, m, dh_new, dc_new, dh, dc, dout)
        else:
            dout_new = dh_new
        emit = dout_new if cfg.return_sequences else None
        return (dh_new, dc_new, dout_new if cfg.masked else None), emit

    carry0 = (_dense(dh0), _dense(dc0), _dense(dout0) if cfg.masked else None)
    (dh, dc, dout), dys = lax.scan(step, carry0, (a, linearisation, mask), unroll=cfg.unroll)
    first = dys if cfg.return_sequences else (dout if cfg.masked else dh)
    return outs, (first, dh, dc, dout)


@functools.partial(jax.jit, static_argnums=(0,), static_argnames=("remat_chunk",))
def run(cfg, kernel, recurrent, bias, x, h0, c0, rdm, mask, remat_chunk=None):
    """:func:`recurrence` over the whole sequence, or checkpointed in chunks of
    ``remat_chunk`` steps: the backward pass then recomputes one chunk's forward at a time and
    keeps only the ``(h, c)`` at chunk boundaries (memory ``O(T/chunk + chunk)`` steps instead of
    ``O(T)``, for about one more forward pass of compute). Returns ``(ys_or_last, h_T, c_T)``.

    Jitted (static ``cfg`` and ``remat_chunk``): inside a caller's ``jit`` it is inlined; called
    eagerly it compiles once per configuration and shape instead of re-tracing its scans on
    every call."""
    out0 = jnp.zeros_like(h0) if cfg.masked else None
    steps = x.shape[0]
    if not remat_chunk or remat_chunk >= steps:
        ys, h, c, _ = recurrence(cfg, kernel, recurrent, bias, x, h0, c0, out0, rdm, mask)
        return ys, h, c

    @jax.checkpoint
    def chunk(carry, inputs):
        x_k, m_k = inputs
        ys, h, c, out = recurrence(cfg, kernel, recurrent, bias, x_k, *carry, rdm, m_k)
        return (h, c, out), (ys if cfg.return_sequences else None)

    n = remat_chunk
    full = (steps // n) * n

    def split(a):  # (T, ...) -> (T // n, n, ...)
        return None if a is None else a[:full].reshape(steps // n, n, *a.shape[1:])

    carry, ys = lax.scan(chunk, (h0, c0, out0), (split(x), split(mask)))
    if cfg.return_sequences:
        ys = ys.reshape(full, *ys.shape[2:])
    if full < steps:
        rest = None if mask is None else mask[full:]
        carry, ys_rest = chunk(carry, (x[full:], rest))
        ys = jnp.concatenate([ys, ys_rest]) if cfg.return_sequences else None
    h, c, out = carry
    if not cfg.return_sequences:
        ys = out if cfg.masked else h
    return ys, h, c
