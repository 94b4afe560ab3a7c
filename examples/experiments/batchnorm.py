#!/usr/bin/env python
"""Experiment 5: batch norm across network sizes. Hidden dims [128], [256, 128] and
[512, 256, 128], each with and without batch norm, 20 epochs, lr 0.1.

    python examples/experiments/batchnorm.py --data-dir ../shared/data/cifar10

Writes results/batchnorm/batchnorm.json, batchnorm_train_accuracy.png and
batchnorm_val_accuracy.png (all six curves each), and a test-accuracy table in the JSON.
"""

from __future__ import annotations

from pathlib import Path

from arrayml_app.experiments import Stopwatch, base_config, command_line, out_dir, parser, save_json
from arrayml_app.figures import new_figure, save_figure
from arrayml_app.run import run

SIZES = [[128], [256, 128], [512, 256, 128]]


def main(argv: list[str] | None = None) -> dict:
    args = parser(__doc__.split("\n\n")[0]).parse_args(argv)
    out = out_dir(args, "batchnorm")
    clock = Stopwatch()
    runs = []
    for hidden in SIZES:
        for bn in (False, True):
            name = "-".join(map(str, hidden)) + ("-bn" if bn else "")
            cfg = base_config(args, hidden_dims=hidden, batch_norm=bn, epochs=20, out=str(out / name))
            if args.epochs:
                cfg.epochs = args.epochs
            r = run(cfg, plots=False)
            epochs = r["history"]["epochs"]
            runs.append({
                "name": name, "hidden_dims": hidden, "batch_norm": bn, "parameters": r["model"]["parameters"],
                "test_accuracy": r["test_accuracy"], "best_val_accuracy": r["best_val_accuracy"], "best_epoch": r["best_epoch"],
                "train_accuracy": [e.get("train_accuracy") for e in epochs],
                "val_accuracy": [e.get("val_accuracy") for e in epochs],
                "train_loss": [e.get("train_loss") for e in epochs],
                "diverged": r["diverged"], "seconds": r["timing"]["wall_seconds"],
                "seconds_per_epoch": r["timing"]["seconds_per_epoch"],
            })
    summary = {"experiment": "batchnorm", "command": command_line("batchnorm.py", argv), "runs": runs, "seconds": clock.seconds()}
    for key, title in (("train_accuracy", "training accuracy"), ("val_accuracy", "validation accuracy")):
        plot(runs, key, title, out / f"batchnorm_{key}.png")
    save_json(summary, out / "batchnorm.json")
    print(f"{'hidden dims':<16}{'batch norm':>11}{'params':>10}{'test acc':>10}{'best val':>10}{'final train':>13}")
    for r in runs:
        print(f"{str(r['hidden_dims']):<16}{str(r['batch_norm']):>11}{r['parameters']:>10}{r['test_accuracy']:>10.4f}"
              f"{r['best_val_accuracy']:>10.4f}{r['train_accuracy'][-1]:>13.4f}")
    return summary


def plot(runs: list[dict], key: str, title: str, path: Path) -> None:
    colours = {"128": "tab:blue", "256-128": "tab:orange", "512-256-128": "tab:green"}
    fig, ax = new_figure(size=(8, 4.8))
    for r in runs:
        size = "-".join(map(str, r["hidden_dims"]))
        ys = r[key]
        ax.plot(range(1, len(ys) + 1), ys, "o-" if r["batch_norm"] else "s--", ms=3, color=colours.get(size),
                label=f"hidden {r['hidden_dims']}" + (" + batch norm" if r["batch_norm"] else ""))
    ax.set(xlabel="epoch", ylabel=title, title=f"{title} over epochs (lr 0.1, batch 128)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, path)


if __name__ == "__main__":
    main()
