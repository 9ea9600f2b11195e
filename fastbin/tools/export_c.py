"""C export of a folded model (``fastbin export-c MODEL.fbm -o DIR``): a C99
header and source with no dynamic memory, for microcontrollers and any C
compiler.

The exported functions take raw uint8 pixels (``n_in`` of them)::

    int  NAME_predict(const uint8_t *pixels);               /* the class */
    void NAME_logits(const uint8_t *pixels, NAME_real *logits); /* n_classes values */

``NAME_real`` is ``float`` for float32 models (``double`` for float64 ones).

What is exported (the folded stages of :mod:`fastbin.runtime.model`):

* each sign stage (binary dense + batch norm + sign): its packed weights as
  ``const uint32_t`` rows (the bit convention of ``fastbin.bits``: bit 1 means
  -1, LSB first, split into 32-bit words so 32-bit targets need no 64-bit
  arithmetic), its integer thresholds (``int16_t`` when they fit) and its flips
  as packed words: output bit ``j`` is ``(dot_j < T_j) XOR flip_j``. The first
  stage sums raw pixels (``dot = sum(pixels) - 2 * sum(pixels where bit 1)``),
  later ones XOR-popcount (``dot = n - 2 * popcount(a ^ w)``); activations stay
  packed (uint32 words) on the stack;
* the float tail: one binary dense layer (raw pixels or packed input) then
  ``* scale + bias`` and any batch norms, in the float order of
  ``fastbin.reference.dense_affine`` / ``bn_affine``, constants as exact
  hexadecimal literals. Compiled without FMA contraction (``-ffp-contract=off``)
  and with ``FLT_EVAL_METHOD == 0`` the logits equal the Python folded model's
  bit for bit, so the predictions do too (ties included: the first maximum, as
  ``numpy.argmax``).

Supported model kinds: fully binary MLPs (1-bit weights and activations, with
or without batch norm), binary-weight softmax regression (with or without an
input offset, alpha scale, output batch norm) and fully binary conv networks
(below). Anything else (float weights, a
tanh/hardtanh layer, a binary layer on float input) raises ``ValueError``: its
float products would not match the Python model exactly. So does a model with an
input scale (``input_scale``): it was trained on features, not pixels, and the C
functions take raw uint8 pixels only.

Convolutional models (``fastbin.runtime.conv.ConvInferenceModel``, from a
``kind: "conv"`` file or :meth:`fastbin.nn.model.ConvModel.to_inference`) are
exported as their folded stages (:class:`ConvPlan`): activation maps packed per
pixel (``ceil(channels / 32)`` uint32 words, channel bit LSB first, padding bits
0) in two static ping-pong buffers; each sign stage a conv of integer dot
products (raw pixels in the first, XOR-popcount per kernel tap on packed maps
later, one-padding = input bit 0) compared with a per-channel threshold, its
max pool fused into the output loop as an AND over the window's comparison bits
(XOR the flips after the AND for a pool before the batch norm, before it for a
pool after the sign); further pools AND the bits in place; then the binary
dense tail on the flattened map as for an MLP.

The stages are read through :func:`plan` (one adapter: the only code here that
knows the runtime's classes).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

import numpy as np

from ..io.atomic import atomic_write

__all__ = ["export_c", "plan", "generate", "Plan", "ConvPlan", "ConvStage", "SUPPORTED"]

SUPPORTED = ("fully binary MLPs (1-bit weights and sign activations, optional batch norm), binary-weight "
             "softmax regression (optional alpha scale, input offset, output batch norm) and fully binary conv "
             "networks (binary Conv2D -> [MaxPool2D] -> [BatchNorm] -> Sign -> [MaxPool2D] stages, then Flatten -> "
             "binary Dense -> [BatchNorm])")

_WORD = 32  # bits per exported word
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_INT16 = (-(2**15), 2**15 - 1)
_INT32 = (-(2**31), 2**31 - 1)


# -- the plan: plain arrays, independent of the runtime's classes -------------------------------------------------


@dataclass
class SignLayer:
    """``bits`` (n_out, n_words) uint32 sign rows; output bit j = (dot < t[j]) ^ flip[j]."""

    bits: np.ndarray
    n_in: int
    n_out: int
    t: np.ndarray  # int64 (n_out,), flips folded in
    flip: np.ndarray  # bool (n_out,)
    uint8_input: bool


@dataclass
class Tail:
    """The float logits: ``float(dot) [* scale] [+ bias]`` then each batch norm ``((z - mean) * k) + beta``."""

    bits: np.ndarray
    n_in: int
    n_out: int
    uint8_input: bool
    scale: np.ndarray | None
    bias: np.ndarray | None
    batch_norms: list = field(default_factory=list)  # [(mean, k, beta)]


@dataclass
class Plan:
    n_in: int
    n_classes: int
    dtype: np.dtype
    signs: list
    tail: Tail


@dataclass
class ConvStage:
    """One folded conv sign stage on a map ``in_shape`` (h, w, c): the conv (``kernel``, ``stride``,
    padding ``top``/``left`` before the image, ``conv_shape`` (out_h, out_w)), ``filters`` output channels.
    ``bits`` (filters, row words) uint32: the first stage (``uint8_input``) keeps the weight row's order
    (bit ``(i * kw + j) * c + ch``, padded to whole words at the row's end); later stages hold one group of
    ``ceil(c / 32)`` words per kernel tap ``(i, j)``, so a tap is XORed with one input pixel's words.
    ``pad``: the raw pixel value of the first stage's padding (0 or 255); packed stages pad with bit 0 (+1).
    The comparison bit of channel ``f`` at a conv position is ``dot < t[f]`` (flips folded into ``t``);
    ``pool`` ``((ph, pw), (sh, sw), pre)`` is the fused pool: the output bit is ``AND(bits) XOR flip``
    over the window's comparison bits (a pool before the batch norm, ``pre`` False: the AND of ``dot < t``
    is the max of the ±1 signs where the batch norm keeps the order, and with the flip the min, the OR,
    where it reverses it) or ``AND(bits XOR flip)`` (a pool after the sign, ``pre`` True: the AND of the
    sign bits); ``pools``: further AND pools on the output bits ``[((ph, pw), (sh, sw))]``;
    ``pooled_shape``: (h, w) after the fused pool; ``out_shape``: (h, w, filters) after every pool."""

    in_shape: tuple
    kernel: tuple
    stride: tuple
    top: int
    left: int
    conv_shape: tuple
    filters: int
    uint8_input: bool
    pad: int
    bits: np.ndarray
    t: np.ndarray
    flip: np.ndarray
    pool: tuple
    pools: list
    pooled_shape: tuple
    out_shape: tuple


@dataclass
class ConvPlan:
    """A folded conv model: ``stages`` (:class:`ConvStage`), then ``tail`` (a :class:`Tail` whose
    ``bits`` hold one group of ``ceil(c / 32)`` words per pixel of the last map, the flattened order)."""

    input_shape: tuple
    n_in: int
    n_classes: int
    dtype: np.dtype
    stages: list
    tail: Tail


def _words32(packed):
    """A PackedSigns' uint64 rows as uint32 rows of ceil(n_bits / 32) words (little-endian halves: LSB first)."""
    bits = np.ascontiguousarray(packed.bits, dtype=np.uint64)
    n_bits = int(packed.n_bits)
    if n_bits % 64 and np.any(bits[:, -1] >> np.uint64(n_bits % 64)):
        raise ValueError("packed weights with non-zero padding bits")
    halves = np.empty((bits.shape[0], 2 * bits.shape[1]), np.uint32)
    halves[:, 0::2] = (bits & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    halves[:, 1::2] = (bits >> np.uint64(32)).astype(np.uint32)
    return np.ascontiguousarray(halves[:, : -(-n_bits // _WORD)])


def _unsupported(what):
    return ValueError(f"cannot export this model to C exactly: {what}; supported: {SUPPORTED}")


def _float_array(name, a, n, dtype):
    if a is None:
        return None
    a = np.asarray(a)
    if a.dtype != dtype:
        raise _unsupported(f"{name} is {a.dtype}, not the model's {dtype}")
    if a.shape not in ((n,), ()):
        raise _unsupported(f"{name} has shape {a.shape}, expected ({n},)")
    a = np.broadcast_to(a, (n,))
    if not np.all(np.isfinite(a)):
        raise _unsupported(f"{name} holds non-finite values")
    return np.array(a)


def _bool_rows(packed):
    """A PackedSigns' rows as bool (rows, n_bits), True = bit 1 (-1)."""
    bits = np.ascontiguousarray(packed.bits, dtype="<u8")
    return np.unpackbits(bits.view(np.uint8), axis=1, bitorder="little")[:, : int(packed.n_bits)].astype(bool)


def _grouped_words(signs, groups, c):
    """bool (rows, groups * c) -> uint32 (rows, groups * ceil(c / 32)): each group of c bits in whole words
    (LSB first), its padding bits 0, as one pixel of a packed map."""
    rows, nw = signs.shape[0], _n_words(c)
    padded = np.zeros((rows, groups, nw * _WORD), bool)
    padded[:, :, :c] = signs.reshape(rows, groups, c)
    return np.ascontiguousarray(np.packbits(padded.reshape(rows, -1), axis=1, bitorder="little").view("<u4"))


def _pair(v):
    a, b = (int(x) for x in v)
    return a, b


def _dtype_of(model):
    dtype = np.dtype(model.dtype)
    if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise _unsupported(f"model dtype {dtype} (float32 or float64 expected)")
    return dtype


def conv_plan(model) -> ConvPlan:
    """The adapter of a folded conv model (``fastbin.runtime.conv.ConvInferenceModel``: its ``stages``,
    each with ``conv`` (the layer config), ``w_bits``, ``thresholds``, ``pool_before`` and ``pools_after``;
    ``dense_bits``, ``affine``, ``input_shape``) -> a :class:`ConvPlan` of plain arrays. ``ValueError``
    for what cannot be exported exactly."""
    from ..reference import conv_geometry

    dtype = _dtype_of(model)
    h, w, c = (int(v) for v in model.input_shape)
    stages = []
    for s, stage in enumerate(model.stages):
        conv = stage.conv
        kernel, stride = _pair(conv["kernel_size"]), _pair(conv["stride"])
        if int(conv["in_channels"]) != c:
            raise _unsupported(f"conv stage {s} takes {conv['in_channels']} channels, the map has {c}")
        first = s == 0
        if not first and conv["padding"] == "same" and float(conv["pad_value"]) != 1:
            raise _unsupported(f"conv stage {s} pads its +-1 input with 0 (only one-padding, pad_value=1, is "
                               "free in the packed form)")
        n_in = kernel[0] * kernel[1] * c
        if 255 * n_in > _INT32[1]:
            raise _unsupported(f"conv stage {s} sums {n_in} terms per output: its dot products overflow int32")
        packed = stage.w_bits
        filters = int(packed.rows)
        if int(packed.n_bits) != n_in:
            raise _unsupported(f"conv stage {s} has {packed.n_bits}-bit kernels, its geometry implies {n_in}")
        out_h, out_w, (top, _), (left, _) = conv_geometry(h, w, kernel, stride, conv["padding"])
        t, flip = stage.thresholds["uint8" if first else "packed"]
        t, flip = np.asarray(t, dtype=np.int64), np.asarray(flip, dtype=bool)
        if t.shape != (filters,) or flip.shape != (filters,):
            raise _unsupported(f"conv stage {s} has thresholds of shape {t.shape}, expected ({filters},)")
        bits = _words32(packed) if first else _grouped_words(_bool_rows(packed), kernel[0] * kernel[1], c)
        pools = [(_pair(size), _pair(step)) for size, step in stage.pools_after]
        if stage.pool_before is not None:  # AND of "dot < t", then the flip: the max before the batch norm
            pool = (_pair(stage.pool_before[0]), _pair(stage.pool_before[1]), False)
        elif pools:  # AND of the output bits: the max after the sign
            (size, step), pools = pools[0], pools[1:]
            pool = (size, step, True)
        else:
            pool = ((1, 1), (1, 1), False)
        ph, pw, _, _ = conv_geometry(out_h, out_w, pool[0], pool[1], "valid")
        fh, fw = ph, pw
        for size, step in pools:
            fh, fw, _, _ = conv_geometry(fh, fw, size, step, "valid")
        stages.append(ConvStage((h, w, c), kernel, stride, int(top), int(left), (out_h, out_w), filters, first,
                                int(round(255 * float(conv["pad_value"]))) if first else 0, bits, t + flip, flip,
                                pool, pools, (ph, pw), (fh, fw, filters)))
        h, w, c = fh, fw, filters
    if not stages:
        raise _unsupported("the conv model has no sign stage")
    affine = model.affine
    packed = model.dense_bits
    n_out, n = int(packed.rows), h * w * c
    if int(packed.n_bits) != n:
        raise _unsupported(f"the dense layer takes {packed.n_bits} inputs, the last map has {n}")
    tail = Tail(_grouped_words(_bool_rows(packed), h * w, c), n, n_out, False,
                _float_array("the scale", affine.scale, n_out, dtype), _float_array("the bias", affine.bias, n_out,
                                                                                    dtype))
    if affine.bn is not None:
        tail.batch_norms.append(tuple(_float_array(f"batch norm {what}", v, n_out, dtype)
                                      for what, v in zip(("mean", "k", "beta"), affine.bn)))
    return ConvPlan(tuple(int(v) for v in model.input_shape), int(model.n_in), n_out, dtype, stages, tail)


def plan(model) -> Plan | ConvPlan:
    """The adapter: a folded model (``fastbin.runtime.model.InferenceModel``) -> a :class:`Plan` of plain arrays,
    or a folded conv model (``fastbin.runtime.conv.ConvInferenceModel``) -> a :class:`ConvPlan`.

    Raises ``ValueError`` for a model kind that cannot be exported exactly."""
    from ..runtime.conv import ConvInferenceModel
    from ..runtime.model import Activation, BatchNormOp, BinaryDense, FloatDense, FloatStage, SignStage

    if isinstance(model, ConvInferenceModel):
        return conv_plan(model)
    dtype = _dtype_of(model)
    if getattr(model, "input_scaled", False):
        raise _unsupported("the model scales its input (input_scale): it takes features, not [0, 1] pixels, and "
                           "the C functions take raw uint8 pixels only")
    stages = list(model.stages)
    if not stages or not isinstance(stages[-1], FloatStage):
        raise _unsupported("the model does not end in a float stage (the logits)")
    signs, n = [], int(model.n_in)
    for i, stage in enumerate(stages[:-1]):
        if not isinstance(stage, SignStage):
            raise _unsupported(f"stage {i} is {type(stage).__name__}")
        packed = stage.weights.packed
        if int(packed.n_bits) != n:
            raise _unsupported(f"stage {i} takes {packed.n_bits} inputs, the previous stage gives {n}")
        t, flip = stage.thresholds["uint8" if i == 0 else "packed"]
        t, flip = np.asarray(t, dtype=np.int64), np.asarray(flip, dtype=bool)
        n_out = int(packed.rows)
        if t.shape != (n_out,) or flip.shape != (n_out,):
            raise _unsupported(f"stage {i} has thresholds of shape {t.shape}, expected ({n_out},)")
        # dot > t  <=>  not (dot < t + 1): one comparison and an XOR with the flip bits
        signs.append(SignLayer(_words32(packed), n, n_out, t + flip, flip, i == 0))
        n = n_out
    ops = list(stages[-1].ops)
    if not ops or not isinstance(ops[0], BinaryDense):
        kind = "nothing" if not ops else type(ops[0]).__name__
        kind = "a float-weight dense layer" if ops and isinstance(ops[0], FloatDense) else kind
        raise _unsupported(f"the logits come from {kind}, not a binary dense layer")
    dense = ops[0]
    packed = dense.weights.packed
    if int(packed.n_bits) != n:
        raise _unsupported(f"the last binary layer takes {packed.n_bits} inputs, the previous stage gives {n}")
    n_out = int(packed.rows)
    uint8_input = not signs
    scale = dense.scale_uint8 if uint8_input else dense.scale_float
    tail = Tail(_words32(packed), n, n_out, uint8_input, _float_array("the scale", scale, n_out, dtype),
                _float_array("the bias", dense.bias, n_out, dtype))
    for op in ops[1:]:
        if isinstance(op, BatchNormOp):
            tail.batch_norms.append(tuple(_float_array(f"batch norm {name}", getattr(op, name), n_out, dtype)
                                          for name in ("mean", "k", "beta")))
        elif isinstance(op, Activation):
            raise _unsupported(f"a {op.kind} activation in the float tail")
        else:
            raise _unsupported(f"a {type(op).__name__} after the binary layer of the float tail")
    return Plan(int(model.n_in), n_out, dtype, signs, tail)


# -- C text -------------------------------------------------------------------------------------------------------


def _c_hex_float(x, dtype):
    """An exact C literal: hexadecimal, the mantissa's trailing zeros dropped (``0x1.8p+1f``)."""
    mantissa, exponent = float(x).hex().split("p")
    mantissa = mantissa.rstrip("0").rstrip(".") if "." in mantissa else mantissa
    return f"{mantissa}p{exponent}" + ("f" if dtype == np.float32 else "")


def _array(ctype, name, values, fmt, per_line):
    values = list(values)
    lines = [", ".join(fmt(v) for v in values[i : i + per_line]) for i in range(0, len(values), per_line)]
    body = ",\n    ".join(lines) if lines else "0"
    return f"static const {ctype} {name}[{max(len(values), 1)}] = {{\n    {body}\n}};\n"


def _words(name, bits):
    return _array("uint32_t", name, bits.reshape(-1), lambda v: f"0x{int(v):08x}u", 8)


def _int_type(t):
    lo, hi = int(t.min()), int(t.max())
    if _INT16[0] <= lo and hi <= _INT16[1]:
        return "int16_t"
    if _INT32[0] <= lo and hi <= _INT32[1]:
        return "int32_t"
    raise _unsupported("a threshold outside the int32 range")


def _n_words(n):
    return -(-n // _WORD)


_POPCOUNT = """\
/* popcount of one word: the compiler's instruction where the target has one, else SWAR (no table, no libgcc) */
#if defined(__GNUC__) && (defined(__POPCNT__) || defined(__aarch64__) || defined(__ARM_NEON))
#define FB_POPCOUNT(x) ((int32_t)__builtin_popcount(x))
#else
static int32_t fb_popcount(uint32_t x)
{
    x = x - ((x >> 1) & 0x55555555u);
    x = (x & 0x33333333u) + ((x >> 2) & 0x33333333u);
    x = (x + (x >> 4)) & 0x0f0f0f0fu;
    return (int32_t)((x * 0x01010101u) >> 24);
}
#define FB_POPCOUNT(x) fb_popcount(x)
#endif

/* n - 2 * popcount(a ^ w) over n_words words: the dot product of n +-1 values (padding bits are 0 in both) */
static int32_t fb_dot_packed(const uint32_t *a, const uint32_t *w, int32_t n_words, int32_t n)
{
    int32_t k, ones = 0;
    for (k = 0; k < n_words; ++k)
        ones += FB_POPCOUNT(a[k] ^ w[k]);
    return n - 2 * ones;
}
"""

_DOT_U8 = """\
/* sum_i pixels[i] * (+-1): total - 2 * (the sum of the pixels whose weight bit is 1) */
static int32_t fb_dot_uint8(const uint8_t *x, const uint32_t *w, int32_t n, int32_t total)
{
    int32_t i, neg = 0;
    for (i = 0; i < n; ++i)
        neg += (int32_t)x[i] & -(int32_t)((w[i >> 5] >> (i & 31)) & 1u);
    return total - 2 * neg;
}
"""


def _check_name(name):
    if not isinstance(name, str) or not _IDENT.match(name):
        raise ValueError(f"name must be a C identifier (letters, digits, _; not starting with a digit), got {name!r}")


def _ascii_name(source) -> str:
    """The base name of ``source`` as the ASCII C files cite it: other characters escaped
    (``\\xe8``, ``\\u2013``), and never a comment's end."""
    text = os.path.basename(os.fspath(source)).encode("ascii", "backslashreplace").decode("ascii")
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text).replace(
        "*/", "*\\/")


def _header(name, p, layers, origin, extra_defines="", notes=""):
    real = "float" if p.dtype == np.float32 else "double"
    guard = f"{name.upper()}_H"
    up = name.upper()
    return f"""\
/* {name}.h: a fastbin model ({layers}) exported to C{origin}. Generated by `fastbin export-c`; do not edit.
 * C99, no dynamic memory, no C library calls. Input: n_in raw uint8 pixels (0..255).{notes}
 * For logits equal bit for bit to fastbin's folded model compile with -ffp-contract=off (no FMA contraction). */
#ifndef {guard}
#define {guard}

#include <stdint.h>

#define {up}_N_IN {p.n_in}
#define {up}_N_CLASSES {p.n_classes}
{extra_defines}
typedef {real} {name}_real;

/* The predicted class (the first largest logit). */
int {name}_predict(const uint8_t *pixels);

/* The {p.n_classes} logits. */
void {name}_logits(const uint8_t *pixels, {name}_real *logits);

#endif /* {guard} */
"""


def _tail_code(tail, name, dtype, dot):
    """(constants, body) of the float tail: ``dot`` the C expression of class ``c``'s integer product."""
    real = "float" if dtype == np.float32 else "double"
    consts = [f"/* logits: binary dense {tail.n_in} -> {tail.n_out}"
              f"{', scale' if tail.scale is not None else ''}{', bias' if tail.bias is not None else ''}"
              f"{', batch norm' * len(tail.batch_norms)} */\n", _words(f"{name}_wl", tail.bits)]
    fmt = lambda v: _c_hex_float(v, dtype)  # noqa: E731
    steps = []
    if tail.scale is not None:
        consts.append(_array(real, f"{name}_scale", tail.scale, fmt, 4))
        steps.append(f"z = z * {name}_scale[c];")
    if tail.bias is not None:
        consts.append(_array(real, f"{name}_bias", tail.bias, fmt, 4))
        steps.append(f"z = z + {name}_bias[c];")
    for b, (mean, k, beta) in enumerate(tail.batch_norms):
        for what, values in (("mean", mean), ("k", k), ("beta", beta)):
            consts.append(_array(real, f"{name}_bn{b}_{what}", values, fmt, 4))
        steps.append(f"z = z - {name}_bn{b}_mean[c];\n        z = z * {name}_bn{b}_k[c];\n"
                     f"        z = z + {name}_bn{b}_beta[c];")
    step_text = "".join(f"        {s}\n" for s in steps)
    body = f"""\
    /* logits: float(dot) then the float32 steps of fastbin.reference.dense_affine / bn_affine, in order */
    for (c = 0; c < {tail.n_out}; ++c) {{
        {name}_real z = ({name}_real){dot};
{step_text}        logits[c] = z;
    }}
"""
    return consts, body


def _source(name, layers, origin, n_classes, helpers, consts, body, comment=""):
    return f"""\
/* {name}.c: a fastbin model ({layers}) exported to C{origin}. Generated by `fastbin export-c`; do not edit.
 * Weights: packed sign bits, uint32 words, bit 1 means -1, LSB first; rows padded with 0 bits to whole words.{comment}
 * Compile with -ffp-contract=off for logits equal bit for bit to fastbin's folded model. */
#include <float.h>
#include <stdint.h>

#include "{name}.h"

#if defined(FLT_EVAL_METHOD) && FLT_EVAL_METHOD != 0 && !defined(FASTBIN_ALLOW_EXCESS_PRECISION)
/* x86-32 with x87: -msse2 -mfpmath=sse; define FASTBIN_ALLOW_EXCESS_PRECISION to build anyway */
#error "exact logits need FLT_EVAL_METHOD == 0"
#endif

{helpers}
{"".join(consts)}
void {name}_logits(const uint8_t *pixels, {name}_real *logits)
{{
    int32_t c;
{"".join(body)}}}

int {name}_predict(const uint8_t *pixels)
{{
    {name}_real logits[{n_classes}];
    int best = 0, c;
    {name}_logits(pixels, logits);
    /* numpy.argmax: the first maximum; a NaN wins at once */
    for (c = 1; c < {n_classes} && logits[best] == logits[best]; ++c)
        if (logits[c] > logits[best] || logits[c] != logits[c])
            best = c;
    return best;
}}
"""


def _flip_words(flip, n_words):
    flips = np.zeros(n_words * _WORD, bool)
    flips[: len(flip)] = flip
    return np.packbits(flips.reshape(-1, 8), axis=1, bitorder="little").reshape(-1).view("<u4")


def generate(p, name="fastbin", source="") -> tuple[str, str]:
    """(header, source) C99 text of a :class:`Plan` or :class:`ConvPlan`; ``name`` prefixes every symbol and
    names the files."""
    _check_name(name)
    origin = f" from {_ascii_name(source)}" if source else ""
    if isinstance(p, ConvPlan):
        return _generate_conv(p, name, origin)
    layers = "-".join(str(v) for v in [p.n_in] + [s.n_out for s in p.signs] + [p.n_classes])
    header = _header(name, p, layers, origin)
    consts, body = [], []
    need_u8 = any(s.uint8_input for s in p.signs) or p.tail.uint8_input
    need_packed = any(not s.uint8_input for s in p.signs) or not p.tail.uint8_input
    sizes = [_n_words(s.n_out) for s in p.signs]
    buffers = max(sizes, default=0)
    if p.signs:
        body.append(f"    uint32_t h[2][{buffers}]; /* packed activations, ping-pong */\n    int32_t j, k;\n")
    if need_u8:
        body.append(f"    int32_t i, total = 0;\n    for (i = 0; i < {p.n_in}; ++i)\n"
                    "        total += pixels[i];\n")
    cur = None
    for i, s in enumerate(p.signs):
        nw_in, nw_out = _n_words(s.n_in), _n_words(s.n_out)
        ttype = _int_type(s.t)
        consts.append(f"/* stage {i}: binary dense {s.n_in} -> {s.n_out} + sign, "
                      f"{'raw pixel' if s.uint8_input else 'packed'} input */\n")
        consts.append(_words(f"{name}_w{i}", s.bits))
        consts.append(_array(ttype, f"{name}_t{i}", s.t, str, 12))
        consts.append(_words(f"{name}_f{i}", _flip_words(s.flip, nw_out)))
        out = i % 2
        dot = (f"fb_dot_uint8(pixels, {name}_w{i} + j * {nw_in}, {s.n_in}, total)" if s.uint8_input else
               f"fb_dot_packed(h[{cur}], {name}_w{i} + j * {nw_in}, {nw_in}, {s.n_in})")
        body.append(f"""\
    /* stage {i}: bit j = 1 (-1) where dot < t[j], then XOR the flips */
    for (k = 0; k < {nw_out}; ++k)
        h[{out}][k] = {name}_f{i}[k];
    for (j = 0; j < {s.n_out}; ++j)
        if ({dot} < {name}_t{i}[j])
            h[{out}][j >> 5] ^= (uint32_t)1 << (j & 31);
""")
        cur = out
    tail = p.tail
    nw_in = _n_words(tail.n_in)
    dot = (f"fb_dot_uint8(pixels, {name}_wl + c * {nw_in}, {tail.n_in}, total)" if tail.uint8_input else
           f"fb_dot_packed(h[{cur}], {name}_wl + c * {nw_in}, {nw_in}, {tail.n_in})")
    tail_consts, tail_body = _tail_code(tail, name, p.dtype, dot)
    consts += tail_consts
    body.append(tail_body)
    helpers = (_POPCOUNT if need_packed else "") + ("\n" + _DOT_U8 if need_u8 else "")
    return header, _source(name, layers, origin, p.n_classes, helpers, consts, body)


_CONV = """\
/* The geometry of one conv stage (all sizes in elements). */
typedef struct {
    int32_t h, w, c;              /* input map; c: channels (raw pixels) or uint32 words per pixel (packed) */
    int32_t kh, kw, sh, sw;       /* kernel and stride */
    int32_t top, left;            /* padding before the image ("same") */
    int32_t n, row, pad;          /* terms of one dot product, words per filter, raw padding pixel value */
    int32_t filters, nw_out;      /* output channels, uint32 words per output pixel */
    int32_t ph, pw, psh, psw;     /* the fused max pool: window and stride (1, 1, 1, 1: none) */
    int32_t pre;                  /* 1: the pool follows the sign (XOR the flips before the AND) */
    int32_t out_h, out_w;         /* the output map after the fused pool */
} fb_conv;

/* The patch under conv position (p, q) of raw pixels, (i, j, channel) order, the padding holding g->pad;
   returns the sum of its kh * kw * c values */
static int32_t fb_patch_uint8(const uint8_t *px, const fb_conv *g, int32_t p, int32_t q, uint8_t *patch)
{
    int32_t i, j, ch, total = 0;
    for (i = 0; i < g->kh; ++i) {
        int32_t y = p * g->sh - g->top + i;
        for (j = 0; j < g->kw; ++j) {
            int32_t x = q * g->sw - g->left + j;
            int32_t inside = y >= 0 && y < g->h && x >= 0 && x < g->w;
            const uint8_t *v = px + (inside ? (y * g->w + x) * g->c : 0);
            for (ch = 0; ch < g->c; ++ch) {
                uint8_t value = inside ? v[ch] : (uint8_t)g->pad;
                *patch++ = value;
                total += value;
            }
        }
    }
    return total;
}

/* The patch under conv position (p, q) of a packed map: kh * kw groups of g->c words, 0 outside the image
   (one-padding: bit 0 is +1, so a tap in the padding costs popcount(w), no correction) */
static void fb_patch_packed(const uint32_t *in, const fb_conv *g, int32_t p, int32_t q, uint32_t *patch)
{
    int32_t i, j, k;
    for (i = 0; i < g->kh; ++i) {
        int32_t y = p * g->sh - g->top + i;
        for (j = 0; j < g->kw; ++j, patch += g->c) {
            int32_t x = q * g->sw - g->left + j;
            int32_t inside = y >= 0 && y < g->h && x >= 0 && x < g->w;
            for (k = 0; k < g->c; ++k)
                patch[k] = inside ? in[(y * g->w + x) * g->c + k] : 0u;
        }
    }
}

/* One sign stage: raw pixels (px) or a packed map (in) -> the packed map out. Output bit f of pooled pixel
   (P, Q) = AND over the pool window of ((dot < t[f]) XOR e), XOR (flip[f] XOR e), e = flip[f] when the pool
   follows the sign, else 0: a max before the batch norm (e = 0) or after the sign (e = flip). The output
   words hold the AND while the window is scanned; a filter whose bit is 0 is not computed again. */
static void fb_conv_stage(const uint8_t *px, const uint32_t *in, uint32_t *out, const fb_conv *g,
                          const uint32_t *w, const fb_thr *t, const uint32_t *flips, uint8_t *patch8,
                          uint32_t *patch)
{
    int32_t P, Q, f, a, b, k, total = 0;
    for (P = 0; P < g->out_h; ++P)
        for (Q = 0; Q < g->out_w; ++Q) {
            uint32_t *o = out + (P * g->out_w + Q) * g->nw_out;
            for (k = 0; k < g->nw_out; ++k)
                o[k] = 0;
            for (f = 0; f < g->filters; ++f)
                o[f >> 5] |= (uint32_t)1 << (f & 31);
            for (a = 0; a < g->ph; ++a)
                for (b = 0; b < g->pw; ++b) {
                    int32_t p = P * g->psh + a, q = Q * g->psw + b;
                    if (px)
                        total = fb_patch_uint8(px, g, p, q, patch8);
                    else
                        fb_patch_packed(in, g, p, q, patch);
                    for (f = 0; f < g->filters; ++f) {
                        uint32_t bit = (uint32_t)1 << (f & 31);
                        if (o[f >> 5] & bit) {
                            const uint32_t *wf = w + f * g->row;
                            int32_t dot = px ? fb_dot_uint8(patch8, wf, g->n, total)
                                             : fb_dot_packed(patch, wf, g->row, g->n);
                            uint32_t e = g->pre ? (flips[f >> 5] >> (f & 31)) & 1u : 0u;
                            if (((uint32_t)(dot < t[f]) ^ e) == 0u)
                                o[f >> 5] &= ~bit;
                        }
                    }
                }
            if (!g->pre)
                for (k = 0; k < g->nw_out; ++k)
                    o[k] ^= flips[k];
        }
}
"""

_POOL = """\
/* Max pooling of +-1 bits in place: the AND of each window's words. A pooled pixel only reads pixels at or after
   its own index (stride >= 1, width >= pooled width), so writing in place never overwrites an unread one. */
static void fb_pool_and(uint32_t *map, int32_t w, int32_t nw, int32_t ph, int32_t pw, int32_t sh, int32_t sw,
                        int32_t out_h, int32_t out_w)
{
    int32_t P, Q, a, b, k;
    for (P = 0; P < out_h; ++P)
        for (Q = 0; Q < out_w; ++Q)
            for (k = 0; k < nw; ++k) {
                uint32_t acc = ~0u;
                for (a = 0; a < ph; ++a)
                    for (b = 0; b < pw; ++b)
                        acc &= map[((P * sh + a) * w + Q * sw + b) * nw + k];
                map[(P * out_w + Q) * nw + k] = acc;
            }
}
"""


def _shape(shape):
    return "x".join(str(v) for v in shape)


def _generate_conv(p: ConvPlan, name, origin):
    up = name.upper()
    h, w, c = p.input_shape
    layers = "-".join([_shape(p.input_shape)] + [_shape(s.out_shape) for s in p.stages] + [str(p.n_classes)])
    # the ping-pong plan: stage s writes buffer s % 2 (the fused pool's output; further pools shrink it in place)
    sizes = [s.pooled_shape[0] * s.pooled_shape[1] * _n_words(s.filters) for s in p.stages]
    buffers = [max(sizes[b::2]) for b in range(min(2, len(sizes)))]
    # one patch at a time: raw pixels of the first stage, packed words of the others (at least 1 word)
    patch8 = max(st.kernel[0] * st.kernel[1] * st.in_shape[2] for st in p.stages if st.uint8_input)
    patch = max([st.bits.shape[1] for st in p.stages if not st.uint8_input] + [1])
    work = 4 * sum(buffers) + patch8 + 4 * patch
    extra = (f"#define {up}_HEIGHT {h}\n#define {up}_WIDTH {w}\n#define {up}_CHANNELS {c}\n"
             f"/* static RAM: the two packed activation buffers and one patch */\n#define {up}_WORK_BYTES {work}\n")
    notes = ("\n * Pixels in (height, width, channels) order, channel fastest. The activation maps live in static"
             "\n * buffers: one call at a time (not reentrant).")
    header = _header(name, p, layers, origin, extra, notes)
    all_t = np.concatenate([s.t for s in p.stages])
    ttype = _int_type(all_t)
    consts = [f"typedef {ttype} fb_thr; /* the thresholds' type: every stage's fits */\n\n"]
    body = []
    for s, st in enumerate(p.stages):
        (kh, kw), (sh, sw) = st.kernel, st.stride
        (ph, pw), (psh, psw), pre = st.pool
        ih, iw, ic = st.in_shape
        n = kh * kw * ic
        cin = ic if st.uint8_input else _n_words(ic)
        nw_out = _n_words(st.filters)
        pool_text = "" if (ph, pw) == (1, 1) and (psh, psw) == (1, 1) else (
            f", max pool {ph}x{pw}/{psh}x{psw} {'after the sign' if pre else 'before the batch norm'} fused")
        consts.append(f"/* stage {s}: binary conv {kh}x{kw}/{sh}x{sw} {_shape(st.in_shape)} -> "
                      f"{_shape(st.conv_shape + (st.filters,))}{pool_text} -> {_shape(st.pooled_shape + (st.filters,))}"
                      f"{''.join(f', AND pool {a}x{b}/{c_}x{d}' for (a, b), (c_, d) in st.pools)}, "
                      f"{'raw pixel' if st.uint8_input else 'packed'} input */\n")
        consts.append(_words(f"{name}_w{s}", st.bits))
        consts.append(_array("fb_thr", f"{name}_t{s}", st.t, str, 12))
        consts.append(_words(f"{name}_f{s}", _flip_words(st.flip, nw_out)))
        fields = [ih, iw, cin, kh, kw, sh, sw, st.top, st.left, n, st.bits.shape[1], st.pad, st.filters, nw_out,
                  ph, pw, psh, psw, int(pre), st.pooled_shape[0], st.pooled_shape[1]]
        consts.append(f"static const fb_conv {name}_g{s} = {{{', '.join(map(str, fields))}}};\n\n")
        src = "pixels, 0" if st.uint8_input else f"0, {name}_buf{(s - 1) % 2}"
        body.append(f"    fb_conv_stage({src}, {name}_buf{s % 2}, &{name}_g{s}, {name}_w{s}, {name}_t{s}, "
                    f"{name}_f{s}, {name}_patch8, {name}_patch);\n")
        fh, fw = st.pooled_shape
        for (a, b), (c_, d) in st.pools:
            oh, ow = (fh - a) // c_ + 1, (fw - b) // d + 1
            body.append(f"    fb_pool_and({name}_buf{s % 2}, {fw}, {nw_out}, {a}, {b}, {c_}, {d}, {oh}, {ow});\n")
            fh, fw = oh, ow
    for b, size in enumerate(buffers):
        consts.append(f"static uint32_t {name}_buf{b}[{size}]; /* packed maps of stages {b}, {b + 2}, ... */\n")
    consts.append(f"static uint8_t {name}_patch8[{patch8}]; /* the patch of one conv position: raw pixels */\n"
                  f"static uint32_t {name}_patch[{patch}]; /* ... or packed words, one group per kernel tap */\n")
    consts.append("\n")
    tail = p.tail
    last = f"{name}_buf{(len(p.stages) - 1) % 2}"
    nw_in = tail.bits.shape[1]
    tail_consts, tail_body = _tail_code(tail, name, p.dtype,
                                        f"fb_dot_packed({last}, {name}_wl + c * {nw_in}, {nw_in}, {tail.n_in})")
    consts += tail_consts
    body.append(tail_body)
    helpers = _POPCOUNT + "\n" + _DOT_U8 + "\n" + _CONV + ("\n" + _POOL if any(st.pools for st in p.stages) else "")
    # fb_thr is used by the helpers: its typedef goes first
    helpers = consts[0] + helpers
    comment = ("\n * Conv kernels after the first: one group of ceil(channels / 32) words per kernel tap; maps: one"
               "\n * group per pixel, (height, width) order.")
    return header, _source(name, layers, origin, p.n_classes, helpers, consts[1:], body, comment)


def export_c(model, out_dir, *, name="fastbin", source=None):
    """Write ``NAME.h`` and ``NAME.c`` for ``model`` into ``out_dir`` (created if missing; its parent must exist),
    each atomically (:func:`fastbin.io.atomic.atomic_write`: a failed export leaves the previous file).

    ``model``: a model file path, a ``fastbin.nn`` model (an MLP or a ``ConvModel``), or its folded
    ``InferenceModel`` / ``ConvInferenceModel``; ``source``: the file
    name the comments cite (default: ``model`` when it is a path). Returns the two paths.
    Raises ``ValueError`` for a model kind that cannot be exported exactly (see :data:`SUPPORTED`)."""
    _check_name(name)
    if not isinstance(out_dir, (str, os.PathLike)):
        raise TypeError(f"out_dir must be a path, got {type(out_dir).__name__}")
    if isinstance(model, (str, os.PathLike)):
        from ..nn.model import load

        source, model = os.fspath(model) if source is None else source, load(model)
    if hasattr(model, "to_inference"):
        try:
            model = model.to_inference()
        except NotImplementedError as exc:  # a conv layer pattern the folded form does not have
            raise _unsupported(str(exc)) from None
    if not hasattr(model, "stages"):
        raise TypeError(f"model must be a model file path, a fastbin model or an InferenceModel, got "
                        f"{type(model).__name__}")
    header, c_source = generate(plan(model), name, os.fspath(source) if source is not None else "")
    out_dir = os.fspath(out_dir)
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise NotADirectoryError(f"{out_dir} exists and is not a directory")
    os.makedirs(out_dir, exist_ok=True)
    paths = os.path.join(out_dir, f"{name}.h"), os.path.join(out_dir, f"{name}.c")
    for path, text in zip(paths, (header, c_source)):  # each replaced whole, or left as it was
        with atomic_write(path) as f:
            f.write(text.encode("ascii"))
    return paths
