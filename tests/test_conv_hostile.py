"""Hostile conv model files (issue 25): zero or huge kernel sizes, strides, pool sizes and channel counts, and
layer lists whose shapes do not chain, are refused with ``ModelFileError`` by every loader before any payload
is copied (``fastbin.io.modelschema``'s header checks run on the declared layer list, with Python integers, before
the array table is compared and before ``load_arrays`` allocates anything)."""
import json
import subprocess
import sys

import numpy as np
import pytest

from fastbin import runtime
from fastbin.io import modelfile
from fastbin.io.modelfile import ModelFileError, save_arrays
from fastbin.io.modelschema import MAX_CONV_LAYER_ENTRIES, MAX_IMAGE_VALUES
from fastbin.nn.model import bnn_conv, load


@pytest.fixture(scope="module")
def contents():
    model = bnn_conv((8, 8, 1), 3, channels=(3, 4, 4, 5), seed=0, backend="reference")
    _, meta, arrays = model.file_contents()
    return meta, arrays


def _conv_indices(meta):
    return [i for i, layer in enumerate(meta["layers"]) if layer["kind"] == "conv2d"]


def _set(i, **values):
    return lambda m: m["layers"][i].update(values)


def _channels(m, n):
    """The first conv's filters set to ``n`` and the layers after it told, so the shapes still chain."""
    m["layers"][0]["filters"] = n
    m["layers"][1]["n"] = n  # its batch norm
    m["layers"][3]["in_channels"] = n


def _long_list(m):
    m["layers"][2:2] = [{"kind": "sign"}] * MAX_CONV_LAYER_ENTRIES


CASES = [
    ("kernel 0", _set(0, kernel_size=[0, 3]), r"kernel_size must be a list of 2 ints in \[1, "),
    ("kernel negative", _set(3, kernel_size=[3, -1]), r"kernel_size must be a list of 2 ints in \[1, "),
    ("kernel 2**63", _set(0, kernel_size=[2**63, 2**63]), r"kernel_size must be a list of 2 ints in \[1, "),
    ("kernel 4097 same", _set(0, kernel_size=[4097, 4097]), r"layers\[0\] \(conv2d\).*values per image, more than"),
    ("kernel fractional", _set(0, kernel_size=[1.5, 3]), r"kernel_size must be a list of 2 ints"),
    ("stride 0", _set(3, stride=[1, 0]), r"stride must be a list of 2 ints in \[1, "),
    ("stride 2**40", _set(0, stride=[2**40, 1]), r"stride must be a list of 2 ints in \[1, "),
    ("pool stride 2**63", lambda m: m["layers"][4].update(stride=[2**63, 2**63]), r"stride must be a list of 2 ints"),
    ("pool 0", lambda m: m["layers"][4].update(pool_size=[0, 2]), r"pool_size must be a list of 2 ints"),
    ("pool larger than the map", lambda m: m["layers"][4].update(pool_size=[9, 9]), r"layers\[4\] \(maxpool2d\)"),
    ("filters 0", _set(0, filters=0), r"layers\[0\]\.filters must be an int >= 1"),
    ("filters 2**20, chained", lambda m: _channels(m, 2**20), r"layers\[0\] \(conv2d\).*values per image"),
    ("filters 10**30, chained", lambda m: _channels(m, 10**30), r"layers\[0\] \(conv2d\).*values per image"),
    ("in_channels do not chain", _set(3, in_channels=4), r"layers\[3\] \(conv2d\) expects images of 4 channels"),
    ("input channels do not chain", lambda m: m["config"].update(input_shape=[8, 8, 2]),
     r"layers\[0\] \(conv2d\) expects images of 1 channels"),
    ("input 2**24 values, map larger", lambda m: m["config"].update(input_shape=[4096, 4096, 1]),
     r"layers\[0\] \(conv2d\).*values per image"),
    ("input too large", lambda m: m["config"].update(input_shape=[2**20, 2**20, 1]), "values per image"),
    ("a pool removed: flatten does not chain", lambda m: m["layers"].pop(11),
     r"layers\[14\] \(dense\) expects \(20,\) features, gets shape \[80\]"),
    ("two convs swapped", lambda m: m["layers"].__setitem__(slice(0, 4), [m["layers"][3], *m["layers"][1:3],
                                                                        m["layers"][0]]),
     r"layers\[0\] \(conv2d\) expects images of 3 channels"),
    ("a layer list too long", _long_list, f"at most {MAX_CONV_LAYER_ENTRIES}"),
]


