"""Binary convolutions on the runtime (issue 25): fastbin's folded conv engine (both engines)
against ONNX Runtime (``Conv`` with ±1 float32 weights and ``Sign``, one thread) and PyTorch
(one thread), each skipped when not installed.

Groups:

* ``conv_layer/3x3_64x64_14x14_batch<m>`` (m = 1, 128): one binary conv layer, 3x3, 64 -> 64
  channels, "same" with one-padding, on 14x14 ±1 activations, its batch norm and sign folded
  into integer thresholds per channel (random, some flipped): packed words in, packed words
  out for fastbin (``engine.patches`` then ``engine.dense_sign``: the bitpacked im2col and the
  fused binary product + threshold + packing, what a stage of ``PackedConvModel`` does);
  ``Pad`` (value 1) -> ``Conv`` -> ``Add`` -> ``Mul`` -> ``Sign`` on ±1 float32 NCHW for ONNX
  Runtime; ``F.pad`` -> ``conv2d`` -> the same affine -> ``sign`` for PyTorch. The signs are
  checked equal before timing.
* ``bnn_conv/batch<m>`` (m = 1, 128, 10000): ``fastbin.nn.model.bnn_conv()`` (four binary 3x3
  conv layers of 32, 32, 64, 64 channels, 2x2 max pooling after the 2nd and 4th, batch norm and
  sign after each, a binary dense layer to 10 and a batch norm on the logits), untrained
  weights with batch-norm statistics taken from random images and some negative gammas,
  saved and loaded with ``fastbin.runtime.load``; raw uint8 images (m, 28, 28, 1). ONNX
  Runtime and PyTorch run the same folded model in floats: conv (the first zero-padded, the
  others padded with +1), max pooling on the integer conv outputs, the folded thresholds as an
  affine and ``Sign``, the dense tail with the runtime's float32 affine ops, ``ArgMax``. The
  classes are checked equal before timing.
"""
import numpy as np
import pytest
from benchutil import measure, size

import fastbin.runtime as runtime
from fastbin.nn import BatchNorm
from fastbin.nn.model import bnn_conv
from fastbin.reference import conv_geometry, unpack_signs
from fastbin.runtime.conv import pixel_words
from fastbin.runtime.model import SignWeights

ENGINES = {"runtime-numba": "numba", "runtime-numpy": "numpy"}
LAYER_BATCHES = {"batch1": 1, "batch128": size(128, 8)}
MODEL_BATCHES = {"batch1": 1, "batch128": size(128, 8), "batch10000": size(10_000, 64)}
IMPLS = (*ENGINES, "onnxruntime", "torch")


# ---------------------------------------------------------------------------
# ONNX graphs
# ---------------------------------------------------------------------------
def _ort_session(ort, model):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _threshold_affine(t, flip):
    """``(shift, sign)``: ``Sign((z + shift) * sign)`` is -1 exactly where the runtime's bit is 1
    (``z < t``, or ``z > t`` where ``flip``) for integer ``z`` (the threshold moved by 0.5)."""
    t = np.asarray(t, np.float64)
    shift = np.where(flip, -(t + 0.5), -(t - 0.5)).astype(np.float32)
    return shift, np.where(flip, -1.0, 1.0).astype(np.float32)


def _oihw(w_bits, kh, kw, c_in):
    """±1 float32 (c_out, c_in, kh, kw) of packed conv weights (rows (i * kw + j) * c_in + ch)."""
    w = unpack_signs(w_bits, np.float32).reshape(-1, kh, kw, c_in)
    return np.ascontiguousarray(w.transpose(0, 3, 1, 2))


