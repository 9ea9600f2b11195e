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
or without batch norm) and binary-weight softmax regression (with or without an
input offset, alpha scale, output batch norm). Anything else (float weights, a
tanh/hardtanh layer, a binary layer on float input) raises ``ValueError``: its
float products would not match the Python model exactly. So does a model with an
input scale (``input_scale``): it was trained on features, not pixels, and the C
functions take raw uint8 pixels only.

The stages are read through :func:`plan` (one adapter: the only code here that
knows the runtime's classes).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

import numpy as np

from ..io.atomic import atomic_write

__all__ = ["export_c", "plan", "generate", "Plan", "SUPPORTED"]

SUPPORTED = ("fully binary MLPs (1-bit weights and sign activations, optional batch norm) and binary-weight "
             "softmax regression (optional alpha scale, input offset, output batch norm)")

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


def plan(model) -> Plan:
    """The adapter: a folded model (``fastbin.runtime.model.InferenceModel``) -> a :class:`Plan` of plain arrays.

    Raises ``ValueError`` for a model kind that cannot be exported exactly."""
    from ..runtime.model import Activation, BatchNormOp, BinaryDense, FloatDense, FloatStage, SignStage

    dtype = np.dtype(model.dtype)
    if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise _unsupported(f"model dtype {dtype} (float32 or float64 expected)")
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


def generate(p: Plan, name="fastbin", source="") -> tuple[str, str]:
    """(header, source) C99 text of a :class:`Plan`; ``name`` prefixes every symbol and names the files."""
    _check_name(name)
    real = "float" if p.dtype == np.float32 else "double"
    guard = f"{name.upper()}_H"
    up = name.upper()
    origin = f" from {_ascii_name(source)}" if source else ""
    layers = "-".join(str(v) for v in [p.n_in] + [s.n_out for s in p.signs] + [p.n_classes])
    header = f"""\
/* {name}.h: a fastbin model ({layers}) exported to C{origin}. Generated by `fastbin export-c`; do not edit.
 * C99, no dynamic memory, no C library calls. Input: n_in raw uint8 pixels (0..255).
 * For logits equal bit for bit to fastbin's folded model compile with -ffp-contract=off (no FMA contraction). */
#ifndef {guard}
#define {guard}

#include <stdint.h>

#define {up}_N_IN {p.n_in}
#define {up}_N_CLASSES {p.n_classes}

typedef {real} {name}_real;

/* The predicted class (the first largest logit). */
int {name}_predict(const uint8_t *pixels);

/* The {p.n_classes} logits. */
void {name}_logits(const uint8_t *pixels, {name}_real *logits);

#endif /* {guard} */
"""
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
        flips = np.zeros(nw_out * _WORD, bool)
        flips[: s.n_out] = s.flip
        flip_words = np.packbits(flips.reshape(-1, 8), axis=1, bitorder="little").reshape(-1).view("<u4")
        consts.append(f"/* stage {i}: binary dense {s.n_in} -> {s.n_out} + sign, "
                      f"{'raw pixel' if s.uint8_input else 'packed'} input */\n")
        consts.append(_words(f"{name}_w{i}", s.bits))
        consts.append(_array(ttype, f"{name}_t{i}", s.t, str, 12))
        consts.append(_words(f"{name}_f{i}", flip_words))
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
    consts.append(f"/* logits: binary dense {tail.n_in} -> {tail.n_out}"
                  f"{', scale' if tail.scale is not None else ''}{', bias' if tail.bias is not None else ''}"
                  f"{', batch norm' * len(tail.batch_norms)} */\n")
    consts.append(_words(f"{name}_wl", tail.bits))
    fmt = lambda v: _c_hex_float(v, p.dtype)  # noqa: E731
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
    dot = (f"fb_dot_uint8(pixels, {name}_wl + c * {nw_in}, {tail.n_in}, total)" if tail.uint8_input else
           f"fb_dot_packed(h[{cur}], {name}_wl + c * {nw_in}, {nw_in}, {tail.n_in})")
    step_text = "".join(f"        {s}\n" for s in steps)
    body.append(f"""\
    /* logits: float(dot) then the float32 steps of fastbin.reference.dense_affine / bn_affine, in order */
    for (c = 0; c < {tail.n_out}; ++c) {{
        {name}_real z = ({name}_real){dot};
{step_text}        logits[c] = z;
    }}
""")
    helpers = (_POPCOUNT if need_packed else "") + ("\n" + _DOT_U8 if need_u8 else "")
    c_source = f"""\
/* {name}.c: a fastbin model ({layers}) exported to C{origin}. Generated by `fastbin export-c`; do not edit.
 * Weights: packed sign bits, uint32 words, bit 1 means -1, LSB first; rows padded with 0 bits to whole words.
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
    {name}_real logits[{p.n_classes}];
    int best = 0, c;
    {name}_logits(pixels, logits);
    /* numpy.argmax: the first maximum; a NaN wins at once */
    for (c = 1; c < {p.n_classes} && logits[best] == logits[best]; ++c)
        if (logits[c] > logits[best] || logits[c] != logits[c])
            best = c;
    return best;
}}
"""
    return header, c_source


def export_c(model, out_dir, *, name="fastbin", source=None):
    """Write ``NAME.h`` and ``NAME.c`` for ``model`` into ``out_dir`` (created if missing; its parent must exist),
    each atomically (:func:`fastbin.io.atomic.atomic_write`: a failed export leaves the previous file).

    ``model``: a model file path, a ``fastbin.nn`` model, or its folded ``InferenceModel``; ``source``: the file
    name the comments cite (default: ``model`` when it is a path). Returns the two paths.
    Raises ``ValueError`` for a model kind that cannot be exported exactly (see :data:`SUPPORTED`)."""
    _check_name(name)
    if not isinstance(out_dir, (str, os.PathLike)):
        raise TypeError(f"out_dir must be a path, got {type(out_dir).__name__}")
    if isinstance(model, (str, os.PathLike)):
        from ..nn.model import load

        source, model = os.fspath(model) if source is None else source, load(model)
    if hasattr(model, "to_inference"):
        model = model.to_inference()
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
