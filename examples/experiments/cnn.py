#!/usr/bin/env python
"""Experiment 11, past MLPs: a convolutional network on CIFAR-10 against the best MLP, with a
target of 75% test accuracy within 15 minutes of training on the report's 2-core machine.

    python examples/experiments/cnn.py --data-dir ../shared/data/cifar10

The network (`SETTINGS`, the flags of ``examples/train.py --model cnn``): three stages of two 3x3
convolutions of 16, 32 and 64 channels, each followed by batch norm and ReLU, 2x2 max pooling
after each stage, the global average of each channel and one Linear to the 10 classes; random
crops (4 pixels of zero padding) and left-right flips of the training images; SGD with Nesterov
momentum 0.9 and weight decay 5e-4, a one-epoch warm-up then a cosine decay from lr 0.1, batch
128, 15 epochs. By default on PyTorch tensors (eager: torch's convolution kernels under arrayml's
hand-written backward), NumPy where torch is missing; ``--xp`` chooses another backend.

The best MLP is read from the beyond experiment (results/beyond/best/results.json: run
``beyond.py --parts 4`` first); nothing of it is retrained here. Writes results/cnn/cnn.json, the
run's folder results/cnn/cnn/ (results.json, loss curve, confusion matrix, checkpoint) and
cnn_vs_mlp_curves.png, cnn_vs_mlp_confusion.png.
"""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path
from typing import Any

from arrayml_app.experiments import (
    RESULTS,
    Stopwatch,
    base_config,
    command_line,
    out_dir,
    parser,
    preferred_xp,
    save_json,
    train_command,
)
from arrayml_app.figures import finish_axes, finished_epochs, new_figure, plot_confusions, save_figure
from arrayml_app.report import NotRun, Report, acc, pct, points, secs
from arrayml_app.run import run

#: The CNN's settings, as train.py's flags take them.
SETTINGS: dict[str, Any] = {
    "model": "cnn", "widths": [16, 32, 64], "blocks": 2, "batch_norm": True, "crop": 4, "flip": True,
    "optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4,
    "schedule": "warmup-cosine", "warmup_epochs": 1.0, "epochs": 15, "batch_size": 128,
}
#: The time the CNN may train for, and the accuracy it must reach.
TARGET_SECONDS, TARGET = 900.0, 0.75


def main(argv: list[str] | None = None) -> dict:
    p = parser(__doc__.split("\n\n")[0])
    p.set_defaults(xp=preferred_xp("torch"))
    args = p.parse_args(argv)
    out = out_dir(args, "cnn")
    clock = Stopwatch()
    cfg = base_config(args, out=str(out / "cnn"), **SETTINGS)
    if args.epochs:
        cfg.epochs = args.epochs
        cfg.warmup_epochs = min(1.0, cfg.epochs / 10)  # a quick check's warm-up: a tenth of it
    load_before = os.getloadavg()[0]
    r = run(cfg)
    cnn = summarise("CNN", r, {"before": load_before, "after": os.getloadavg()[0]})
    mlp_results = best_mlp(Path(args.out).parent if args.out else RESULTS)
    mlp = summarise("best MLP", mlp_results, None) if mlp_results is not None else None
    summary = {"experiment": "cnn", "command": command_line("cnn.py", argv), "settings": SETTINGS,
               "train_command": train_command(SETTINGS, "--xp", cfg.xp), "cnn": cnn, "mlp": mlp, "seconds": clock.seconds(),
               "target": {"accuracy": TARGET, "seconds": TARGET_SECONDS}}
    plot(cnn, mlp, out)
    save_json(summary, out / "cnn.json")
    for s in (cnn, mlp):
        if s is not None:
            print(f"{s['label']:<9} test accuracy {acc(s['test_accuracy'])}, {s['parameters']:,} parameters, "
                  f"{s['train_seconds']:.0f} s of training on {s['backend']}")
    return summary


def best_mlp(results: Path) -> dict | None:
    """results.json of the beyond experiment's best MLP, or None (with a line saying so) where
    it has not been run."""
    path = results / "beyond" / "best" / "results.json"
    if not path.is_file():
        print(f"no best MLP to compare with at {path}: run examples/experiments/beyond.py --parts 4 first")
        return None
    return json.loads(path.read_text())


