#!/usr/bin/env python
"""A trained model exported to ONNX against arrayml's own NumPy forward: agreement and time.

    python benchmarks/onnx_inference.py --data-dir ../shared/data/cifar10
    python benchmarks/onnx_inference.py --data-dir ../shared/data/cifar10 --json results/bench/onnx_inference.json

Trains the default MLP of examples/train.py (3072-128-10, ReLU, SGD lr 0.1, batch 128, seed 42)
for --epochs, keeps the best-validation model, and exports it with `arrayml.export.to_onnx` as
``train.py --export-onnx`` does: the CIFAR-10 normalisation inside the graph, uint8 images in,
logits out. Then, on the 10,000 test images:

- agreement: the largest difference between onnxruntime's logits and the NumPy forward's (on
  ``cifar10.preprocess`` of the same images), the number of images whose predicted class
  differs, and both test accuracies;
- the training step: 5 steps of `export.train_step_to_onnx` (SGD, momentum 0.9, batch 128, on
  test images) against 5 eager NumPy steps from the same weights: the largest differences;
- time per 10,000 images: arrayml on NumPy (``cifar10.preprocess`` then ``model.forward``)
  against onnxruntime (the graph, preprocessing included), --repeats rounds, interleaved
  (A B, A B, ...), medians and the ratio round by round. Both use every core by default
  (onnxruntime's intra-op threads; NumPy's BLAS threads, printed with threadpoolctl when the
  `bench` extra is installed). Compare ratios within one run only.
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

import arrayml as am
from arrayml import export
from arrayml.datasets import cifar10
from arrayml.fileio import write_json
from arrayml.training import ArraymlLearner, evaluate_best, fit


def train_default_mlp(data_dir: str | None, epochs: int, subset: int | None, val_size: int) -> tuple[am.MLP, float]:
    """examples/train.py's default model after `epochs` epochs (the best-validation state), and
    its test accuracy as the training loop measures it."""
    splits = cifar10.load_splits(data_dir, val_size=val_size, seed=42, subset=subset, progress=False)
    model = am.MLP(cifar10.N_FEATURES, [128], len(cifar10.CLASSES), rng=np.random.default_rng(42))
    learner = ArraymlLearner(model, am.SGD(0.1))
    state = fit(learner, splits, epochs=epochs, batch_size=128, seed=42, lr=0.1, progress=False, log=None)
    test = evaluate_best(learner, splits, state)
    return model.eval(), float("nan") if test is None else test["accuracy"]


def training_step_agreement(model: am.MLP, x: np.ndarray, y: np.ndarray, steps: int) -> dict[str, float]:
    """`steps` steps of the exported training step (SGD, momentum 0.9, batch 128) against as
    many eager NumPy steps (`arrayml.step.train_step`) from the same weights: the largest
    differences of the losses, parameters and momentum buffers."""
    from arrayml.step import train_step

    ours, theirs = copy.deepcopy(model).train(), copy.deepcopy(model).train()
    opt_ours, opt_theirs = am.SGD(0.1, momentum=0.9), am.SGD(0.1, momentum=0.9)
    loss_fn = am.SoftmaxCrossEntropy(validate=False)
    step = export.train_step_to_onnx(theirs, loss_fn, opt_theirs, 128)
    state = opt_ours.init(ours.parameters())
    loss_diff = 0.0
    for i in range(steps):
        xb, yb = x[i * 128:(i + 1) * 128], y[i * 128:(i + 1) * 128]
        state, loss, _ = train_step(ours, loss_fn, opt_ours, state, xb, yb, 0.1)
        loss_diff = max(loss_diff, abs(float(loss) - float(step(xb, yb, 0.1))))
    params = max(float(np.max(np.abs(ours.parameters()[k] - v))) for k, v in theirs.parameters().items())
    momentum = max(float(np.max(np.abs(state["momentum"][k] - v))) for k, v in opt_theirs.state["momentum"].items())
    return {"steps": steps, "batch_size": 128, "max_abs_loss_difference": loss_diff,
            "max_abs_parameter_difference": params, "max_abs_momentum_difference": momentum}


def library_info() -> dict[str, object]:
    import onnxruntime as ort

    info: dict[str, object] = {"numpy": np.__version__, "onnxruntime": ort.__version__, "cpu_count": os.cpu_count()}
    try:
        from threadpoolctl import threadpool_info

        info["blas"] = [f"{p.get('internal_api')} {p.get('version')} ({p.get('num_threads')} threads)"
                        for p in threadpool_info() if p.get("user_api") == "blas"]
    except ImportError:
        info["blas"] = "unknown (pip install threadpoolctl, the bench extra)"
    return info


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default=None, help="a folder holding cifar10_uint8.npz")
    p.add_argument("--epochs", type=int, default=3, help="training epochs before the export (default: 3)")
    p.add_argument("--subset", type=int, default=None, help="train on only this many images (quick checks)")
    p.add_argument("--val-size", type=int, default=5000, help="validation images (default: 5000, as train.py)")
    p.add_argument("--repeats", type=int, default=7, help="timing rounds (default: 7)")
    p.add_argument("--json", default=None, help="write the figures to this JSON file")
    args = p.parse_args(argv)

    model, run_accuracy = train_default_mlp(args.data_dir, args.epochs, args.subset, args.val_size)
    raw = cifar10.load_cifar10(args.data_dir, download_if_missing=False)
    images, labels = raw["x_test"], raw["y_test"]
    fn = export.to_onnx(model, None, preprocess=export.Preprocess(cifar10.normalize, (32, 32, 3), "uint8",
                                                                  cifar10.RAW_LAYOUT))

    def numpy_forward() -> np.ndarray:
        return model.forward(cifar10.preprocess(images))

    def onnxruntime_forward() -> np.ndarray:
        return fn(images)

    step_agreement = training_step_agreement(model, cifar10.preprocess(images), labels, min(5, images.shape[0] // 128))
    ours, theirs = numpy_forward(), onnxruntime_forward()
    diff = np.abs(theirs.astype(np.float64) - ours)
    agreement = {
        "images": int(images.shape[0]),
        "max_abs_logit_difference": float(np.max(diff)),
        "max_logit": float(np.max(np.abs(ours))),
        "predictions_that_differ": int(np.sum(np.argmax(ours, axis=1) != np.argmax(theirs, axis=1))),
        "test_accuracy_numpy": float(np.mean(np.argmax(ours, axis=1) == labels)),
        "test_accuracy_onnxruntime": float(np.mean(np.argmax(theirs, axis=1) == labels)),
        "test_accuracy_training_run": run_accuracy,
    }

    per_10k = 10_000 / images.shape[0]
    times: dict[str, list[float]] = {"arrayml numpy": [], "onnxruntime": []}
    for _ in range(args.repeats):  # interleaved: a slow spell of a shared machine hits both
        for name, f in (("arrayml numpy", numpy_forward), ("onnxruntime", onnxruntime_forward)):
            t = time.perf_counter()
            f()
            times[name].append((time.perf_counter() - t) * per_10k)
    ratios = [a / b for a, b in zip(times["arrayml numpy"], times["onnxruntime"])]
    timing = {
        "seconds_per_10000_images_median": {k: statistics.median(v) for k, v in times.items()},
        "numpy_over_onnxruntime_median": statistics.median(ratios),
        "numpy_over_onnxruntime_min_max": [min(ratios), max(ratios)],
        "repeats": args.repeats,
    }
    report = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": "python benchmarks/onnx_inference.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "host": {"platform": platform.platform(), "processor": platform.processor() or platform.machine()},
        "libraries": library_info(),
        "model": repr(model), "epochs": args.epochs, "agreement": agreement, "timing": timing,
        "training_step_agreement": step_agreement,
    }
    a, t = agreement, timing
    print(f"model: 3072-128-10 MLP after {args.epochs} epoch(s); libraries: {report['libraries']}")
    print(f"agreement on {a['images']} test images: max |logit difference| {a['max_abs_logit_difference']:.2e} "
          f"(logits up to {a['max_logit']:.1f}), {a['predictions_that_differ']} predictions differ; test accuracy "
          f"numpy {a['test_accuracy_numpy']:.4f}, onnxruntime {a['test_accuracy_onnxruntime']:.4f}, "
          f"training run {a['test_accuracy_training_run']:.4f}")
    st = step_agreement
    print(f"exported training step (SGD momentum 0.9, batch 128), {st['steps']} steps against as many eager NumPy "
          f"steps: max |difference| loss {st['max_abs_loss_difference']:.1e}, parameters "
          f"{st['max_abs_parameter_difference']:.1e}, momentum {st['max_abs_momentum_difference']:.1e}")
    med = t["seconds_per_10000_images_median"]
    print(f"per 10,000 images (median of {args.repeats}): arrayml numpy {med['arrayml numpy'] * 1e3:.1f} ms, "
          f"onnxruntime {med['onnxruntime'] * 1e3:.1f} ms; numpy / onnxruntime {t['numpy_over_onnxruntime_median']:.2f}x "
          f"(rounds {t['numpy_over_onnxruntime_min_max'][0]:.2f}-{t['numpy_over_onnxruntime_min_max'][1]:.2f})")
    if args.json:
        write_json(report, Path(args.json))
    return 0


if __name__ == "__main__":
    sys.exit(main())