@pytest.mark.parametrize("what, edit, match", CASES, ids=[c[0] for c in CASES])
def test_hostile_conv_geometry_is_refused_before_any_allocation(tmp_path, monkeypatch, contents, what, edit, match):
    meta, arrays = contents
    m = json.loads(json.dumps(meta))
    edit(m)
    path = tmp_path / "hostile.fbm"
    save_arrays(path, m, arrays)  # the arrays of the original model: the header is checked first
    monkeypatch.setattr(modelfile, "aligned_empty", lambda *a, **k: pytest.fail("allocated before the check"))
    for read in (lambda p: load(p, backend="reference"), lambda p: runtime.load(p, engine="numpy")):
        with pytest.raises(ModelFileError, match=match):
            read(path)


def test_largest_allowed_sizes_still_load(tmp_path):
    """The bounds are not off by one: a map of exactly MAX_IMAGE_VALUES values loads."""
    from fastbin.nn import Sign
    from fastbin.nn.conv import Conv2D, Flatten, MaxPool2D
    from fastbin.nn.layers import Dense
    from fastbin.nn.model import sequential

    side = 2**12  # 4096 x 4096 x 1 = MAX_IMAGE_VALUES values, 1x1 patches of 1 channel
    assert side * side == MAX_IMAGE_VALUES
    model = sequential([Conv2D(1, 1, 1, rng=0, backend="reference"), Sign(), MaxPool2D(2**11),
                        Flatten(), Dense(4, 2, binary=True, rng=1, backend="reference")], (side, side, 1),
                       backend="reference")
    path = tmp_path / "edge.fbm"
    model.save(path)
    assert load(path, backend="reference").input_shape == (side, side, 1)


def test_zero_padding_on_signs_is_refused_by_the_folding(tmp_path):
    """A conv after a sign with ``pad_value=0`` and "same" padding pads its ±1 input with a true 0, which the
    packed folded form (one-padding, bit 0 = +1) does not have: folding it raises NotImplementedError (it gave
    other logits than the unfolded model before), the unfolded model still loads."""
    from fastbin.nn import Dense, Sign
    from fastbin.nn.conv import Conv2D, Flatten
    from fastbin.nn.model import sequential

    model = sequential([Conv2D(1, 3, 3, padding="same", rng=0, backend="reference"), Sign(),
                        Conv2D(3, 3, 3, padding="same", pad_value=0, rng=1, backend="reference"), Sign(), Flatten(),
                        Dense(8 * 8 * 3, 2, binary=True, rng=2, backend="reference")], (8, 8, 1), backend="reference")
    with pytest.raises(NotImplementedError, match=r"layers\[2\] \(conv2d\) pads its ±1 input with 0"):
        model.to_inference()
    path = tmp_path / "zero.fbm"
    model.save(path)
    assert load(path, backend="reference").input_shape == (8, 8, 1)
    with pytest.raises(NotImplementedError, match="one-padding"):
        runtime.load(path, engine="numpy")
    # the command line: one line and exit code 1, no traceback
    images = tmp_path / "x.npy"
    np.save(images, np.zeros((2, 64), np.uint8))
    done = subprocess.run([sys.executable, "-m", "fastbin", "predict", str(path), str(images)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith("fastbin: error:") and "one-padding" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
