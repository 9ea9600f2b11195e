"""C export (``fastbin export-c``): the exported C99 model, compiled with the host gcc (and, when installed, the
AArch64 / armhf cross compilers run under QEMU user mode), gives the same predictions and bit-identical logits as
the Python folded model on random uint8 images (all 10,000 Fashion-MNIST test images in the slow test), and fits
the Cortex-M4 flash / RAM targets. Every compiler test skips with a reason when its tool is missing (Debian:
gcc, gcc-aarch64-linux-gnu, gcc-arm-linux-gnueabihf, qemu-user-static, gcc-arm-none-eabi, libnewlib-arm-none-eabi).
"""
import functools
import os
import shutil
import subprocess

import numpy as np
import pytest

from fastbin.nn.model import mlp, softmax_regression
from fastbin.tools import cli
from fastbin.tools.demo import RECIPES
from fastbin.tools.export_c import export_c, generate, plan

# The Python side runs the jitted kernels, or plain NumPy under NUMBA_DISABLE_JIT (same bits, much faster there).
BACKEND = "reference" if os.environ.get("NUMBA_DISABLE_JIT") == "1" else "fastbin"
CFLAGS = ["-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-ffp-contract=off"]

# host: (compiler, extra flags, runner prefix)
TARGETS = {
    "host": ("gcc", [], []),
    "aarch64": ("aarch64-linux-gnu-gcc", ["-static"], ["qemu-aarch64-static"]),
    "armhf": ("arm-linux-gnueabihf-gcc", ["-static"], ["qemu-arm-static"]),
}

DRIVER = r"""
#include <stdio.h>
#include "NAME.h"

/* reads raw images (UPNAME_N_IN bytes each) from argv[1]; writes, per image, the int32 class then the logits */
int main(int argc, char **argv)
{
    static uint8_t px[UPNAME_N_IN];
    NAME_real logits[UPNAME_N_CLASSES];
    int32_t pred;
    FILE *in, *out;
    if (argc != 3)
        return 2;
    in = fopen(argv[1], "rb");
    out = fopen(argv[2], "wb");
    if (!in || !out)
        return 3;
    while (fread(px, 1, UPNAME_N_IN, in) == UPNAME_N_IN) {
        pred = NAME_predict(px);
        NAME_logits(px, logits);
        if (fwrite(&pred, sizeof pred, 1, out) != 1 || fwrite(logits, sizeof logits[0], UPNAME_N_CLASSES, out)
            != UPNAME_N_CLASSES)
            return 4;
    }
    return fclose(out) != 0;
}
"""


