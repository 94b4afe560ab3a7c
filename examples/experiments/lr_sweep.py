#!/usr/bin/env python
"""Experiment 3: learning-rate sweep. Nine rates from 1e-6 to 100, log-spaced, plain SGD, the
default network; diverging rates are recorded and drawn as diverged, not dropped.

    python examples/experiments/lr_sweep.py --data-dir ../shared/data/cifar10

Writes results/lr_sweep/lr_sweep.json, lr_sweep_accuracy.png (best validation accuracy against
the rate) and lr_sweep_losses.png (training loss over epochs, one curve per rate).
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

from arrayml_app.experiments import Stopwatch, base_config, command_line, out_dir, parser, save_json
from arrayml_app.figures import new_figure, save_figure
from arrayml_app.run import run

RATES = [10.0 ** k for k in range(-6, 3)]  # 1e-6, 1e-5, ..., 1e2: nine rates


def main(argv: list[str] | None = None) -> dict:
    args = parser(__doc__.split("\n\n")[0]).parse_args(argv)
    out = out_dir(args, "lr_sweep")
    clock = Stopwatch()
    runs = []
    for lr in RATES:
        cfg = base_config(args, lr=lr, out=str(out / f"lr{lr:g}"))
        r = run(cfg, plots=False)
        epochs = r["history"]["epochs"]
        runs.append({
            "lr": lr,
            "diverged": r["diverged"],
            "best_val_accuracy": r["best_val_accuracy"],
            "best_epoch": r["best_epoch"],
            "test_accuracy": r["test_accuracy"],
            "train_loss": [e.get("train_loss") for e in epochs],
            "val_accuracy": [e.get("val_accuracy") for e in epochs],
            "step_loss_mean_10": block_means(r["history"]["steps"]["loss"], 10),
            "steps_per_epoch": len(r["history"]["steps"]["loss"]) / max(len(epochs), 1),
            "seconds": r["timing"]["wall_seconds"],
        })
    finished = [row for row in runs if row["best_val_accuracy"] is not None]
    best = max(finished, key=lambda row: row["best_val_accuracy"])
    summary = {"experiment": "lr_sweep", "command": command_line("lr_sweep.py", argv), "rates": RATES, "runs": runs,
               "best_lr": best["lr"], "best_val_accuracy": best["best_val_accuracy"],
               "best_test_accuracy": best["test_accuracy"],
               "diverged_rates": [row["lr"] for row in runs if row["diverged"]], "seconds": clock.seconds()}
    plot_accuracy(runs, out / "lr_sweep_accuracy.png")
    plot_losses(runs, out / "lr_sweep_losses.png")
    save_json(summary, out / "lr_sweep.json")
    for row in runs:
        status = f"diverged at epoch {row['diverged']['epoch']}" if row["diverged"] else ""
        acc = "—" if row["best_val_accuracy"] is None else f"{row['best_val_accuracy']:.4f}"
        print(f"lr {row['lr']:<8g} best val acc {acc:<8} {status}")
    print(f"best rate {best['lr']:g}")
    return summary


def block_means(values: list[float], size: int) -> list[float]:
    """Means of consecutive blocks of `size` steps (NaN if any value in a block is not finite)."""
    out = []
    for start in range(0, len(values), size):
        block = [float(v) for v in values[start:start + size]]
        out.append(sum(block) / len(block) if all(math.isfinite(v) for v in block) else float("nan"))
    return out


def plot_accuracy(runs: list[dict], path: Path) -> None:
    fig, ax = new_figure(size=(7, 4.2))
    ok = [r for r in runs if r["best_val_accuracy"] is not None]
    ax.plot([r["lr"] for r in ok], [r["best_val_accuracy"] for r in ok], "o-", color="tab:blue", label="best validation accuracy")
    bad = [r for r in runs if r["diverged"]]
    for r in bad:
        y = r["best_val_accuracy"] if r["best_val_accuracy"] is not None else 0.1
        ax.plot([r["lr"]], [y], "x", color="tab:red", markersize=12, mew=3)
        ax.annotate(f"diverged\n(epoch {r['diverged']['epoch']})", (r["lr"], y), textcoords="offset points", xytext=(0, 12),
                    ha="center", color="tab:red", fontsize=8)
    ax.axhline(0.1, color="grey", lw=0.8, ls=":", label="chance (10 classes)")
    ax.set_xscale("log")
    ax.set(xlabel="learning rate (log scale)", ylabel="best validation accuracy", ylim=(0, max(0.6, ax.get_ylim()[1])),
           title="learning-rate sweep, plain SGD, 10 epochs")
    ax.grid(alpha=0.3, which="major")
    ax.legend(loc="upper left")
    save_figure(fig, path)


def plot_losses(runs: list[dict], path: Path, ceiling: float = 20.0) -> None:
    """Training loss over epochs (means of 10 steps), one curve per rate. Values above `ceiling`
    are drawn at the ceiling, and a diverged run ends in a red cross where its loss stopped being
    finite, so that one exploding run cannot flatten the others."""

    fig, ax = new_figure(size=(9, 4.8))
    cmap = matplotlib.colormaps.get_cmap("tab10")
    for i, r in enumerate(runs):
        colour = cmap(i % 10)
        xs = [(k * 10 + 5) / r["steps_per_epoch"] for k in range(len(r["step_loss_mean_10"]))]
        ys = [v if v is not None and math.isfinite(v) else float("nan") for v in r["step_loss_mean_10"]]
        over = any(y > ceiling for y in ys if math.isfinite(y))
        label = f"lr {r['lr']:g}"
        if r["diverged"]:
            label += f" (diverged in epoch {r['diverged']['epoch']})"
        elif over:
            label += f" (loss above {ceiling:g}, clipped)"
        ax.plot(xs, [min(y, ceiling) for y in ys], color=colour, lw=1.2, label=label, ls="--" if r["diverged"] else "-")
        if r["diverged"]:
            finite = [x for x, y in zip(xs, ys) if math.isfinite(y)]
            ax.plot([finite[-1] if finite else 0.0], [ceiling], "x", color="tab:red", markersize=10, mew=2)
    ax.set_yscale("log")
    ax.set_ylim(top=ceiling * 1.3)
    ax.set(xlabel="epoch", ylabel="training loss (mean of each 10 steps, log scale)",
           title=f"training loss for each learning rate (clipped at {ceiling:g}; red cross: loss became NaN/inf)")
    ax.grid(alpha=0.3, which="major")
    ax.legend(fontsize=7, ncol=2, loc="lower left")
    save_figure(fig, path)


if __name__ == "__main__":
    main()
