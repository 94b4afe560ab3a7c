#!/usr/bin/env python
"""Experiment 4: learning-rate schedules (arrayml.schedules, usable as train.py --schedule):
constant, step decay, cosine, and linear warm-up then cosine. Draws each schedule over the run,
then trains the default network with each and compares them with the default constant rate.

    python examples/experiments/schedules.py --data-dir ../shared/data/cifar10

Writes results/schedules/schedules.json, schedules_lr.png (rate against epoch) and
schedules_runs.png (validation accuracy and training loss of each run).
"""

from __future__ import annotations

from pathlib import Path

from arrayml.schedules import make_schedule
from arrayml_app.experiments import Stopwatch, base_config, command_line, out_dir, parser, save_json
from arrayml_app.figures import new_figure, save_figure
from arrayml_app.run import run

SCHEDULES = {  # extra settings per schedule; step size and warm-up are scaled to the run in main()
    "constant": {},
    "step": {"gamma": 0.1},
    "cosine": {},
    "warmup-cosine": {},
}


def main(argv: list[str] | None = None) -> dict:
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--no-train", action="store_true", help="only draw the schedules")
    args = p.parse_args(argv)
    out = out_dir(args, "schedules")
    clock = Stopwatch()
    base = base_config(args)
    settings = {name: dict(kw) for name, kw in SCHEDULES.items()}
    settings["warmup-cosine"]["warmup_epochs"] = min(1.0, base.epochs / 10)  # one epoch of a 10-epoch run
    settings["step"]["step_size"] = max(base.epochs * 0.4, 1.0)  # decay at 40% and 80% of the run
    schedules = {name: make_schedule(name, base.lr, epochs=base.epochs, **kw) for name, kw in settings.items()}
    plot_schedules(schedules, base.epochs, out / "schedules_lr.png")
    summary = {"experiment": "schedules", "command": command_line("schedules.py", argv),
               "schedules": {k: s.describe() for k, s in schedules.items()}, "runs": {}}
    results = {}
    if not args.no_train:
        for name, kw in settings.items():
            cfg = base_config(args, schedule=name, out=str(out / name), **kw)
            r = run(cfg, plots=False)
            results[name] = r
            summary["runs"][name] = {
                "test_accuracy": r["test_accuracy"], "best_val_accuracy": r["best_val_accuracy"],
                "best_epoch": r["best_epoch"], "final_train_loss": r["history"]["epochs"][-1].get("train_loss"),
                "val_accuracy": [e.get("val_accuracy") for e in r["history"]["epochs"]],
                "train_loss": [e.get("train_loss") for e in r["history"]["epochs"]],
                "seconds": r["timing"]["wall_seconds"],
            }
        plot_runs(results, out / "schedules_runs.png")
    summary["seconds"] = clock.seconds()
    save_json(summary, out / "schedules.json")
    for name, row in summary["runs"].items():
        print(f"{name:<14} test accuracy {row['test_accuracy']:.4f}  best val {row['best_val_accuracy']:.4f} (epoch {row['best_epoch']})")
    return summary


def plot_schedules(schedules: dict, epochs: int, path: Path) -> None:
    import numpy as np

    t = np.linspace(0, epochs, 2000, endpoint=False)
    fig, ax = new_figure(size=(7, 4))
    for name, sched in schedules.items():
        ax.plot(t, [sched(e) for e in t], lw=2, label=name)
    ax.set(xlabel="epoch", ylabel="learning rate", title=f"learning-rate schedules over {epochs} epochs (peak {schedules['constant'].lr:g})")
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, path)


def plot_runs(results: dict, path: Path) -> None:
    fig, (ax_acc, ax_loss) = new_figure(1, 2, size=(12, 4.2))
    for name, r in results.items():
        epochs = [e for e in r["history"]["epochs"] if not e.get("diverged")]
        ep = [e["epoch"] for e in epochs]
        ax_acc.plot(ep, [e["val_accuracy"] for e in epochs], "o-", label=f"{name} (test {r['test_accuracy']:.3f})")
        ax_loss.plot(ep, [e["train_loss"] for e in epochs], "o-", label=name)
    ax_acc.set(xlabel="epoch", ylabel="validation accuracy", title="validation accuracy")
    ax_loss.set(xlabel="epoch", ylabel="training loss (epoch mean)", title="training loss")
    for ax in (ax_acc, ax_loss):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    save_figure(fig, path)


if __name__ == "__main__":
    main()