class _Graph:
    """A small builder of an ONNX graph (opset 17) on NCHW tensors."""

    def __init__(self):
        self.nodes, self.inits, self.count = [], [], 0

    def const(self, value, dtype=np.float32):
        from onnx import numpy_helper

        self.count += 1
        name = f"c{self.count}"
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype), name))
        return name

    def op(self, kind, inputs, **attrs):
        from onnx import helper

        self.count += 1
        out = f"v{self.count}"
        self.nodes.append(helper.make_node(kind, inputs, [out], **attrs))
        return out

    def sign_stage(self, x, w, pads, pad_value, stride, t, flip, pool):
        """[Pad +1] -> Conv -> [MaxPool] -> Add -> Mul -> Sign on NCHW ``x``; ``pads`` (top,
        left, bottom, right)."""
        top, left, bottom, right = pads
        if pad_value == 1 and any(pads):
            x = self.op("Pad", [x, self.const([0, 0, top, left, 0, 0, bottom, right], np.int64), self.const(1.0)])
            pads = (0, 0, 0, 0)
        z = self.op("Conv", [x, self.const(w)], pads=list(pads), strides=list(stride))
        if pool is not None:
            z = self.op("MaxPool", [z], kernel_shape=list(pool[0]), strides=list(pool[1]))
        shift, sign = _threshold_affine(t, flip)
        z = self.op("Add", [z, self.const(shift.reshape(-1, 1, 1))])
        z = self.op("Mul", [z, self.const(sign.reshape(-1, 1, 1))])
        return self.op("Sign", [z])

    def model(self, x_elem, x_shape, out, out_elem):
        from onnx import helper

        graph = helper.make_graph(self.nodes, "fastbin_conv", [helper.make_tensor_value_info("x", x_elem, x_shape)],
                                  [helper.make_tensor_value_info(out, out_elem, None)], initializer=self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = min(model.ir_version, 9)
        return model


def _pads(shape, conv):
    _, _, (top, bottom), (left, right) = conv_geometry(shape[0], shape[1], conv["kernel_size"], conv["stride"],
                                                       conv["padding"])
    return top, left, bottom, right


# ---------------------------------------------------------------------------
# One binary conv layer, 3x3 64 -> 64 on 14x14
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def layer():
    """The layer's weights, thresholds and flips (random)."""
    rng = np.random.default_rng(25)
    from fastbin.reference import pack_weights

    w = rng.standard_normal((3 * 3 * 64, 64)).astype(np.float32)
    t = rng.integers(-40, 41, 64).astype(np.int64)
    flip = rng.random(64) < 0.3
    return pack_weights(w), t, flip


def _layer_input(rng, m):
    bits = rng.random((m, 14, 14, 64)) < 0.5
    words = np.packbits(bits, axis=-1, bitorder="little").view("<u8").astype(np.uint64)
    return bits, words


@pytest.mark.parametrize("batch_id", list(LAYER_BATCHES))
@pytest.mark.parametrize("impl", IMPLS)
def test_binary_conv_layer(benchmark, request, rng, layer, batch_id, impl):
    m = LAYER_BATCHES[batch_id]
    w_bits, t, flip = layer
    bits, words = _layer_input(rng, m)
    g = (3, 3, 1, 1, 1, 1, 14, 14, "same")
    expected = np.empty((m, 14, 14, 64), bool)  # the spec: im2col of ±1, exact product, threshold
    from fastbin.reference import im2col

    dot = im2col(np.where(bits, -1.0, 1.0), 3, 1, "same", pad_value=1.0) @ unpack_signs(w_bits, np.float64).T
    expected[...] = np.where(flip, dot > t, dot < t).reshape(m, 14, 14, 64)
    if impl in ENGINES:
        engine = runtime.get_engine(ENGINES[impl])
        weights = SignWeights(engine, pixel_words(w_bits, 9, 64), np.float32)  # 64 channels: no padding bits

        def fn():
            return engine.dense_sign(engine.patches(words, g, np.uint64(0)), weights, t, flip)

        def to_bits(out):
            return np.unpackbits(out.view(np.uint8), axis=1, bitorder="little").astype(bool).reshape(m, 14, 14, 64)
    elif impl == "onnxruntime":
        ort = request.getfixturevalue("onnxruntime")
        from onnx import TensorProto

        graph = _Graph()
        out = graph.sign_stage("x", _oihw(w_bits, 3, 3, 64), (1, 1, 1, 1), 1, (1, 1), t, flip, None)
        session = _ort_session(ort, graph.model(TensorProto.FLOAT, ["m", 64, 14, 14], out, TensorProto.FLOAT))
        feed = {"x": np.ascontiguousarray(np.where(bits, -1.0, 1.0).astype(np.float32).transpose(0, 3, 1, 2))}

        def fn():
            return session.run([out], feed)[0]

        def to_bits(out):
            return out.transpose(0, 2, 3, 1) < 0
    else:
        torch = request.getfixturevalue("torch")
        tw = torch.from_numpy(_oihw(w_bits, 3, 3, 64))
        shift, sign = (torch.from_numpy(a.reshape(1, -1, 1, 1)) for a in _threshold_affine(t, flip))
        tx = torch.from_numpy(np.ascontiguousarray(np.where(bits, -1.0, 1.0).astype(np.float32).transpose(0, 3, 1, 2)))
        functional = torch.nn.functional

        def fn():
            with torch.no_grad():
                z = functional.conv2d(functional.pad(tx, (1, 1, 1, 1), value=1.0), tw)
                return torch.sign((z + shift) * sign)

        def to_bits(out):
            return out.numpy().transpose(0, 2, 3, 1) < 0
    result = measure(benchmark, fn, group=f"conv_layer/3x3_64x64_14x14_{batch_id}", impl=impl,
                     shape=f"3x3 conv 64->64, 14x14, same (one-padding), batch {m}, ±1 in, signs out")
    np.testing.assert_array_equal(to_bits(result), expected, err_msg=f"{impl} signs != the specification")


# ---------------------------------------------------------------------------
# The bnn-conv model
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bnn_file(tmp_path_factory):
    """bnn_conv() with batch-norm statistics from random images (some gammas negative), saved."""
    rng = np.random.default_rng(0)
    model = bnn_conv(seed=0)
    x = rng.integers(0, 256, (64, 28, 28, 1), dtype=np.uint8)
    h = x
    for layer in model.layers:
        if isinstance(layer, BatchNorm):
            z = h.reshape(-1, layer.n).astype(np.float64)
            layer.buffers["running_mean"][...] = z.mean(axis=0)
            layer.buffers["running_var"][...] = z.var(axis=0) + 1.0
            layer.params["gamma"][...] *= np.where(rng.random(layer.n) < 0.3, -1, 1)
            layer.params["beta"][...] = rng.normal(0, 0.2, layer.n)
        h = layer.forward(h)
    path = tmp_path_factory.mktemp("bnn-conv") / "bnn_conv.fbm"
    model.save(path)
    return path


def _folded_parts(path):
    """The numpy engine's folded model: its stages carry the conv configs, packed weights,
    thresholds, pools and shapes the peers' graphs are built from."""
    return runtime.load(path, engine="numpy")


def _onnx_bnn(ort, path):
    from onnx import TensorProto

    folded = _folded_parts(path)
    graph = _Graph()
    x = graph.op("Cast", ["x"], to=TensorProto.FLOAT)
    for k, stage in enumerate(folded.stages[:-1]):
        conv = stage.conv
        kh, kw = conv["kernel_size"]
        t, flip = stage.thresholds["uint8" if k == 0 else "packed"]
        pool = stage.pool_before
        assert not stage.pools_after
        x = graph.sign_stage(x, _oihw(stage.w_bits, kh, kw, conv["in_channels"]), _pads(stage.in_shape, conv),
                             int(conv["pad_value"]), conv["stride"], t, flip, pool)
    tail = folded.stages[-1]
    h, w, c = tail.in_shape
    # the runtime flattens NHWC (channel fastest): the dense rows permuted to NCHW order
    dense = unpack_signs(tail.dense_bits, np.float32).reshape(-1, h, w, c).transpose(0, 3, 1, 2).reshape(-1, h * w * c)
    z = graph.op("MatMul", [graph.op("Flatten", [x], axis=1), graph.const(np.ascontiguousarray(dense.T))])
    affine = tail.affine
    for op, value in (("Mul", affine.scale), ("Add", affine.bias)):
        if value is not None:
            z = graph.op(op, [z, graph.const(value)])
    if affine.bn is not None:
        mean, k, beta = affine.bn
        for op, value in (("Sub", mean), ("Mul", k), ("Add", beta)):
            z = graph.op(op, [z, graph.const(value)])
    out = graph.op("ArgMax", [z], axis=1, keepdims=0)
    return _ort_session(ort, graph.model(TensorProto.UINT8, ["m", 1, 28, 28], out, TensorProto.INT64)), out


def _torch_bnn(torch, path):
    folded = _folded_parts(path)
    functional = torch.nn.functional
    stages = []
    for k, stage in enumerate(folded.stages[:-1]):
        conv = stage.conv
        kh, kw = conv["kernel_size"]
        top, left, bottom, right = _pads(stage.in_shape, conv)
        shift, sign = (torch.from_numpy(a.reshape(1, -1, 1, 1))
                       for a in _threshold_affine(*stage.thresholds["uint8" if k == 0 else "packed"]))
        stages.append((torch.from_numpy(_oihw(stage.w_bits, kh, kw, conv["in_channels"])), (left, right, top, bottom),
                       float(conv["pad_value"]), tuple(conv["stride"]), stage.pool_before, shift, sign))
    tail = folded.stages[-1]
    h, w, c = tail.in_shape
    dense = unpack_signs(tail.dense_bits, np.float32).reshape(-1, h, w, c).transpose(0, 3, 1, 2).reshape(-1, h * w * c)
    dense = torch.from_numpy(np.ascontiguousarray(dense.T))
    affine = tail.affine
    consts = [(op, torch.from_numpy(np.asarray(v, np.float32))) for op, v in
              (("mul", affine.scale), ("add", affine.bias)) if v is not None]
    if affine.bn is not None:
        consts += [(op, torch.from_numpy(np.asarray(v, np.float32))) for op, v in zip(("sub", "mul", "add"), affine.bn)]

    def forward(x):
        with torch.no_grad():
            h = x.float()
            for w_, pads, pad_value, stride, pool, shift, sign in stages:
                h = functional.conv2d(functional.pad(h, pads, value=pad_value), w_, stride=stride)
                if pool is not None:
                    h = functional.max_pool2d(h, tuple(pool[0]), tuple(pool[1]))
                h = torch.sign((h + shift) * sign)
            z = h.flatten(1) @ dense
            for op, v in consts:
                z = getattr(z, op)(v)
            return torch.argmax(z, dim=1)

    return forward


@pytest.mark.parametrize("batch_id", list(MODEL_BATCHES))
@pytest.mark.parametrize("impl", IMPLS)
def test_bnn_conv_model(benchmark, request, rng, bnn_file, batch_id, impl):
    m = MODEL_BATCHES[batch_id]
    x = rng.integers(0, 256, (m, 28, 28, 1), dtype=np.uint8)
    if impl in ENGINES:
        model = runtime.load(bnn_file, engine=ENGINES[impl])

        def fn():
            return model.predict(x)
    elif impl == "onnxruntime":
        session, out = _onnx_bnn(request.getfixturevalue("onnxruntime"), bnn_file)
        feed = {"x": x.reshape(m, 1, 28, 28)}  # one channel: NHWC and NCHW are the same bytes

        def fn():
            return session.run([out], feed)[0]
    else:
        torch = request.getfixturevalue("torch")
        forward = _torch_bnn(torch, bnn_file)
        tx = torch.from_numpy(x.reshape(m, 1, 28, 28))

        def fn():
            return forward(tx).numpy()
    classes = measure(benchmark, fn, group=f"bnn_conv/{batch_id}", impl=impl, slow=m >= 10_000,
                      shape=f"bnn_conv 32-32-64-64 (3x3, pool 2x2 x2) -> 10, uint8 (m, 28, 28, 1), batch {m}")
    expected = runtime.load(bnn_file, engine="numba").predict(x)
    np.testing.assert_array_equal(np.asarray(classes), expected, err_msg=f"{impl} classes != runtime (numba)")


def test_bnn_conv_is_not_trivial(bnn_file):
    """The timed model's classes vary (its signs are not constant)."""
    rng = np.random.default_rng(1)
    classes = runtime.load(bnn_file, engine="numba").predict(rng.integers(0, 256, (200, 28, 28, 1), dtype=np.uint8))
    assert len(np.unique(classes)) > 1