def summarise(label: str, r: dict, load: dict | None) -> dict:
    """What the report needs of one run: accuracies and cumulative training seconds per epoch,
    the test confusion matrix, parameters, times and the machine."""
    epochs = finished_epochs(r["history"])
    elapsed = list(itertools.accumulate(e.get("seconds", 0.0) for e in epochs))
    test = r.get("test") or {}
    return {
        "label": label, "run": r["config"].get("out"), "test_accuracy": r["test_accuracy"],
        "best_val_accuracy": r["best_val_accuracy"], "best_epoch": r["best_epoch"],
        "parameters": r["model"]["parameters"], "architecture": r["model"].get("architecture"),
        "train_seconds": r["timing"]["train_seconds"], "seconds_per_epoch": r["timing"]["seconds_per_epoch"],
        "epochs": [e["epoch"] for e in epochs], "elapsed_seconds": elapsed,
        "train_accuracy": [e["train_accuracy"] for e in epochs], "val_accuracy": [e["val_accuracy"] for e in epochs],
        "confusion_matrix": test.get("confusion_matrix"), "classes": test.get("classes"),
        "backend": r["backend"], "compiled": bool(r["config"].get("compile")), "environment": r.get("environment"),
        "load_average": load,
    }


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------


def plot(cnn: dict, mlp: dict | None, out: Path) -> None:
    """Accuracy against epochs and against seconds of training, both models; their test
    confusion matrices side by side."""
    runs = [(cnn, "tab:blue")] + ([(mlp, "tab:red")] if mlp is not None else [])
    fig, (by_epoch, by_time) = new_figure(1, 2, size=(12, 4.5))
    for s, colour in runs:
        name = f"{s['label']} (test {acc(s['test_accuracy'])})"
        for ax, xs in ((by_epoch, s["epochs"]), (by_time, s["elapsed_seconds"])):
            ax.plot(xs, s["val_accuracy"], "o-", ms=3, color=colour, label=f"{name}: validation")
            ax.plot(xs, s["train_accuracy"], "--", color=colour, alpha=0.7, label=f"{s['label']}: training")
    by_time.axvline(TARGET_SECONDS, color="grey", lw=0.8, ls=":")
    by_time.axhline(TARGET, color="grey", lw=0.8, ls=":")
    finish_axes(by_epoch, legend={"fontsize": 8}, xlabel="epoch", ylabel="accuracy", title="accuracy per epoch")
    finish_axes(by_time, legend={"fontsize": 8}, xlabel="seconds of training", ylabel="accuracy",
                title=f"against time (dotted: {pct(TARGET)} in {TARGET_SECONDS / 60:.0f} minutes)")
    save_figure(fig, out / "cnn_vs_mlp_curves.png")
    with_matrix = [s for s, _ in runs if s["confusion_matrix"] is not None]
    if with_matrix:
        fig = plot_confusions([(s["confusion_matrix"], f"{s['label']}: test accuracy {acc(s['test_accuracy'])}")
                               for s in with_matrix], with_matrix[0]["classes"])
        save_figure(fig, out / "cnn_vs_mlp_confusion.png")


# --------------------------------------------------------------------------------------------
# Its section of docs/results.md (make_report.py puts the sections together)
# --------------------------------------------------------------------------------------------


def report(rep: Report, s: dict) -> None:
    """The CNN against the best MLP: a table, the command, the figures, the target, and where the
    two models' mistakes differ."""
    w = rep.w
    cnn, mlp = s["cnn"], s["mlp"]
    cfg = s["settings"]
    w(f"A convolutional network of `arrayml.CNN` (`Conv2d`, `BatchNorm2d`, `MaxPool2d`, `GlobalAvgPool2d`: each "
      "layer's backward written by hand, derived in [the derivations](derivations.md)) on the NCHW images: "
      f"{len(cfg['widths'])} stages of {cfg['blocks']} 3x3 convolutions each, of {', '.join(map(str, cfg['widths']))} "
      "channels, batch norm and ReLU after each convolution, 2x2 max pooling after each stage, the global average of each channel and one Linear; random crops "
      f"({cfg['crop']} pixels of padding) and left–right flips of the training images; SGD with Nesterov momentum "
      f"{cfg['momentum']:g} and weight decay {cfg['weight_decay']:g}, a warm-up + cosine schedule from lr "
      f"{cfg['lr']:g}, batch {cfg['batch_size']}, {cfg['epochs']} epochs. On the {cnn['backend']} backend"
      + (" with the step compiled" if cnn["compiled"] else " (eager)") + ". The best MLP is the one of "
      f"{rep.link('beyond')}, not retrained. Command:\n")
    w(f"```bash\n{s['train_command']}\n```\n")
    rows = []
    for r in (cnn, mlp):
        if r is None:
            continue
        rows.append((r["label"], f"**{acc(r['test_accuracy'])}**", f"{pct(r['best_val_accuracy'])} ({r['best_epoch']})",
                     f"{r['parameters']:,}", _seconds(r["train_seconds"]),
                     f"{r['seconds_per_epoch']:.1f} s", r["backend"] + (" compiled" if r["compiled"] else "")))
    rep.table(("model", "test accuracy", "best validation accuracy (epoch)", "parameters", "training time", "per epoch",
               "backend"), rows)
    rep.fig("cnn/cnn_vs_mlp_curves.png", "training and validation accuracy of the CNN and the best MLP, per epoch "
            "and against seconds of training")
    rep.fig("cnn/cnn_vs_mlp_confusion.png", "test confusion matrices of the CNN and the best MLP")
    w(target_text(cnn))
    if mlp is not None and cnn["test_accuracy"] is not None and mlp["test_accuracy"] is not None:
        w(comparison_text(cnn, mlp))
    w("")


