#!/usr/bin/env python
"""Experiment 1: the assignment's default MLP (one hidden layer of 128, 10 epochs, lr 0.1, batch
128, seed 42) with arrayml and ReLU, the same network in plain PyTorch (torch.nn + autograd), and
arrayml with ELU, which the course's later edition uses.

    python examples/experiments/default_mlp.py --data-dir ../shared/data/cifar10

Writes results/default_mlp/<run>/results.json (+ loss curve and confusion matrix per run),
results/default_mlp/summary.json and results/default_mlp/default_mlp_curves.png.
"""

from __future__ import annotations

from pathlib import Path

from arrayml_app.experiments import Stopwatch, base_config, command_line, out_dir, parser, save_json
from arrayml_app.figures import new_figure, save_figure
from arrayml_app.run import run

RUNS = {
    "arrayml-relu": {"activation": "relu"},
    "torch-reference-relu": {"activation": "relu", "reference": True},
    "arrayml-elu": {"activation": "elu"},
}


def torch_learner():
    from arrayml_app.torch_mirror import torch_learner as factory  # imports torch: only when used

    return factory


def main(argv: list[str] | None = None) -> dict:
    args = parser(__doc__.split("\n\n")[0]).parse_args(argv)
    out = out_dir(args, "default_mlp")
    clock = Stopwatch()
    summary = {"experiment": "default_mlp", "command": command_line("default_mlp.py", argv), "runs": {}}
    results = {}
    for name, overrides in RUNS.items():
        reference = overrides.get("reference", False)
        cfg = base_config(args, out=str(out / name), **overrides)
        if reference:  # plain torch.nn: on the CPU, or on the GPU when the others run on one
            cfg.xp = "torch"
            cfg.device = args.device if args.xp == "torch" else ("cuda" if args.xp == "cupy" else None)
        r = run(cfg, make_learner=torch_learner()) if reference else run(cfg)
        results[name] = r
        summary["runs"][name] = {
            "implementation": r["implementation"], "backend": r["backend"], "activation": cfg.activation,
            "test_accuracy": r["test_accuracy"], "test_loss": r["test"]["loss"] if r["test"] else None,
            "best_epoch": r["best_epoch"], "best_val_accuracy": r["best_val_accuracy"],
            "seconds": r["timing"]["wall_seconds"], "seconds_per_epoch": r["timing"]["seconds_per_epoch"],
            "first_step_losses": r["history"]["steps"]["loss"][:5],
        }
    summary["data"] = results["arrayml-relu"]["data"]
    summary["seconds"] = clock.seconds()
    plot(results, out / "default_mlp_curves.png")
    save_json(summary, out / "summary.json")
    for name, run_summary in summary["runs"].items():
        print(f"{name:<22} test accuracy {run_summary['test_accuracy']:.4f}  ({run_summary['seconds']:.0f}s)")
    return summary


def plot(results: dict, path: Path) -> None:
    fig, (ax_loss, ax_acc) = new_figure(1, 2, size=(12, 4.2))
    colours = {"arrayml-relu": "tab:blue", "torch-reference-relu": "tab:red", "arrayml-elu": "tab:green"}
    for name, r in results.items():
        epochs = [e for e in r["history"]["epochs"] if not e.get("diverged")]
        ep = [e["epoch"] for e in epochs]
        c = colours.get(name)
        label = f"{name} (test {r['test_accuracy']:.3f})"
        ax_loss.plot(ep, [e["train_loss"] for e in epochs], "-", color=c, label=f"{name} train")
        ax_loss.plot(ep, [e["val_loss"] for e in epochs], "--", color=c, label=f"{name} validation")
        ax_acc.plot(ep, [e["val_accuracy"] for e in epochs], "o-", color=c, label=label)
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy loss", title="loss (solid: train, dashed: validation)")
    ax_acc.set(xlabel="epoch", ylabel="validation accuracy", title="validation accuracy (legend: test accuracy of best epoch)")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    save_figure(fig, path)


if __name__ == "__main__":
    main()
