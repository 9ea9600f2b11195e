"""Command line: ``fastbin {train,eval,predict,summary,export-c,demo,bench}`` (also
``python -m fastbin ...``).

Exit codes: 0 success; 2 bad command-line arguments (argparse's usage
message, also for values out of range such as a layer size over
``MAX_LAYER_SIZE``); 1 an expected runtime failure (a missing, unreadable or
damaged model or input file, no dataset and no download, a full disk, an
output path that cannot be written, ...), reported as one line
``fastbin: error: ...`` on stderr, without a traceback. ``--debug`` (before
or after the command) prints the traceback as well. A closed stdout (``fastbin
predict ... | head -1``) ends the command quietly. Anything else is a bug and
keeps its traceback.

Arguments are checked before any data is loaded or any model is built.
"""
from __future__ import annotations

import argparse
import errno
import math
import os
import sys

__all__ = ["main", "build_parser", "CommandError", "MAX_LAYER_SIZE", "MAX_PARAMETERS"]

#: Limits on a model built from the command line (``--hidden``), checked
#: before anything is allocated: units per layer, and trainable parameters
#: (weights + biases; training holds about 4 float32 copies of them: the
#: weights, their gradient and Adam's two moments).
MAX_LAYER_SIZE = 65536
MAX_PARAMETERS = 50_000_000


class CommandError(Exception):
    """An expected failure of a command: ``main`` prints it as one line and
    returns 1."""

EPILOG = """examples:
  fastbin train -o bnn.fbm                        # binary MLP (1-bit weights and activations)
  fastbin train --recipe bnn -o bnn.fbm           # the demo's fully binary MLP, 10 epochs
  fastbin train --activation tanh --no-binary-weights --hidden 200,100 --lr 1e-3 -o mlp.fbm   # float MLP
  fastbin eval bnn.fbm --folded                   # test accuracy, folded packed inference
  fastbin train --data mine.npz --binary-weights --binary-activations -o mine.fbm   # your own data
  fastbin eval mine.fbm --data mine.npz           # accuracy on its x_test, y_test
  fastbin predict bnn.fbm images.npy -o labels.npy
  fastbin summary bnn.fbm
  fastbin export-c bnn.fbm -o out/                # C99 source for a microcontroller
  fastbin demo --quick
"""


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def _non_negative_int(text):
    value = _positive_int(text) if text != "0" else 0
    return value


