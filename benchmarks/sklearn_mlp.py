#!/usr/bin/env python
"""arrayml's scikit-learn estimator against scikit-learn's own MLPClassifier, side by side.

    python benchmarks/sklearn_mlp.py --data-dir ../shared/data/cifar10
    python benchmarks/sklearn_mlp.py --data-dir ../shared/data/cifar10 --rounds 5 --json results/bench/sklearn_mlp.json
    python benchmarks/sklearn_mlp.py --datasets digits              # no CIFAR-10 needed

The same settings for every variant: hidden layer (128,), ReLU, SGD at a constant rate 0.1, batch
128, no momentum, scikit-learn's default L2 term alpha = 1e-4, float32 data (scikit-learn keeps
float32: its coefs_ are float32), shuffled every epoch, every sample every epoch, --epochs epochs
(early stopping and the tol rule off: n_iter_no_change = epochs). Variants:

  arrayml.sklearn          arrayml.sklearn.MLPClassifier(...).fit(X, y): the estimator, validation,
                           label encoding and all
  arrayml epoch            what the estimator runs inside, without it: arrayml.training.train_epoch
                           of an ArraymlLearner (MLP, softmax + cross-entropy, SGD) on the same arrays
  scikit-learn             sklearn.neural_network.MLPClassifier(solver="sgd", ...).fit(X, y)

Data: CIFAR-10 from --data-dir (arrayml.datasets.cifar10: 45000 training images after the
usual 5000-image validation split, which is not used here; the 10000 test images), and
scikit-learn's digits (load_digits: a 70/30 stratified split, seed 0, standardised).

How it measures: a warm-up fit of one epoch of each variant (not counted), then --rounds rounds;
each round fits every variant once, in an order that rotates
from round to round, after a pause (--settle), so that a slow spell of the shared machine hits
every variant alike. BLAS runs on --threads threads for every variant (threadpoolctl). A fit's
seconds per epoch are its wall time over its epochs (for the estimators the whole fit: input
checks and set-up included), and the CPU time of the process likewise (one BLAS thread: the time
the work itself took, which a busy shared machine stretches less than the wall time); the arrayml
epoch is timed epoch by epoch. Times are medians over
the rounds; each ratio is taken round by round against scikit-learn's epoch of the same round,
median (min-max). Round r trains every variant from random_state = r (the arrayml epoch from the
seed the estimator derives from it), so the test accuracies are a mean (min-max) over --rounds
seeds: one seed's accuracy after 10 epochs of SGD at 0.1 moves by 2-3 points from seed to seed.
Ratios within one run are what to compare; no absolute time means anything across machines.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

HIDDEN, LR, BATCH, ALPHA = (128,), 0.1, 128, 1e-4
SKLEARN = "scikit-learn"
VARIANTS = ("arrayml.sklearn", "arrayml epoch", SKLEARN)


def load_data(name: str, data_dir: str | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test), float32 features."""
    if name == "cifar10":
        from arrayml.datasets import cifar10

        splits = cifar10.load_splits(data_dir, download_if_missing=False)
        return splits.x_train, splits.y_train, splits.x_test, splits.y_test
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    X, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)
    scaler = StandardScaler().fit(x_train)
    return (scaler.transform(x_train).astype(np.float32), y_train, scaler.transform(x_test).astype(np.float32), y_test)


def settings(epochs: int, seed: int) -> dict[str, Any]:
    return {"hidden_layer_sizes": HIDDEN, "activation": "relu", "solver": "sgd", "learning_rate_init": LR,
            "batch_size": BATCH, "momentum": 0.0, "alpha": ALPHA, "max_iter": epochs, "n_iter_no_change": epochs,
            "shuffle": True, "random_state": seed}


def fit_estimator(cls: Any, seed: int, epochs: int, x, y, x_test, y_test) -> dict[str, Any]:
    est = cls(**settings(epochs, seed))
    t0, c0 = time.perf_counter(), time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Maximum iterations reached": the epochs are fixed on purpose
        est.fit(x, y)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"epoch_seconds": seconds / est.n_iter_, "epoch_cpu_seconds": cpu / est.n_iter_, "epochs": est.n_iter_,
            "accuracy": float(est.score(x_test, y_test)),
            "final_loss": float(est.loss_curve_[-1]), "dtype": str(est.coefs_[0].dtype)}


