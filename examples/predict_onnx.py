#!/usr/bin/env python
"""Classify the CIFAR-10 test images with an exported model, by onnxruntime alone.

    python examples/train.py --data-dir ../shared/data/cifar10 --export-onnx model.onnx
    python examples/predict_onnx.py model.onnx --data-dir ../shared/data/cifar10

Imports no arrayml: only NumPy (to read cifar10_uint8.npz) and onnxruntime. The model written by
``train.py --export-onnx`` holds the data set's normalisation inside its graph, so the images go
in as the file stores them (uint8, N x 32 x 32 x 3) and logits come out (N x 10). Prints the test
accuracy, which is the training run's own (the run records it in the model's metadata too), and
how long onnxruntime took.

Exit status: 0 done; 2 a bad argument, a missing file, or a model that does not take the images
as stored (every such error is one line on stderr).
"""

from __future__ import annotations

import argparse
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

CACHE_NAME = "cifar10_uint8.npz"


class Refused(Exception):
    """A bad argument or file: one line on stderr, exit status 2."""


def load_test_images(data_dir: str) -> tuple[np.ndarray, np.ndarray, Path]:
    """The test images (uint8, N x 32 x 32 x 3) and labels from DIR/cifar10_uint8.npz (or the file itself)."""
    path = Path(data_dir).expanduser()
    if path.is_dir():
        path = path / CACHE_NAME
    if not path.is_file():
        raise Refused(f"--data-dir: no {CACHE_NAME} at {path}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            x, y = npz["x_test"], npz["y_test"]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise Refused(f"{path} is not a CIFAR-10 cache with x_test and y_test ({type(exc).__name__}: {exc})") from None
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != (32, 32, 3) or y.shape != (x.shape[0],):
        raise Refused(f"{path}: expected x_test uint8 (N, 32, 32, 3) and y_test (N,), got {x.dtype} {x.shape} and {y.shape}")
    return x, y.astype(np.int64), path


def open_model(path: str) -> tuple[Any, str, dict[str, str]]:
    """An onnxruntime session for `path`, its input's name, and its metadata; refused unless it
    takes uint8 images of 32 x 32 x 3 (what ``train.py --export-onnx`` writes)."""
    import onnxruntime as ort

    model = Path(path).expanduser()
    if not model.is_file():
        raise Refused(f"MODEL: no file at {model}")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for a file that is not a model
        raise Refused(f"{model} is not an ONNX model onnxruntime can load ({type(exc).__name__}: {exc})") from None
    (inp,) = session.get_inputs()
    if inp.type != "tensor(uint8)" or list(inp.shape[1:]) != [32, 32, 3]:
        raise Refused(f"{model} takes {inp.type} of shape {inp.shape}, not the images as the data set stores them "
                      "(uint8, N x 32 x 32 x 3): export it with examples/train.py --export-onnx")
    return session, inp.name, dict(session.get_modelmeta().custom_metadata_map)


def predict(session: Any, name: str, images: np.ndarray, batch_size: int) -> np.ndarray:
    """The class with the largest logit for every image, `batch_size` images per run."""
    labels = [np.argmax(session.run(None, {name: images[i:i + batch_size]})[0], axis=1)
              for i in range(0, images.shape[0], batch_size)]
    return np.concatenate(labels)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="predict_onnx.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="the .onnx file written by examples/train.py --export-onnx")
    parser.add_argument("--data-dir", required=True, help=f"a folder holding {CACHE_NAME} (or the file itself)")
    parser.add_argument("--batch-size", type=int, default=1000, help="images per onnxruntime run (default: 1000)")
    args = parser.parse_args(argv)
    try:
        if args.batch_size < 1:
            raise Refused(f"--batch-size must be at least 1, got {args.batch_size}")
        try:
            import onnxruntime
        except ImportError:
            raise Refused('onnxruntime is not installed: pip install onnxruntime==1.32.0 (or the [onnx] extra of arrayml)') from None
        session, name, meta = open_model(args.model)
        images, labels, data = load_test_images(args.data_dir)
    except Refused as exc:
        print(f"predict_onnx.py: error: {exc}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    predicted = predict(session, name, images, args.batch_size)
    seconds = time.perf_counter() - started
    accuracy = float(np.mean(predicted == labels))
    print(f"test accuracy {accuracy:.4f} ({images.shape[0]} images of {data}, onnxruntime {onnxruntime.__version__}, "
          f"{seconds:.2f} s)")
    if "test_accuracy" in meta:
        agree = "the same" if meta["test_accuracy"] == f"{accuracy:.4f}" else "DIFFERENT"
        print(f"the training run ({meta.get('run', '?')}) recorded test accuracy {meta['test_accuracy']}: {agree}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