def _number(text, ok, expected):
    """``float(text)`` if ``ok(value)``, else an ``ArgumentTypeError`` saying ``expected``."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text}")
    return value


def _positive_float(text):
    return _number(text, lambda v: 0 < v < float("inf"), "a finite number > 0")


def _non_negative_float(text):
    return _number(text, lambda v: 0 <= v < float("inf"), "a finite number >= 0")


def _fraction(text):
    return _number(text, lambda v: 0 <= v < 1, "a fraction in [0, 1)")


def _seed(text):
    """A seed for ``numpy.random.default_rng`` that a model file can record: an int in [0, 2**128)."""
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or not 0 <= value < 2**128:
        raise argparse.ArgumentTypeError(f"expected an integer in [0, 2**128), got {text!r}")
    return value


def _sizes(text):
    try:
        sizes = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated layer sizes like 200,100, got {text!r}") from None
    if any(not 1 <= s <= MAX_LAYER_SIZE for s in sizes):
        raise argparse.ArgumentTypeError(f"layer sizes must be in [1, {MAX_LAYER_SIZE}], got {text!r}")
    return sizes


def _c_identifier(text):
    if not text.isascii() or not text.replace("_", "a").isalnum() or text[0].isdigit():
        raise argparse.ArgumentTypeError(f"expected a C identifier (letters, digits, _), got {text!r}")
    return text


def _parameter_count(sizes):
    return sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:]))


def _data_args(p):
    p.add_argument("--dataset", choices=["fashion-mnist", "mnist"], default="fashion-mnist",
                   help="dataset (default: fashion-mnist; Debian's copy is used when installed, "
                        "otherwise it is downloaded into the user cache)")
    p.add_argument("--data-dir", metavar="DIR", help="an existing directory holding the four IDX files (.gz or "
                   "raw); missing files are downloaded into it")


def _backend_arg(p):
    p.add_argument("--backend", choices=["fastbin", "reference"], default="fastbin",
                   help="kernels: fastbin (Numba, default) or reference (plain NumPy)")


def build_parser() -> argparse.ArgumentParser:
    from .demo import RECIPES

    parser = argparse.ArgumentParser(
        prog="fastbin", description="Binarized neural networks on the CPU: train, evaluate and run "
        "softmax regression and MLPs with float or 1-bit weights and activations.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    from .._version import __version__

    parser.add_argument("--version", action="version", version=f"fastbin {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error (also accepted "
                        "after the command)")
    common = argparse.ArgumentParser(add_help=False)  # --debug after the command; SUPPRESS keeps the global one
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show the traceback of "
                        "an error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    t = sub.add_parser("train", parents=[common], help="train a model and save it", description="Train a model on "
                       "(Fashion-)MNIST or your own data (--data) and save it. Either --recipe NAME, or build one "
                       "with the model and optimizer options. With none of them: a binary MLP, 1-bit weights and "
                       "sign activations with batch norm (784-200-100-10 on (Fashion-)MNIST), Adam 1e-2, 5 epochs "
                       "of batch 256.")
    t.add_argument("-o", "--output", required=True, metavar="PATH", help="model file to write")
    t.add_argument("--recipe", choices=sorted(RECIPES), help="a predefined recipe (see the demo). It sets the model "
                   "and the optimizer: their options (--model ... --dropout, --optimizer ... --warmup) are refused "
                   "with it; --epochs, --steps, --batch-size, --eval-every, --seed and --validation-split apply")
    t.add_argument("--model", choices=["softmax", "mlp"], help="model kind (default: mlp)")
    t.add_argument("--hidden", type=_sizes, metavar="N,N",
                   help="hidden layer sizes for --model mlp (default: 200,100)")
    t.add_argument("--activation", choices=["tanh", "hardtanh", "sign"],
                   help="hidden activation (default: sign, binary activations; tanh or hardtanh: float)")
    t.add_argument("--binary-weights", action=argparse.BooleanOptionalAction, default=None,
                   help="1-bit weights, BinaryConnect (default: on; --no-binary-weights for float weights)")
    t.add_argument("--binary-activations", action="store_true", default=None, help="the same as --activation sign")
    t.add_argument("--scale", action="store_true", default=None,
                   help="scale binary weights by alpha = mean|W| per output")
    t.add_argument("--batch-norm", action=argparse.BooleanOptionalAction, default=None,
                   help="batch norm after hidden dense layers (default: with binary activations)")
    t.add_argument("--dropout", type=_fraction, metavar="RATE",
                   help="dropout after every hidden activation (float activations only: tanh, hardtanh)")
    t.add_argument("--standardize", action="store_true", default=None,
                   help="with --data: store the input transform (x - mean) * scale in the model, the mean and "
                        "standard deviation per feature of x_train (scale 1/std per feature with float weights; "
                        "one scale, 1/the mean std, with binary weights), so features of any range train and "
                        "deploy as they are")
    t.add_argument("--optimizer", choices=["sgd", "adam"], help="optimizer (default: adam)")
    t.add_argument("--lr", type=_positive_float, help="learning rate (default: sgd 0.5; adam 1e-2 with binary "
                   "weights, 1e-3 with float weights)")
    t.add_argument("--momentum", type=_fraction, metavar="M", help="SGD momentum in [0, 1) (default: 0)")
    t.add_argument("--nesterov", action="store_true", default=None, help="Nesterov momentum (needs --momentum)")
    t.add_argument("--weight-decay", type=_non_negative_float, metavar="WD",
                   help="decoupled weight decay (AdamW; SGD too): each step multiplies every parameter by "
                        "1 - lr * WD (default: 0)")
    t.add_argument("--schedule",
                   help="lr schedule: none (default), step:EVERY:FACTOR (x FACTOR every EVERY steps), "
                        "rise:FACTOR:MAX (x FACTOR when the evaluation loss rises, stop after MAX rises), "
                        "cosine (cosine decay to 0 over the run, after the warm-up) or cosine:STEPS[:FINAL] "
                        "(over STEPS updates down to FINAL x lr)")
    t.add_argument("--warmup", type=_positive_int, metavar="N",
                   help="linear warm-up of the lr over the first N steps, then --schedule")
    g = t.add_mutually_exclusive_group()
    g.add_argument("--epochs", type=_positive_int, help="passes over the training set (default: 5)")
    g.add_argument("--steps", type=_positive_int, help="number of updates instead of --epochs")
    t.add_argument("--batch-size", type=_positive_int, default=None, help="mini-batch size (default: 256, "
                   "or the recipe's)")
    t.add_argument("--eval-every", type=_non_negative_int, default=None,
                   help="evaluate on the test split every N steps (0: only at the end)")
    t.add_argument("--seed", type=_seed, default=0, help="seed for initialisation and batches, in [0, 2**128) "
                   "(default: 0)")
    t.add_argument("--latent", action="store_true", help="also store real-valued latent weights (resumable)")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.add_argument("--data", metavar="FILE.npz", help="train on your own data: a .npz holding x_train (m, n) "
                   "float or raw uint8 and y_train (m,) integer labels 0..c-1, and optionally x_val, y_val "
                   "(validation data); the model gets n inputs and c outputs; --dataset is then unused")
    t.add_argument("--validation-split", type=_fraction, default=None, metavar="F",
                   help="hold out this fraction of the training rows (a seeded split) for the evaluations, "
                        "the schedule and the reported loss; the test split is then never read (default: 0.1 "
                        "with --data and no x_val, else 0: evaluate on the test split as the notebooks did)")
    _data_args(t)
    _backend_arg(t)

    e = sub.add_parser("eval", parents=[common], help="test loss and accuracy of a saved model")
    e.add_argument("model", help="model file")
    e.add_argument("--folded", action="store_true", help="also evaluate the folded (packed) inference model")
    e.add_argument("--data", metavar="FILE.npz", help="evaluate on the x_test, y_test arrays of this .npz "
                   "instead of the dataset's test split")
    _data_args(e)
    _backend_arg(e)

    p = sub.add_parser("predict", parents=[common], help="predict classes for images in a .npy file")
    p.add_argument("model", help="model file")
    p.add_argument("input", help=".npy array (m, 784): float in [0, 1] or raw uint8 pixels "
                   "(also (m, 28, 28))")
    p.add_argument("-o", "--output", metavar="PATH", help="write predictions (int64 .npy); default: print them")
    p.add_argument("--unfolded", action="store_true", help="use the training-time model instead of the "
                   "folded inference model")
    _backend_arg(p)

    s = sub.add_parser("summary", parents=[common], help="per-layer parameters, bits, bytes, MACs and binary ops")
    s.add_argument("model", help="model file, or a recipe name")

    x = sub.add_parser("export-c", parents=[common], help="write the folded model as C99 source for "
                       "microcontrollers", description="Write NAME.h and NAME.c: the folded model in C99 with no "
                       "dynamic memory (packed weights, XOR-popcount), NAME_predict(pixels) and NAME_logits("
                       "pixels, logits) on raw uint8 pixels. Supported: 1-bit-weight models whose hidden layers "
                       "are binary (sign) activations, e.g. the bnn, binary-softmax and nb1-binary recipes.")
    x.add_argument("model", help="model file")
    x.add_argument("-o", "--output", required=True, metavar="DIR", help="directory to write into (created if "
                   "missing)")
    x.add_argument("--name", type=_c_identifier, default="fastbin", help="prefix of the C symbols and file names "
                   "(default: fastbin)")

    d = sub.add_parser("demo", parents=[common], help="reproduce the seed notebooks and the binary MLPs, print a table")
    d.add_argument("--quick", action="store_true", help="fewer recipes and shorter schedules (~20 s here)")
    d.add_argument("--out-dir", metavar="DIR", help="where to write the model files (default: a temp dir)")
    d.add_argument("--recipes", type=lambda s: s.split(","), metavar="A,B",
                   help=f"comma-separated subset of: {', '.join(RECIPES)}")
    d.add_argument("--backends", type=lambda s: s.split(","), default=["fastbin", "reference"],
                   metavar="A,B", help="backends to compare (default: fastbin,reference)")
    d.add_argument("--seed", type=_seed, default=0, help="seed, in [0, 2**128) (default: 0)")
    d.add_argument("--no-progress", action="store_true", help="no progress bars")
    _data_args(d)

    b = sub.add_parser("bench", help="run the benchmark suite (fastbin.bench)", add_help=False)
    b.add_argument("args", nargs=argparse.REMAINDER, help="arguments for the benchmark runner")
    return parser


def _strerror(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


def _check_output(path, what):
    """``path`` can be written: a regular file or nothing (never a symbolic link,
    device node, FIFO or directory, which a save would refuse to replace), in an
    existing writable directory (checked before any work is done)."""
    from ..io.atomic import replaceable_mode

    if os.path.isdir(path) and not os.path.islink(path):
        raise CommandError(f"cannot write {what} to {path}: it is a directory")
    try:
        replaceable_mode(path)
    except OSError as exc:
        raise CommandError(f"cannot write {what} to {path}: {_strerror(exc)}") from exc
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise CommandError(f"cannot write {what} to {path}: directory {directory} does not exist")
    target = path if os.path.exists(path) else directory
    if not os.access(target, os.W_OK):
        raise CommandError(f"cannot write {what} to {path}: permission denied")


def _check_data_dir(args):
    """``--data-dir`` names an existing directory (it is never created)."""
    if args.data_dir is not None:
        from ..io.datasets import dataset_source

        dataset_source(args.dataset, args.data_dir)  # FileNotFoundError / NotADirectoryError


def _load_data(args, dtype="uint8"):
    from .demo import load_data

    return load_data(args.dataset, args.data_dir, dtype=dtype)


def _read_npz(path, required, optional=()):
    """The arrays ``required`` (and those of ``optional`` present) of the ``.npz`` file
    ``path``, as pairs ``(x (m, n) float or uint8, y (m,) int64 labels >= 0)``: names
    ``x_<part>`` and ``y_<part>`` for each part. One-line ``CommandError`` otherwise."""
    import zipfile

    import numpy as np

    try:
        archive = np.load(path, allow_pickle=False)
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {_strerror(exc)}") from exc
    except (ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise CommandError(f"cannot read {path} as a .npz archive: {exc}") from exc
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise CommandError(f"{path} is a single .npy array, not a .npz archive: save x_train, y_train, ... with "
                           f"numpy.savez")
    out = {}
    with archive:
        for part in [*required, *optional]:
            names = (f"x_{part}", f"y_{part}")
            if not all(name in archive.files for name in names):
                if part in optional and not any(name in archive.files for name in names):
                    continue
                raise CommandError(f"{path} must hold arrays {names[0]} and {names[1]}; it holds "
                                   f"{', '.join(archive.files) or 'nothing'}")
            try:
                x, y = archive[names[0]], archive[names[1]]
            except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
                raise CommandError(f"cannot read {names[0]}/{names[1]} from {path}: {exc}") from exc
            if not (x.dtype == np.uint8 or x.dtype.kind == "f") or x.ndim < 2 or x.shape[0] == 0:
                raise CommandError(f"{path}: {names[0]} must be float or raw uint8 rows (m, n) with m >= 1, got "
                                   f"{x.dtype} of shape {x.shape}")
            if y.dtype.kind not in "iu" or y.shape != (x.shape[0],) or (y.size and y.min() < 0):
                raise CommandError(f"{path}: {names[1]} must be integer labels 0..c-1 of shape ({x.shape[0]},), got "
                                   f"{y.dtype} of shape {y.shape}" + (f" with min {y.min()}" if y.size else ""))
            out[part] = (np.ascontiguousarray(x.reshape(x.shape[0], -1)), y.astype(np.int64))
    return out


def _check_model_path(path):
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such model file: {path}")
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path} is a directory, not a model file")


def _load_model(path, backend="fastbin"):
    from ..nn.model import load

    _check_model_path(path)
    return load(path, backend=backend)


def _load_folded(path, backend="fastbin"):
    """The model file as ``fastbin.runtime.load`` folds it (no trainable model), on
    the engine of ``backend`` (fastbin: numba, reference: numpy)."""
    from ..runtime import engine_for, load

    _check_model_path(path)
    return load(path, engine=engine_for(backend))


def _save_model(model, path, latent):
    try:
        model.save(path, latent=latent)
    except OSError as exc:
        raise CommandError(f"cannot save the model to {path}: {_strerror(exc)}") from exc
    except ValueError as exc:  # a model its loader would refuse (e.g. weights that overflowed): nothing written
        raise CommandError(f"cannot save the model to {path}: {str(exc).removeprefix(f'{path}: ')}") from exc


#: the train options that build the model, and the optimizer; a recipe sets both
_MODEL_OPTIONS = ("model", "hidden", "activation", "binary_weights", "binary_activations", "scale", "batch_norm",
                  "dropout", "standardize")
_OPTIMIZER_OPTIONS = ("optimizer", "lr", "momentum", "nesterov", "weight_decay", "schedule", "warmup")


def _flag(dest, value=True):
    return ("--" if value is not False else "--no-") + dest.replace("_", "-")


def _train_options(args, parser):
    """The model and optimizer settings of ``fastbin train`` without --recipe, defaults filled
    in, every combination checked (a usage error, never an option ignored): ``(model kind,
    model keyword arguments, optimizer, schedule spelling)``, the optimizer without its schedule."""
    from ..nn.optim import SGD, Adam, parse_schedule

    kind = args.model or "mlp"
    if kind == "softmax":
        mlp_only = [_flag(d, getattr(args, d)) for d in ("hidden", "activation", "binary_activations", "batch_norm",
                                                          "dropout") if getattr(args, d) is not None]
        if mlp_only:
            parser.error(f"{', '.join(mlp_only)}: options of --model mlp, not of --model softmax")
    if args.binary_activations and args.activation not in (None, "sign"):
        parser.error(f"--binary-activations means --activation sign, not --activation {args.activation}")
    activation = "sign" if args.binary_activations else args.activation or "sign"
    binary_weights = True if args.binary_weights is None else args.binary_weights
    if args.scale and not binary_weights:
        parser.error("--scale scales binary weights: it needs --binary-weights")
    model_args = {"binary_weights": binary_weights, "scale": bool(args.scale)}
    if kind == "mlp":
        if args.dropout and activation == "sign":
            parser.error("--dropout acts on float activations: give --activation tanh or hardtanh")
        model_args.update(activation=activation, batch_norm=args.batch_norm, dropout=args.dropout or 0.0)
    if args.standardize and not args.data:
        parser.error("--standardize is for your own data (--data); the datasets' pixels are already in [0, 1]")
    optimizer = args.optimizer or "adam"
    if optimizer == "adam" and (args.momentum is not None or args.nesterov):
        parser.error("--momentum and --nesterov are options of --optimizer sgd")
    if args.nesterov and not args.momentum:
        parser.error("--nesterov needs --momentum > 0")
    lr = args.lr or (0.5 if optimizer == "sgd" else 1e-2 if binary_weights else 1e-3)
    spelling = args.schedule or "none"
    try:
        if spelling != "cosine":  # cosine alone: over the run, known once the data is
            parse_schedule(spelling)
        if optimizer == "sgd":
            opt = SGD(lr, momentum=args.momentum or 0.0, nesterov=bool(args.nesterov),
                      weight_decay=args.weight_decay or 0.0)
        else:
            opt = Adam(lr, weight_decay=args.weight_decay or 0.0)
    except ValueError as exc:
        parser.error(str(exc))
    return kind, model_args, opt, spelling


def _standard_transform(x, binary_weights):
    """``input_offset`` and ``input_scale`` standardising the features of ``x`` (uint8: ``x / 255``):
    the mean, and 1/std per feature (features with std 0: 1), or with binary weights, which fold
    one scale only, 1/(the mean of the stds)."""
    x = x / 255.0 if x.dtype == "uint8" else x.astype("float64")
    mean, std = x.mean(axis=0), x.std(axis=0)
    if binary_weights:
        spread = float(std.mean())
        return {"input_offset": mean.astype("float32"), "input_scale": 1.0 / spread if spread > 0 else 1.0}
    return {"input_offset": mean.astype("float32"), "input_scale": (1.0 / (std + (std == 0))).astype("float32")}


def _run_steps(fit_args, n_rows):
    """The number of updates ``fit(**fit_args)`` makes on ``n_rows`` rows."""
    if "steps" in fit_args:
        return fit_args["steps"]
    n_train = n_rows - round(n_rows * fit_args.get("validation_split", 0))
    return fit_args["epochs"] * math.ceil(n_train / fit_args["batch_size"])


def _schedule(args, parser, spelling, total_steps):
    """The schedule of ``--schedule spelling`` and ``--warmup`` for a run of ``total_steps``."""
    from ..nn.optim import CosineDecay, WarmUp, parse_schedule

    warmup = args.warmup or 0
    if spelling == "cosine":
        if total_steps - warmup < 1:
            parser.error(f"--warmup {warmup} leaves none of the run's {total_steps} steps to --schedule cosine")
        schedule = CosineDecay(total_steps - warmup)
    else:
        schedule = parse_schedule(spelling)
    return WarmUp(warmup, then=schedule) if warmup else schedule


def _cmd_train(args, parser):
    from ..nn.model import mlp, softmax_regression
    from ..nn.train import fit
    from .demo import RECIPES

    # Everything that can be checked is checked before any data is loaded (--data: before
    # the model is built, its input and output sizes being the data's).
    fit_args = {}
    if args.data and args.recipe:
        parser.error("--recipe trains on (Fashion-)MNIST; with --data build the model with --model, --hidden, ...")
    if args.data and args.data_dir:
        parser.error("--data and --data-dir exclude each other")
    if args.recipe:
        given = [_flag(d, getattr(args, d)) for d in _MODEL_OPTIONS + _OPTIMIZER_OPTIONS
                 if getattr(args, d) is not None]
        if given:
            parser.error(f"--recipe {args.recipe} sets the model and the optimizer: {', '.join(given)} cannot be "
                         f"used with it (drop --recipe to build your own)")
    else:
        kind, model_args, opt, spelling = _train_options(args, parser)
    _check_output(args.output, "the model")
    if args.data:
        own = _read_npz(args.data, ["train"], ["val"])
        x_train, y_train = own["train"]
        n_in, n_classes = x_train.shape[1], int(y_train.max()) + 1
        if n_classes < 2:
            raise CommandError(f"{args.data}: y_train holds one class only (0); labels are 0..c-1 with c >= 2")
        data = (x_train, y_train)
    else:
        n_in, n_classes = 784, 10
    if not args.recipe:
        sizes = [n_in, n_classes] if kind == "softmax" else [n_in, *(args.hidden or [200, 100]), n_classes]
        if _parameter_count(sizes) > MAX_PARAMETERS:
            parser.error(f"a {'-'.join(map(str, sizes))} model has {_parameter_count(sizes):,} parameters, "
                         f"more than the {MAX_PARAMETERS:,} limit; use smaller --hidden sizes")
    if args.data:
        if "val" in own:
            if args.validation_split:
                parser.error(f"{args.data} holds x_val, y_val: --validation-split is then not used")
            fit_args["validation_data"] = own["val"]
        elif args.validation_split != 0:
            fit_args["validation_split"] = 0.1 if args.validation_split is None else args.validation_split
    else:
        if args.batch_size is not None:
            from ..io.datasets import DATASETS

            n_train = DATASETS[args.dataset].files["x_train"].shape[0]
            if args.batch_size > n_train:
                parser.error(f"--batch-size {args.batch_size} is more than the {n_train} training images of "
                             f"{args.dataset}")
        _check_data_dir(args)
        data = _load_data(args)
        if args.validation_split:
            fit_args["validation_split"] = args.validation_split
    if args.recipe:
        recipe = RECIPES[args.recipe]
        model = recipe.build(args.backend, args.seed, data)
        opt = recipe.optimizer()
        fit_args = {**fit_args, **recipe.fit_args()}
    else:
        if args.standardize:
            model_args.update(_standard_transform(x_train, model_args["binary_weights"]))
        if kind == "softmax":
            model = softmax_regression(n_in, n_classes, seed=args.seed, backend=args.backend, **model_args)
        else:
            model = mlp(sizes, seed=args.seed, backend=args.backend, **model_args)
        fit_args.update(epochs=5, batch_size=256, eval_every="epoch" if args.data else 0)
    if args.data:
        fit_args["batch_size"] = min(fit_args["batch_size"], len(x_train) - (  # at most the training rows
            round(len(x_train) * fit_args.get("validation_split", 0))))
    if args.epochs or args.steps:
        fit_args.pop("epochs", None)
        fit_args.pop("steps", None)
        fit_args["epochs" if args.epochs else "steps"] = args.epochs or args.steps
    if args.batch_size:
        fit_args["batch_size"] = args.batch_size
    if args.eval_every is not None:
        fit_args["eval_every"] = args.eval_every
    if not args.recipe:
        opt.schedule = _schedule(args, parser, spelling, _run_steps(fit_args, len(x_train if args.data else
                                                                                  data.x_train)))
    if args.data:
        print(f"data: {args.data} ({len(x_train)} rows of {n_in} features, {n_classes} classes)")
    else:
        print(f"dataset: {data.name} ({data.source})")
    print(model.summary())
    print(f"optimizer: {opt!r}")
    history = fit(model, opt, *data if args.data else (data,), seed=args.seed, progress=not args.no_progress,
                  **fit_args)
    where = {"test": "test", "validation": "validation"}.get(history.eval_on)
    for step, loss, acc, train_loss, t in zip(history.step, history.loss, history.acc, history.train_loss,
                                              history.time):
        measured = f"{where} loss {loss:.4f}  {where} acc {100 * acc:.2f}%" if where else ""
        print(f"step {step:6d}  train loss {train_loss:.4f}  {measured}  {t:7.2f} s")
    _save_model(model, args.output, args.latent)
    print(f"saved {args.output} ({os.path.getsize(args.output)} bytes); trained {history.step[-1]} steps in "
          f"{history.train_time:.2f} s (stopped: {history.stopped})")
    return 0


def _cmd_eval(args, parser):
    if args.data and args.data_dir:
        parser.error("--data and --data-dir exclude each other")
    if not args.data:
        _check_data_dir(args)
    model = _load_model(args.model, args.backend)
    if args.data:
        x_test, y_test = _read_npz(args.data, ["test"])["test"]
        name = args.data
        if x_test.shape[1] != model.n_in or y_test.max() >= model.n_classes:
            raise CommandError(f"{args.data}: x_test has {x_test.shape[1]} features and y_test labels up to "
                               f"{y_test.max()}; the model takes {model.n_in} features, {model.n_classes} classes")
    else:
        data = _load_data(args, dtype="float32")
        x_test, y_test, name = data.x_test, data.y_test, data.name
    loss, acc = model.evaluate(x_test, y_test)
    print(f"{name} test: loss {loss:.4f}  accuracy {100 * acc:.2f}%  ({len(y_test)} rows)")
    if args.folded:
        pred = _load_folded(args.model, args.backend).predict(x_test)
        print(f"folded inference accuracy {100 * (pred == y_test).mean():.2f}%")
    return 0


_ZIP_MAGIC = b"PK\x03\x04"
_PRINT_ROWS = 4096  # predictions per write to stdout


def _read_images(path, n_in):
    """The images of a ``.npy`` file, (m, n_in) or (m, a, b) with ``a * b ==
    n_in``, uint8 or float. The header is read and checked against the file
    size, the shape and the dtype before the array is (so a header that
    claims 10^12 rows is refused without allocating anything)."""
    import numpy as np

    fmt = np.lib.format
    try:
        f = open(path, "rb")
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {_strerror(exc)}") from exc
    with f:
        start = f.read(len(_ZIP_MAGIC))
        f.seek(0)
        if not start:
            raise CommandError(f"{path} is empty, not a .npy array")
        if start == _ZIP_MAGIC:
            raise CommandError(f"{path} is a .npz (zip) archive, not a .npy array: save one array with numpy.save")
        try:
            version = fmt.read_magic(f)
            if version == (1, 0):
                shape, _, dtype = fmt.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, _, dtype = fmt.read_array_header_2_0(f)
            else:
                raise ValueError(f"unsupported .npy format version {version[0]}.{version[1]}")
        except ValueError as exc:
            raise CommandError(f"{path} is not a readable .npy array: {exc}") from exc
        data_start = f.tell()
        size = os.fstat(f.fileno()).st_size
    if dtype.hasobject:
        raise CommandError(f"{path} holds Python objects (a pickled array); refusing to load it")
    if not (dtype == np.uint8 or dtype.kind == "f"):
        raise CommandError(f"{path}: expected float pixels in [0, 1] or raw uint8 pixels, got dtype {dtype}")
    square = " or (m, 28, 28)" if n_in == 784 else ""
    if not (len(shape) == 2 and shape[1] == n_in or len(shape) == 3 and shape[1] * shape[2] == n_in):
        raise CommandError(f"{path}: expected images of shape (m, {n_in}){square} for this model, got "
                           f"{tuple(shape)}")
    expected = math.prod(shape) * dtype.itemsize
    if size - data_start != expected:
        raise CommandError(f"{path}: the header declares shape {tuple(shape)} {dtype} ({expected:,} bytes of data) "
                           f"but the file holds {size - data_start:,} bytes after it (truncated or damaged)")
    try:
        x = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise CommandError(f"cannot read {path} as a .npy array: {exc}") from exc
    return x.reshape(x.shape[0], n_in)  # (0, n_in) too: an empty batch gives no predictions


def _write_predictions(path, pred):
    """Write ``pred`` as int64 ``.npy`` to exactly ``path`` (no ``.npy`` is
    appended); a failed write removes the partial file."""
    import numpy as np

    try:
        with open(path, "wb") as f:
            np.save(f, pred.astype(np.int64))
    except OSError as exc:
        if os.path.isfile(path):
            os.unlink(path)
        raise CommandError(f"cannot write predictions to {path}: {_strerror(exc)}") from exc


def _cmd_predict(args, parser):
    if args.output:
        _check_output(args.output, "predictions")
    runner = _load_model(args.model, args.backend) if args.unfolded else _load_folded(args.model, args.backend)
    x = _read_images(args.input, runner.n_in)
    pred = runner.predict(x)
    if args.output:
        _write_predictions(args.output, pred)
        print(f"wrote {len(pred)} predictions (int64 .npy) to {args.output}")
    else:
        for start in range(0, len(pred), _PRINT_ROWS):  # bounded memory; a closed pipe stops it early
            sys.stdout.write("".join(f"{int(p)}\n" for p in pred[start:start + _PRINT_ROWS]))
    return 0


def _cmd_summary(args, parser):
    from .demo import RECIPES

    if args.model in RECIPES and not os.path.exists(args.model):
        model = RECIPES[args.model].build("fastbin", 0, None)
    else:
        model = _load_model(args.model)
    print(model.summary())
    return 0


def _cmd_export_c(args, parser):
    from .export_c import export_c

    out = args.output
    if os.path.exists(out) and not os.path.isdir(out):
        raise CommandError(f"cannot write C files to {out}: it exists and is not a directory")
    parent = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(parent):
        raise CommandError(f"cannot write C files to {out}: directory {parent} does not exist")
    model = _load_model(args.model)
    try:
        paths = export_c(model, out, name=args.name, source=args.model)
    except OSError as exc:
        raise CommandError(f"cannot write C files to {out}: {_strerror(exc)}") from exc
    print(f"wrote {paths[0]} and {paths[1]} ({os.path.getsize(paths[1]):,} bytes of C)")
    return 0


def _cmd_demo(args, parser):
    from .demo import RECIPES
    from .demo import main as demo_main

    for name in args.recipes or []:
        if name not in RECIPES:
            parser.error(f"unknown recipe {name!r}; choose from {', '.join(RECIPES)}")
    for name in args.backends:
        if name not in ("fastbin", "reference"):
            parser.error(f"unknown backend {name!r}; choose fastbin and/or reference")
    if args.out_dir is not None and os.path.exists(args.out_dir) and not os.path.isdir(args.out_dir):
        raise CommandError(f"--out-dir {args.out_dir} exists and is not a directory")
    _check_data_dir(args)
    return demo_main(quick=args.quick, out_dir=args.out_dir, dataset=args.dataset, data_dir=args.data_dir,
                     backends=args.backends, recipes=args.recipes, seed=args.seed, progress=not args.no_progress)


def _cmd_bench(args, parser):
    from . import bench

    try:
        return int(bench.run(args.args) or 0)
    except SystemExit as exc:  # argparse inside the runner (--help, bad arguments)
        return exc.code if isinstance(exc.code, int) else 1


COMMANDS = {"train": _cmd_train, "eval": _cmd_eval, "predict": _cmd_predict, "summary": _cmd_summary,
            "demo": _cmd_demo, "bench": _cmd_bench}
COMMANDS["export-c"] = _cmd_export_c


def _message(exc: BaseException) -> str:
    """One line for an expected failure."""
    if isinstance(exc, MemoryError):
        return f"out of memory{': ' + str(exc) if str(exc) else ''}"
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        text = f"no space left on device{': ' + exc.filename if exc.filename else ''}"
    elif isinstance(exc, OSError) and exc.strerror and exc.filename:
        text = f"{exc.filename}: {exc.strerror}"
    else:
        text = str(exc) or type(exc).__name__
    lines = [line.strip() for line in text.splitlines() if line.strip()] or [type(exc).__name__]
    return lines[0] + (" (more with --debug)" if len(lines) > 1 else "")


def _quiet_stdout():
    """After a broken pipe: point stdout at /dev/null so that the interpreter's
    final flush does not fail again (the recipe of Python's signal docs)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # not a real file (captured in tests)
        pass


def main(argv=None) -> int:
    """Entry point; returns the exit code (``sys.exit(main())``)."""
    import traceback

    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = False
    while argv and argv[0] == "--debug":
        debug, argv = True, argv[1:]
    if argv and argv[0] == "bench":  # pass everything through, --help included
        return _cmd_bench(argparse.Namespace(args=argv[1:]), parser)
    args = parser.parse_args(argv)
    debug = debug or args.debug
    from ..io.modelfile import ModelFileError

    try:
        code = COMMANDS[args.command](args, parser)
        sys.stdout.flush()  # a closed pipe shows up here, not at exit
        return code
    except BrokenPipeError:  # the reader went away (`fastbin predict ... | head -1`): stop quietly
        _quiet_stdout()
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    # NotImplementedError: a file the folded runtime does not cover (e.g. a conv that zero-pads signs)
    except (CommandError, ModelFileError, OSError, ValueError, TypeError, MemoryError, NotImplementedError) as exc:
        if debug:
            traceback.print_exc()
        print(f"fastbin: error: {_message(exc)}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