def _seconds(x: float) -> str:
    """`secs`'s text, with the exact seconds where it gave minutes."""
    exact = f"{x:.0f} s"
    return exact if secs(x) == exact else f"{secs(x)} ({exact})"


def target_text(cnn: dict) -> str:
    env, load = cnn.get("environment") or {}, cnn.get("load_average") or {}
    ok = cnn["test_accuracy"] is not None and cnn["test_accuracy"] >= TARGET and cnn["train_seconds"] <= TARGET_SECONDS
    text = (f"**Against the target** of {pct(TARGET)} test accuracy within {TARGET_SECONDS / 60:.0f} minutes of "
            f"training: ")
    if ok:
        text += (f"reached, {points(cnn['test_accuracy'], TARGET)} points past it, in "
                 f"{100 * cnn['train_seconds'] / TARGET_SECONDS:.0f}% of the time. ")
        over = [(e, t) for e, t, v in zip(cnn["epochs"], cnn["elapsed_seconds"], cnn["val_accuracy"]) if v >= TARGET]
        if over:
            text += (f"Validation accuracy first passed {pct(TARGET)} after epoch {over[0][0]}, "
                     f"{over[0][1]:.0f} s into training. ")
    else:
        text += "**missed** (see the table). "
    if env:
        text += (f"The training time is `fit`'s, from the first step to the last epoch's validation, measured on "
                 f"{env.get('date', '?')[:10]} on the {env.get('cpu_count', '?')}-core machine of this report")
        if load.get("before") is not None:
            text += (f" (load average {load['before']:.1f} before the run, {load['after']:.1f} after it; "
                     f"{env.get('cpu_count', '?')} is every core busy)")
        text += "."
    per_epoch = [b - a for a, b in zip([0.0, *cnn["elapsed_seconds"]], cnn["elapsed_seconds"])]
    if per_epoch:
        text += (f" Its epochs took {min(per_epoch):.0f}–{max(per_epoch):.0f} s (median "
                 f"{sorted(per_epoch)[len(per_epoch) // 2]:.0f} s), validation included: where they differ much, "
                 "other work shared the machine during the slow ones.")
    return text + "\n"


def comparison_text(cnn: dict, mlp: dict) -> str:
    """Where the CNN gains: the classes whose recall rose most, from the two confusion matrices."""
    text = (f"**CNN against MLP.** {points(cnn['test_accuracy'], mlp['test_accuracy'])} points of test accuracy with "
            f"{mlp['parameters'] / cnn['parameters']:.0f} times fewer parameters ({cnn['parameters']:,} against "
            f"{mlp['parameters']:,}): a convolution shares its weights across the image and sees neighbouring pixels "
            "together, where the MLP must learn every position separately. ")
    if cnn["confusion_matrix"] and mlp["confusion_matrix"]:
        def recalls(m: list[list[int]]) -> list[float]:
            return [row[i] / max(sum(row), 1) for i, row in enumerate(m)]

        gains = sorted(zip(cnn["classes"], recalls(cnn["confusion_matrix"]), recalls(mlp["confusion_matrix"])),
                       key=lambda t: t[1] - t[2], reverse=True)
        worst = gains[-1]
        text += ("Per class (recall, CNN against MLP), it gained most on "
                 + ", ".join(f"{name} ({pct(ours)} against {pct(theirs)})" for name, ours, theirs in gains[:3])
                 + f", least on {worst[0]} ({pct(worst[1])} against {pct(worst[2])}).")
    return text + "\n"


def cnn_accuracy(rep: Report) -> str:
    """One sentence for other sections: the CNN's test accuracy and time (`NotRun` without it)."""
    s = rep.load("cnn", "cnn.json")
    if not s or s["cnn"]["test_accuracy"] is None:
        raise NotRun("cnn")
    c = s["cnn"]
    return f"a CNN reaches {acc(c['test_accuracy'])} in {secs(c['train_seconds'])} of training ({rep.link('cnn')})"


if __name__ == "__main__":
    main()