def _need(*tools):
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (Debian: see this file's docstring)")


def _randomize_bn(model, seed):
    """Trained-looking batch norms: any mean, variance, and gammas of both signs (flipped thresholds)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if layer.kind == "batchnorm":
            n = layer.n
            layer.buffers["running_mean"][:] = rng.normal(0, 3, n)
            layer.buffers["running_var"][:] = rng.uniform(0.1, 20, n)
            layer.params["gamma"][:] = rng.normal(0, 1, n)
            layer.params["beta"][:] = rng.normal(0, 0.5, n)
    return model


def _train(model, steps, seed):
    from fastbin.nn.optim import Adam

    rng = np.random.default_rng(seed)
    opt = Adam(1e-2)
    for _ in range(steps):
        x = rng.integers(0, 256, (64, model.n_in), dtype=np.uint8)
        model.train_step(x, rng.integers(0, model.n_classes, 64), opt)
    return model


def _models():
    """name -> builder of a supported model (the demo's 1-bit kinds and odd shapes)."""
    return {
        "bnn": lambda: _randomize_bn(RECIPES["bnn"].build(BACKEND, 1, None), 1),
        "bnn-trained": lambda: _train(mlp([784, 64, 32, 10], binary_weights=True, binary_activations=True,
                                          seed=2, backend=BACKEND), 5, 2),
        "bnn-odd-no-bn": lambda: mlp([100, 33, 65, 7], binary_weights=True, binary_activations=True,
                                     batch_norm=False, output_bn=False, seed=3, backend=BACKEND),
        "bnn-scale-deep": lambda: _randomize_bn(mlp([130, 64, 31, 97, 5], binary_weights=True,
                                                    binary_activations=True, scale=True, seed=4,
                                                    backend=BACKEND), 4),
        "bnn-float64": lambda: _randomize_bn(mlp([70, 40, 12], binary_weights=True, binary_activations=True,
                                                 seed=5, backend=BACKEND, dtype="float64"), 5),
        "nb1-binary": lambda: RECIPES["nb1-binary"].build(BACKEND, 6, None),
        "nb1-binary-trained": lambda: _train(softmax_regression(784, 10, binary_weights=True, seed=7,
                                                                backend=BACKEND), 5, 7),
        "binary-softmax": lambda: _randomize_bn(RECIPES["binary-softmax"].build(BACKEND, 8, None), 8),
        "binary-softmax-offset-vector": lambda: _randomize_bn(
            mlp([50, 3], binary_weights=True, scale=True, output_bn=True, seed=9, backend=BACKEND,
                input_offset=np.random.default_rng(9).uniform(0, 1, 50)), 9),
    }


def _images(n_in, m=300, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (m, n_in), dtype=np.uint8)
    x[0], x[1] = 0, 255
    x[2:40] = np.where(rng.random((38, n_in)) < 0.5, 0, 255)  # saturated pixels, as in real images
    return x


def _run_c(tmp_path, model, x, target="host", name="fastbin"):
    """Export ``model``, compile it with ``target``'s compiler and the driver, run it on ``x``:
    (predictions (m,), logits (m, n_classes))."""
    cc, flags, runner = TARGETS[target]
    _need(cc, *runner)
    out = tmp_path / f"{name}-{target}"
    export_c(model, out, name=name)
    (out / "driver.c").write_text(DRIVER.replace("UPNAME", name.upper()).replace("NAME", name))
    exe = out / "driver"
    build = subprocess.run([cc, *CFLAGS, *flags, "-o", str(exe), str(out / "driver.c"), str(out / f"{name}.c")],
                           capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    (out / "images.bin").write_bytes(np.ascontiguousarray(x, np.uint8).tobytes())
    run = subprocess.run([*runner, str(exe), str(out / "images.bin"), str(out / "out.bin")],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    dtype = np.dtype(model.dtype)
    record = np.dtype([("pred", "<i4"), ("logits", dtype.newbyteorder("<"), (model.n_classes,))])
    result = np.fromfile(out / "out.bin", dtype=record)
    assert result.shape == (len(x),)
    return result["pred"], result["logits"]


def _compare(tmp_path, model, x, target="host"):
    folded = model.to_inference()
    logits = folded.forward(x)
    pred, c_logits = _run_c(tmp_path, model, x, target)
    np.testing.assert_array_equal(pred, folded.predict(x))
    np.testing.assert_array_equal(c_logits.view(f"u{logits.itemsize}"), logits.view(f"u{logits.itemsize}"))


def test_predict_ties_take_the_first_maximum(tmp_path):
    """All-equal logits (zero weights' dot is the same for every class when all pixels are 0): class 0, as
    numpy.argmax."""
    model = softmax_regression(16, 4, binary_weights=True, init="zeros", seed=0, backend=BACKEND)
    x = np.zeros((3, 16), np.uint8)
    pred, logits = _run_c(tmp_path, model, x)
    assert (logits == logits[:, :1]).all()
    np.testing.assert_array_equal(pred, [0, 0, 0])


def _packed_bytes(model):
    """Packed weight bytes as fastbin stores them (uint64 words per row)."""
    return sum(8 * layer.n_out * -(-layer.n_in // 64) for layer in model.layers if layer.kind == "dense")


def _cortex_m4_sizes(model, out_dir):
    """Export ``model`` to ``out_dir`` and compile it for Cortex-M4 (newlib-nano, -Os): (text, data, bss, the sum of
    every function's stack frame, arm-none-eabi-size's output)."""
    _, c = export_c(model, out_dir)
    obj = out_dir / "fastbin.o"
    build = subprocess.run(["arm-none-eabi-gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-ffp-contract=off",
                            "-mcpu=cortex-m4", "-mthumb", "-Os", "-specs=nano.specs", "-fstack-usage", "-c", c,
                            "-o", str(obj)], capture_output=True, text=True, cwd=out_dir)
    assert build.returncode == 0, build.stderr
    size = subprocess.run(["arm-none-eabi-size", str(obj)], capture_output=True, text=True, check=True).stdout
    text, data, bss = (int(v) for v in size.splitlines()[1].split()[:3])
    stack = sum(int(line.split("\t")[1]) for line in (out_dir / "fastbin.su").read_text().splitlines())
    return text, data, bss, stack, size


def test_cortex_m4_flash_and_ram_targets(tmp_path):
    """The demo's fully binary model (bnn recipe, 784-200-100-10) for Cortex-M4 with newlib-nano: flash (text +
    data) <= packed weights + 4 KiB, RAM (data + bss + the worst-case stack of every function) <= 2 x the largest
    packed activation + 1 KiB."""
    _need("arm-none-eabi-gcc", "arm-none-eabi-size")
    model = _models()["bnn"]()
    text, data, bss, stack, size = _cortex_m4_sizes(model, tmp_path / "m4")
    largest_activation = max(4 * -(-n // 32) for n in [200, 100])  # packed uint32 words
    assert text + data <= _packed_bytes(model) + 4096, size
    assert data + bss + stack <= 2 * largest_activation + 1024, (size, stack)


def test_generated_source_is_deterministic_and_prefixed():
    model = _models()["bnn-odd-no-bn"]().to_inference()
    header, source = generate(plan(model), "digits")
    assert generate(plan(model), "digits") == (header, source)
    assert "int digits_predict(const uint8_t *pixels);" in header
    assert "void digits_logits(const uint8_t *pixels, digits_real *logits);" in header
    assert "malloc" not in source and "fastbin_" not in source


@pytest.mark.parametrize("build, match", [
    (lambda: RECIPES["nb1-float"].build(BACKEND, 0, None), "float-weight dense"),
    (lambda: RECIPES["binary-mlp"].build(BACKEND, 0, None), "tanh activation"),
    (lambda: mlp([20, 8, 3], binary_weights=True, activation="hardtanh", seed=0, backend=BACKEND),
     "hardtanh activation"),
])
def test_unsupported_kinds_raise_a_clear_error(tmp_path, build, match):
    with pytest.raises(ValueError, match=match) as info:
        export_c(build(), tmp_path / "out")
    assert "supported: fully binary MLPs" in str(info.value)
    assert not (tmp_path / "out").exists()


def test_bad_arguments(tmp_path):
    model = _models()["bnn-odd-no-bn"]()
    with pytest.raises(ValueError, match="C identifier"):
        export_c(model, tmp_path, name="2fast")
    with pytest.raises(TypeError, match="model must be"):
        export_c(object(), tmp_path)
    (tmp_path / "file").write_text("")
    with pytest.raises(NotADirectoryError):
        export_c(model, tmp_path / "file")


def test_cli_export_c(tmp_path, capsys):
    model = _models()["bnn-odd-no-bn"]()
    path = str(tmp_path / "m.fbm")
    model.save(path)
    assert cli.main(["export-c", path, "-o", str(tmp_path / "c"), "--name", "tiny"]) == 0
    assert "tiny.h" in capsys.readouterr().out
    assert (tmp_path / "c" / "tiny.h").is_file() and (tmp_path / "c" / "tiny.c").is_file()
    # the file's model exports the same text as the model itself
    assert (tmp_path / "c" / "tiny.c").read_text().split("\n", 1)[1] == \
        generate(plan(model.to_inference()), "tiny", path)[1].split("\n", 1)[1]


def test_cli_export_c_errors(tmp_path, capsys):
    assert cli.main(["export-c", str(tmp_path / "missing.fbm"), "-o", str(tmp_path / "c")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("fastbin: error: no such model file") and err.count("\n") == 1
    path = str(tmp_path / "float.fbm")
    RECIPES["nb1-float"].build(BACKEND, 0, None).save(path)
    assert cli.main(["export-c", path, "-o", str(tmp_path / "c")]) == 1
    err = capsys.readouterr().err
    assert "cannot export this model to C exactly" in err and err.count("\n") == 1
    with pytest.raises(SystemExit) as info:
        cli.main(["export-c", path, "-o", str(tmp_path / "c"), "--name", "a-b"])
    assert info.value.code == 2
    assert "C identifier" in capsys.readouterr().err
    (tmp_path / "file").write_text("")
    for out, fragment in [(tmp_path / "file", "not a directory"), (tmp_path / "no" / "c", "does not exist")]:
        assert cli.main(["export-c", path, "-o", str(out)]) == 1
        err = capsys.readouterr().err
        assert err.startswith("fastbin: error: cannot write C files") and fragment in err and err.count("\n") == 1


def test_cli_help_lists_export_c(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["--help"])
    assert info.value.code == 0 and "export-c" in capsys.readouterr().out
    with pytest.raises(SystemExit) as info:
        cli.main(["export-c", "--help"])
    assert info.value.code == 0 and "--name" in capsys.readouterr().out


@functools.cache
def _fashion_mnist():
    from fastbin.io.datasets import load_fashion_mnist

    try:
        return load_fashion_mnist(dtype="uint8", download=False)
    except FileNotFoundError as exc:
        return str(exc)


@functools.cache
def _trained(recipe):
    """A demo recipe's model after 200 steps on Fashion-MNIST (trained weights and batch norm statistics)."""
    from fastbin.nn.train import fit

    data = _fashion_mnist()
    model = RECIPES[recipe].build(BACKEND, 0, data)
    fit(model, RECIPES[recipe].optimizer(), data, steps=200, batch_size=256, eval_every=0, progress=False)
    return model


@pytest.mark.slow
@pytest.mark.parametrize("target", list(TARGETS))
@pytest.mark.parametrize("recipe", ["bnn", "binary-softmax", "nb1-binary"])
def test_fashion_mnist_test_set(tmp_path, recipe, target):
    """The demo's 1-bit recipes, trained briefly on Fashion-MNIST: the C predictions equal the folded model's
    on all 10,000 test images (logits bit for bit)."""
    data = _fashion_mnist()
    if isinstance(data, str):
        pytest.skip(f"Fashion-MNIST not installed: {data}")
    _need(TARGETS[target][0], *TARGETS[target][2])
    _compare(tmp_path, _trained(recipe), data.x_test, target)


def test_export_c_any_file_name_and_atomic_files(tmp_path, capsys, monkeypatch):
    """Issue 21, item 5: a model file name outside ASCII is exported (cited escaped in the ASCII C files);
    a failed export leaves the previous export's files as they were, and no temporary file."""
    model = _models()["bnn-odd-no-bn"]()
    out = tmp_path / "c"
    plain = str(tmp_path / "m.fbm")
    model.save(plain)
    assert cli.main(["export-c", plain, "-o", str(out), "--name", "tiny"]) == 0
    previous = {p: (out / p).read_bytes() for p in ("tiny.h", "tiny.c")}
    odd = str(tmp_path / "modèle-ü\u2013.fbm")
    model.save(odd)
    assert cli.main(["export-c", odd, "-o", str(out), "--name", "tiny"]) == 0, capsys.readouterr().err
    header = (out / "tiny.h").read_bytes()
    assert header.isascii() and b"mod\\xe8le-\\xfc\\u2013.fbm" in header
    assert (out / "tiny.c").read_bytes().split(b"\n", 1)[1] == previous["tiny.c"].split(b"\n", 1)[1]
    previous = {p: (out / p).read_bytes() for p in ("tiny.h", "tiny.c")}

    def full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    assert cli.main(["export-c", plain, "-o", str(out), "--name", "tiny"]) == 1
    assert "No space left on device" in capsys.readouterr().err
    assert sorted(os.listdir(out)) == ["tiny.c", "tiny.h"]
    assert {p: (out / p).read_bytes() for p in ("tiny.h", "tiny.c")} == previous


# -- binary conv networks (issue 25) ------------------------------------------------------------------------------


def _conv_bn(model, seed):
    """Trained-looking batch norms on a conv model: statistics near those of the test images' own activations
    (each channel's mean moved by up to a standard deviation, its variance scaled by 1/4 to 4), so that every
    stage's bits vary from pixel to pixel and from image to image; gammas of both signs (flipped thresholds: a
    pool before a batch norm with a negative gamma is the OR of the bits, a pool after the sign the AND of the
    flipped bits)."""
    rng = np.random.default_rng(seed)
    h = _images(model.n_in, m=64, seed=seed).reshape(-1, *model.input_shape)
    for layer in model.layers:
        if layer.kind == "batchnorm":
            n = layer.n
            z = np.asarray(h, np.float64).reshape(-1, n)
            mean, sd = z.mean(axis=0), z.std(axis=0) + 1e-3
            layer.buffers["running_mean"][:] = mean + rng.uniform(-1, 1, n) * sd
            layer.buffers["running_var"][:] = (sd * rng.uniform(0.5, 2, n)) ** 2
            layer.params["gamma"][:] = rng.normal(0, 1, n)
            layer.params["beta"][:] = rng.normal(0, 0.1, n)
        h = layer.forward(h)
    return model


def _odd_conv(dtype="float32"):
    """Odd shapes: 2-channel pixels, a (3, 2) kernel with stride (2, 1) and one-padding on raw pixels, alpha and
    biases, 35 channels (two words per pixel, padding bits), two pools after a sign with flipped channels (one
    fused, one in place), a pool before a sign without batch norm, a stride-2 "same" conv on packed bits."""
    from fastbin.nn import Sign
    from fastbin.nn.conv import Conv2D, Flatten, MaxPool2D
    from fastbin.nn.layers import BatchNorm, Dense
    from fastbin.nn.model import sequential

    kw = dict(dtype=dtype, backend=BACKEND)
    layers = [Conv2D(2, 7, (3, 2), stride=(2, 1), padding="same", pad_value=1, scale=True, rng=0, **kw),
              BatchNorm(7, dtype=dtype), Sign(),
              Conv2D(7, 35, 3, padding="valid", rng=1, **kw), BatchNorm(35, dtype=dtype), Sign(),
              MaxPool2D(2, stride=1), MaxPool2D((1, 2)),
              Conv2D(35, 6, 2, stride=2, padding="same", bias=False, rng=2, **kw), MaxPool2D(2, stride=1), Sign(),
              Flatten(), Dense(6, 4, binary=True, scale=True, rng=3, **kw)]
    return _conv_bn(sequential(layers, (11, 9, 2), backend=BACKEND, dtype=dtype), 3)


def _conv_models():
    """name -> builder of a supported conv model."""
    from fastbin.nn.model import bnn_conv

    return {
        "bnn-conv": lambda: _conv_bn(bnn_conv((28, 28, 1), 10, seed=1, backend=BACKEND), 1),
        "bnn-conv-rgb-scale": lambda: _conv_bn(bnn_conv((12, 10, 3), 5, channels=(5, 33, 8, 40), scale=True, seed=2,
                                                        backend=BACKEND), 2),
        "conv-odd": _odd_conv,
        "conv-odd-float64": lambda: _odd_conv("float64"),
    }


def _all_models():
    return {**_models(), **_conv_models()}


@pytest.mark.parametrize("kind", list(_all_models()))
def test_host_c_equals_folded_model_bit_for_bit(tmp_path, kind):
    model = _all_models()[kind]()
    _compare(tmp_path, model, _images(model.n_in))


@pytest.mark.parametrize("target", ["aarch64", "armhf"])
@pytest.mark.parametrize("kind", ["bnn", "bnn-odd-no-bn", "bnn-float64", "binary-softmax",
                                  "bnn-conv", "bnn-conv-rgb-scale", "conv-odd", "conv-odd-float64"])
def test_cross_c_under_qemu_equals_folded_model(tmp_path, target, kind):
    model = _all_models()[kind]()
    m, seed = (200, 1) if kind in _models() else (100, 2)  # conv images cost more under QEMU
    _compare(tmp_path, model, _images(model.n_in, m=m, seed=seed), target)


def test_conv_export_is_deterministic_prefixed_and_static():
    model = _conv_models()["conv-odd"]().to_inference()
    header, source = generate(plan(model), "tiny")
    assert generate(plan(model), "tiny") == (header, source)
    assert "int tiny_predict(const uint8_t *pixels);" in header and "#define TINY_N_IN 198" in header
    assert "#define TINY_HEIGHT 11\n#define TINY_WIDTH 9\n#define TINY_CHANNELS 2\n" in header
    assert "malloc" not in source and "fastbin_" not in source
    assert source.count("fb_conv_stage(") == 4 and source.count("fb_pool_and(") == 2  # 3 calls + 1 definition


def _conv_packed_bytes(model):
    """Packed weight bytes as fastbin stores them (uint64 words per row) of every conv and dense layer."""
    return sum(8 * layer.n_out * -(-layer.n_in // 64) for layer in model.layers if layer.kind in ("dense", "conv2d"))


def test_cortex_m4_conv_flash_and_ram_targets(tmp_path):
    """The issue's bnn-conv network (four binary 3x3 convs of 32, 32, 64, 64 channels, 2x2 max pools, a binary
    output layer, 28x28x1 uint8) for Cortex-M4 with newlib-nano: flash (text + data) <= packed weights + 8 KiB;
    RAM (data + bss + every function's stack frame, summed: more than the deepest call chain) <= 2 x the largest
    packed activation map + 2 KiB."""
    _need("arm-none-eabi-gcc", "arm-none-eabi-size")
    model = _conv_models()["bnn-conv"]()
    text, data, bss, stack, size = _cortex_m4_sizes(model, tmp_path / "m4")
    largest_map = max(4 * layer.output_positions * -(-layer.filters // 32) for layer in model.layers
                      if layer.kind == "conv2d")
    assert largest_map == 28 * 28 * 32 // 8
    assert text + data <= _conv_packed_bytes(model) + 8192, size
    assert data + bss + stack <= 2 * largest_map + 2048, (size, stack)


def test_unsupported_conv_models_raise_a_clear_error(tmp_path):
    from fastbin.nn import Sign
    from fastbin.nn.conv import Conv2D, Flatten
    from fastbin.nn.layers import Dense
    from fastbin.nn.model import bnn_conv, sequential

    with pytest.raises(ValueError, match="supported: .*conv networks") as info:
        export_c(bnn_conv((8, 8, 1), 3, channels=(2, 2, 2, 2), activation="hardtanh", seed=0, backend=BACKEND),
                 tmp_path / "out")
    assert "cannot export this model to C exactly" in str(info.value)
    zero_padded = sequential([Conv2D(1, 3, 3, padding="same", rng=0), Sign(),
                              Conv2D(3, 3, 3, padding="same", pad_value=0, rng=1), Sign(), Flatten(),
                              Dense(8 * 8 * 3, 2, binary=True, rng=2)], (8, 8, 1), backend=BACKEND)
    with pytest.raises(ValueError, match="pads its .*input with 0"):
        export_c(zero_padded, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_cli_export_c_conv_file(tmp_path, capsys):
    model = _conv_models()["conv-odd"]()
    path = str(tmp_path / "conv.fbm")
    model.save(path)
    assert cli.main(["export-c", path, "-o", str(tmp_path / "c"), "--name", "conv"]) == 0
    assert "conv.h" in capsys.readouterr().out
    # the file (folded at load by fastbin.nn.load) exports the same C as the model itself
    assert (tmp_path / "c" / "conv.c").read_text().split("\n", 1)[1] == \
        generate(plan(model.to_inference()), "conv", path)[1].split("\n", 1)[1]


@functools.cache
def _trained_bnn_conv():
    """The issue's bnn-conv network after 20 Adam steps on Fashion-MNIST (trained weights, batch norm
    statistics of real images)."""
    from fastbin.nn.model import bnn_conv
    from fastbin.nn.optim import Adam
    from fastbin.nn.train import fit

    data = _fashion_mnist()
    model = bnn_conv((28, 28, 1), 10, seed=0, backend=BACKEND)
    fit(model, Adam(5e-3), data, steps=20, batch_size=128, eval_every=0, progress=False)
    return model


@pytest.mark.slow
@pytest.mark.parametrize("target", list(TARGETS))
def test_fashion_mnist_test_set_bnn_conv(tmp_path, target):
    """bnn-conv, trained briefly on Fashion-MNIST: the C predictions equal the folded model's on all 10,000 test
    images (logits bit for bit)."""
    data = _fashion_mnist()
    if isinstance(data, str):
        pytest.skip(f"Fashion-MNIST not installed: {data}")
    _need(TARGETS[target][0], *TARGETS[target][2])
    logits = _bnn_conv_test_logits()
    pred, c_logits = _run_c(tmp_path, _trained_bnn_conv(), data.x_test, target)
    np.testing.assert_array_equal(pred, np.argmax(logits, axis=1))  # ConvInferenceModel.predict
    np.testing.assert_array_equal(c_logits.view("u4"), logits.view("u4"))


@functools.cache
def _bnn_conv_test_logits():
    """The folded (plain NumPy) model's logits on the 10,000 test images, once for the three targets."""
    return _trained_bnn_conv().to_inference().forward(_fashion_mnist().x_test)