def arrayml_epochs(random_state: int, epochs: int, x, y, x_test, y_test) -> dict[str, Any]:
    """The estimator's inside without the estimator: the same network, optimizer, seed and epochs
    (so the same weights and accuracy as the estimator's, to the last bit)."""
    import arrayml as am
    from arrayml.schedules import Constant
    from arrayml.training import ArraymlLearner, train_epoch

    seed = int(np.random.RandomState(random_state).randint(np.iinfo(np.int32).max))  # the estimator's, from random_state
    classes, codes = np.unique(y, return_inverse=True)
    model = am.MLP(x.shape[1], list(HIDDEN), len(classes), activation="relu", rng=np.random.default_rng(seed))
    learner = ArraymlLearner(model, am.SGD(LR, weight_decay=ALPHA / BATCH), metrics=None)
    times, cpus = [], []
    for epoch in range(epochs):
        t0, c0 = time.perf_counter(), time.process_time()
        train_epoch(learner, x, codes.astype(np.int64), epoch=epoch, epochs=epochs, batch_size=BATCH, seed=seed,
                    schedule=Constant(LR), progress=False, log_every=-(-x.shape[0] // BATCH), drop_last=False)
        times.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    pred = classes[np.argmax(learner.logits(x_test), axis=1)]
    return {"epoch_seconds": sum(times) / epochs, "epoch_cpu_seconds": sum(cpus) / epochs, "epochs": epochs,
            "accuracy": float(np.mean(pred == y_test)),
            "dtype": str(model.placement().dtype)}


def runner(variant: str) -> Callable[..., dict[str, Any]]:
    if variant == "arrayml.sklearn":
        from arrayml.sklearn import MLPClassifier

        return lambda *a: fit_estimator(MLPClassifier, *a)
    if variant == SKLEARN:
        from sklearn.neural_network import MLPClassifier as SkMLPClassifier

        return lambda *a: fit_estimator(SkMLPClassifier, *a)
    return arrayml_epochs


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def library_info() -> dict[str, Any]:
    import scipy.linalg  # noqa: F401 - scipy's own BLAS, so that it is listed (and limited) too
    import sklearn
    from threadpoolctl import threadpool_info

    return {
        "numpy": np.__version__, "scikit-learn": sklearn.__version__,
        "threadpools": [{k: pool.get(k) for k in ("user_api", "internal_api", "version", "num_threads")}
                        for pool in threadpool_info()],
    }


def run_dataset(name: str, data: tuple, *, rounds: int, epochs: int, settle: float,
                fns: dict[str, Callable[..., dict[str, Any]]]) -> dict:
    x, y, x_test, y_test = data
    variants = list(fns)
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    for v in variants:  # a warm-up fit of one epoch each (first-touch page faults, lazy imports): not counted
        fns[v](0, 1, x, y, x_test, y_test)
    for r in range(rounds):
        order = variants[r % len(variants):] + variants[:r % len(variants)]
        for v in order:
            time.sleep(settle)
            out = fns[v](r, epochs, x, y, x_test, y_test)  # random_state = the round: one seed per round
            runs[v].append(out)
            print(f"  {name} round {r + 1}/{rounds} {v:16s} {out['epoch_seconds']:.4f} s/epoch "
                  f"({out['epoch_cpu_seconds']:.4f} s of CPU)  test accuracy {out['accuracy']:.4f}", flush=True)
    rows = {}
    for v in variants:
        accs = [o["accuracy"] for o in runs[v]]
        row: dict[str, Any] = {"accuracy": {**spread(accs), "mean": statistics.mean(accs)}, "accuracies": accs,
                               "dtype": runs[v][-1]["dtype"], "epochs": runs[v][-1]["epochs"]}
        for key, label in (("epoch_seconds", "vs_scikit_learn"), ("epoch_cpu_seconds", "cpu_vs_scikit_learn")):
            secs = [o[key] for o in runs[v]]
            row[key], row[f"{key}_rounds"] = spread(secs), secs
            if SKLEARN in runs and v != SKLEARN:
                row[label] = spread([a / b[key] for a, b in zip(secs, runs[SKLEARN])])
        rows[v] = row
    return {"n_train": int(x.shape[0]), "n_test": int(x_test.shape[0]), "n_features": int(x.shape[1]), "variants": rows}


def print_table(name: str, result: dict) -> None:
    print(f"\n{name}: {result['n_train']} training samples, {result['n_features']} features, {result['n_test']} test")
    print("| variant | s/epoch, wall (min-max) | vs scikit-learn | s/epoch, CPU (min-max) | vs scikit-learn | "
          "test accuracy, mean (min-max) over the seeds |")
    print("|---|---|---|---|---|---|")

    def ratio(r: dict[str, float] | None) -> str:
        return f"{r['median']:.3f}x ({r['min']:.2f}-{r['max']:.2f})" if r else "1.000x"

    for v, row in result["variants"].items():
        e, c, a = row["epoch_seconds"], row["epoch_cpu_seconds"], row["accuracy"]
        print(f"| {v} | {e['median']:.4f} ({e['min']:.4f}-{e['max']:.4f}) | {ratio(row.get('vs_scikit_learn'))} | "
              f"{c['median']:.4f} ({c['min']:.4f}-{c['max']:.4f}) | {ratio(row.get('cpu_vs_scikit_learn'))} | "
              f"{100 * a['mean']:.2f}% ({100 * a['min']:.2f}-{100 * a['max']:.2f}) |")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default=None, help="the folder holding cifar10_uint8.npz (default: arrayml's search)")
    p.add_argument("--datasets", default="cifar10,digits", help="','-separated: cifar10, digits")
    p.add_argument("--rounds", type=int, default=5, help="fits of every variant (medians reported)")
    p.add_argument("--epochs", default="cifar10=10,digits=50", help="epochs per fit, by data set")
    p.add_argument("--threads", type=int, default=1, help="BLAS threads for every variant")
    p.add_argument("--settle", type=float, default=0.25, help="seconds of pause before each fit")
    p.add_argument("--variants", default=",".join(VARIANTS), help="','-separated subset of: " + ", ".join(VARIANTS))
    p.add_argument("--json", default=None, help="write the numbers to this JSON file (default: none written)")
    args = p.parse_args(argv)
    from threadpoolctl import threadpool_limits

    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    unknown = [d for d in datasets if d not in ("cifar10", "digits")]
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    bad = [v for v in variants if v not in VARIANTS]
    if unknown or bad or args.rounds < 1:
        p.error(f"unknown data sets {unknown} or variants {bad}, or --rounds < 1")
    epochs = {k: int(v) for k, v in (part.split("=") for part in args.epochs.split(","))}
    report: dict[str, Any] = {
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "host": {"machine": platform.machine(), "processor": platform.processor(), "cpus": os.cpu_count(),
                 "load_average_at_start": os.getloadavg()},
        "settings": {"hidden": list(HIDDEN), "lr": LR, "batch": BATCH, "alpha": ALPHA, "momentum": 0.0,
                     "threads": args.threads, "rounds": args.rounds, "epochs": epochs},
        "datasets": {},
    }
    fns = {v: runner(v) for v in variants}  # every library loaded first, so that the limit reaches all of their BLAS
    load_data("digits", None)
    with threadpool_limits(args.threads):
        report["libraries"] = library_info()
        print(f"BLAS threads {args.threads}; {report['libraries']['threadpools']}; load {report['host']['load_average_at_start']}")
        for name in datasets:
            data = load_data(name, args.data_dir)
            result = run_dataset(name, data, rounds=args.rounds, epochs=epochs.get(name, 10), settle=args.settle,
                                 fns=fns)
            report["datasets"][name] = result
            print_table(name, result)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
