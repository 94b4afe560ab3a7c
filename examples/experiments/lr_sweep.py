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
from arrayml_app.figures import finish_axes, new_figure, save_figure
from arrayml_app.report import NotRun, Report, acc, listing, pct, second_half, secs, spread
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
    finish_axes(ax, legend={"loc": "upper left"}, grid={"which": "major"}, xlabel="learning rate (log scale)",
                ylabel="best validation accuracy", ylim=(0, max(0.6, ax.get_ylim()[1])),
                title="learning-rate sweep, plain SGD, 10 epochs")
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
    finish_axes(ax, legend={"fontsize": 7, "ncol": 2, "loc": "lower left"}, grid={"which": "major"}, xlabel="epoch",
                ylabel="training loss (mean of each 10 steps, log scale)",
                title=f"training loss for each learning rate (clipped at {ceiling:g}; red cross: loss became NaN/inf)")
    save_figure(fig, path)


# --------------------------------------------------------------------------------------------
# Its section of docs/results.md (make_report.py puts the sections together)
# --------------------------------------------------------------------------------------------


def report(rep: Report, s: dict) -> None:
    """The settings, the table of rates, the two figures, then what the sweep shows."""
    w = rep.w
    runs = s["runs"]
    settings_text(rep, runs)
    rep.table(("learning rate", "best val accuracy", "test accuracy", "outcome", "time"),
              ((f"{r['lr']:g}", pct(r["best_val_accuracy"]), acc(r["test_accuracy"]),
                f"diverged in epoch {r['diverged']['epoch']} (step {r['diverged']['step']})" if r["diverged"] else "trained",
                secs(r["seconds"])) for r in runs))
    rep.fig("lr_sweep/lr_sweep_accuracy.png", "best validation accuracy against learning rate")
    rep.fig("lr_sweep/lr_sweep_losses.png", "training loss over epochs for each learning rate")
    finished = [r for r in runs if r["best_val_accuracy"] is not None]
    if not finished:
        w("**Every rate diverged**: no epoch finished, so there is no best rate.\n")
        return
    ranked = sorted(finished, key=lambda r: r["best_val_accuracy"], reverse=True)
    best, second = ranked[0], ranked[1] if len(ranked) > 1 else None
    diverged = [r for r in runs if r["diverged"]]
    text = (best_text(best, second) + slower_text(rep, finished, best, second) + diverged_text(diverged, finished)
            + window_text(best, second) + steps_text(best, epochs_of(runs)) + default_rate_text(rep, finished, diverged)
            + schedules_text(rep))
    w(text.rstrip() + "\n")


def epochs_of(runs: list[dict]) -> int | None:
    """The number of epochs of a run that did not diverge."""
    return max((len(r["val_accuracy"]) for r in runs if not r["diverged"]), default=None)


def settings_text(rep: Report, runs: list[dict]) -> None:
    rates = [r["lr"] for r in runs]
    n_epochs = epochs_of(runs)
    subs = [rep.load("lr_sweep", f"lr{lr:g}", "results.json") for lr in rates]
    log_every = next((x["config"].get("log_every") for x in subs if x), None)
    ratios = {round(math.log10(b / a), 6) for a, b in zip(rates, rates[1:])}
    rep.w(f"{len(rates)} rates from {min(rates):g} to {max(rates):g}"
          + (f", a factor of {10 ** ratios.pop():g} apart" if len(ratios) == 1 else "")
          + ", plain SGD, the default network"
          + (f", {n_epochs} epochs each" if n_epochs else "")
          + ". A run whose loss becomes NaN or infinite stops there and is recorded as diverged (arrayml checks the loss "
          + (f"once every {log_every} steps, " if log_every else "")
          + "when it reads it back).\n")


def best_text(best: dict, second: dict | None) -> str:
    text = (f"**Best rate: {best['lr']:g}** (best validation accuracy {pct(best['best_val_accuracy'])}, test "
            f"{acc(best['test_accuracy'])})")
    if not second:
        return text + ". "
    return text + (f", then {second['lr']:g} ({pct(second['best_val_accuracy'])} validation, "
                   f"{acc(second['test_accuracy'])} test). After the first epoch lr {second['lr']:g} is at "
                   f"{pct(second['val_accuracy'][0])} and lr {best['lr']:g} at {pct(best['val_accuracy'][0])}. ")


def slower_text(rep: Report, finished: list[dict], best: dict, second: dict | None) -> str:
    """The rates below the two best: where they end after the same number of steps."""
    lower = [r for r in finished if r["lr"] < min(best["lr"], second["lr"] if second else best["lr"])]
    if not lower:
        return ""
    classes = rep.classes()
    return ("Smaller rates end lower after the same number of steps: "
            + ", ".join(f"lr {r['lr']:g} reaches {pct(r['best_val_accuracy'])} with a final training loss of "
                        f"{r['train_loss'][-1]:.2f}" for r in lower)
            + (f" (chance is {100 / len(classes):.0f}%, a loss of ln {len(classes)} ≈ "
               f"{math.log(len(classes)):.2f})" if classes else "") + ". ")


def diverged_text(diverged: list[dict], finished: list[dict]) -> str:
    if not diverged:
        return ""
    above = all(r["lr"] > max(f["lr"] for f in finished) for r in diverged)
    return (("The larger rates diverge: " if above else "These rates diverge: ") + ", ".join(
        f"lr {r['lr']:g} in epoch {r['diverged']['epoch']} (step {r['diverged']['step']}, loss {r['diverged']['loss']})"
        for r in diverged) + ". On a quadratic, once lr × curvature exceeds 2, each step overshoots the minimum "
        "along the steepest direction by more than it started with, and the loss grows geometrically. ")


def window_text(best: dict, second: dict | None) -> str:
    """Whether the gap between the two best rates is larger than their validation noise."""
    if not second:
        return ""

    def wobble(r: dict) -> float | None:
        return spread(second_half(r["val_accuracy"])[0])

    gap = 100 * abs(best["best_val_accuracy"] - second["best_val_accuracy"])
    wb, ws = wobble(best), wobble(second)
    if wb is None or ws is None:
        return ""
    noise = max(wb, ws)
    return (f"The {gap:.1f}-point gap between {best['lr']:g} and {second['lr']:g} is "
            + ("smaller" if gap < noise else "larger")
            + f" than the range their validation accuracies cover over the second half of the run "
            f"({wb:.1f} and {ws:.1f} points)"
            + (", so the sweep singles out a window of rates rather than one value. " if gap < noise
               else f", so the sweep prefers {best['lr']:g}. "))


def steps_text(best: dict, n_epochs: int | None) -> str:
    steps = best.get("steps_per_epoch")
    return f"Each run has {int(steps) * n_epochs} steps ({int(steps)} per epoch). " if steps and n_epochs else ""


def default_rate_text(rep: Report, finished: list[dict], diverged: list[dict]) -> str:
    """Where the default rate (section 1's) lies between the rates that trained and diverged."""
    default_lr = rep.default_run().get("config", {}).get("lr")
    if default_lr is None or not diverged:
        return ""
    smallest_bad = min(r["lr"] for r in diverged)
    largest_ok = max(r["lr"] for r in finished)
    return (f"The default rate {default_lr:g} is "
            + ("the largest rate that trained" if default_lr == largest_ok else f"below the largest rate that trained ({largest_ok:g})")
            + f"; the smallest rate that diverged is {smallest_bad / default_lr:g} times larger. ")


def schedules_text(rep: Report) -> str:
    """What lowering the rate during the run gives (the schedules' section)."""
    sched = rep.load("schedules", "schedules.json")
    if not (sched and "constant" in sched.get("runs", {})):
        return ""
    const = sched["runs"]["constant"]["test_accuracy"]
    gains = {k: r["test_accuracy"] - const for k, r in sched["runs"].items()
             if k != "constant" and r["test_accuracy"] is not None and const is not None}
    if not gains:
        return ""
    k = max(gains, key=gains.get)
    return (f"Lowering the rate during the run ({rep.ref('schedules')}) changes test accuracy by "
            f"{100 * min(gains.values()):+.2f} to {100 * max(gains.values()):+.2f} points ({k} best).")


# --------------------------------------------------------------------------------------------
# Its sentences in the answers to the assignment's questions (questions.md names them)
# --------------------------------------------------------------------------------------------


def sweep(rep: Report) -> list[dict]:
    """The learning-rate sweep's runs by increasing rate (`NotRun` without it)."""
    return sorted(rep.need("lr_sweep")["runs"], key=lambda r: r["lr"])


def blow_up(rep: Report, run: dict) -> str:
    """The per-step losses of a diverged run until they stop being finite."""
    steps = ((rep.load("lr_sweep", f"lr{run['lr']:g}", "results.json") or {}).get("history") or {}).get("steps", {})
    finite = []
    for loss in steps.get("loss", []):
        if loss is None or not math.isfinite(loss):
            break
        finite.append(loss)
    if len(finite) < 2:
        return ""
    shown = " → ".join(f"{v:.3g}" for v in finite[:3]) + (f" → … → {finite[-1]:.3g}" if len(finite) > 3 else "")
    return f"its loss went {shown} over its first {len(finite)} steps, then NaN"


def rate_extremes(rep: Report) -> str:
    runs = sweep(rep)
    low, high = runs[0], runs[-1]
    finished = [r for r in runs if r["best_val_accuracy"] is not None]
    best = max(finished, key=lambda r: r["best_val_accuracy"]) if finished else None
    classes = rep.classes()
    clauses = []
    if high["diverged"]:
        grew = blow_up(rep, high)
        clauses.append(f"at η = {high['lr']:g} the run diverged in epoch {high['diverged']['epoch']} at step "
                       f"{high['diverged']['step']}" + (f" ({grew})" if grew else ""))
    if low["train_loss"] and low["train_loss"][0] is not None:
        clause = (f"at η = {low['lr']:g} the training loss only went from {low['train_loss'][0]:.2f} (epoch 1) to "
                  f"{low['train_loss'][-1]:.2f} (epoch {len(low['train_loss'])}), with best validation accuracy "
                  f"{pct(low['best_val_accuracy'])}" + (f" (chance: {100 / len(classes):.0f}%)" if classes else ""))
        if best is not None and best is not low:
            faster = next((e for e, v in enumerate(best["train_loss"], 1) if v is not None and v < low["train_loss"][-1]), None)
            clause += (f", while η = {best['lr']:g} reached {pct(best['best_val_accuracy'])} best validation accuracy"
                       + (f" and was below that final loss after {'its first epoch' if faster == 1 else f'epoch {faster}'}"
                          if faster else ""))
        clauses.append(clause)
    if not clauses:
        return ""
    epochs = max((len(r["train_loss"]) for r in runs if not r["diverged"]), default=0)
    return f"Measured ({rep.link('lr_sweep')}, {len(runs)} rates, {epochs} epochs each): " + "; ".join(clauses) + "."


def warmup_overshoot(rep: Report) -> str:
    """The first steps' losses at the default rate against a smaller one (nothing without the sweep)."""
    try:
        runs = sweep(rep)
    except NotRun:
        return ""
    first = {r["lr"]: (r.get("step_loss_mean_10") or [None])[0] for r in runs}
    default_lr = rep.default_run().get("config", {}).get("lr")
    slower = [lr for lr in first if default_lr is not None and lr < default_lr and first[lr] is not None]
    if default_lr not in first or first[default_lr] is None or not slower:
        return ""
    lr = max(slower)
    losses = ((rep.load("default_mlp", "summary.json") or {}).get("runs", {}).get("arrayml-relu") or {}).get("first_step_losses")
    return ("The overshoot is measured: "
            + (f"the default run's first {len(losses)} losses are {', '.join(f'{v:.2f}' for v in losses)} "
               f"({rep.link('default_mlp')}), and " if losses and losses[-1] > losses[0] else "")
            + f"at η = {default_lr:g} the first ten steps average a loss of {first[default_lr]:.2f}, against "
            f"{first[lr]:.2f} at η = {lr:g} ({rep.link('lr_sweep')}).")


def best_rate(rep: Report) -> str:
    runs = sweep(rep)
    finished = sorted((r for r in runs if r["best_val_accuracy"] is not None), key=lambda r: -r["best_val_accuracy"])
    if not finished:
        return f"Every rate diverged ({rep.link('lr_sweep')}): there is no best rate."
    best = finished[0]
    diverged = [r for r in runs if r["diverged"]]
    text = (f"{len(runs)} rates from {runs[0]['lr']:g} to {runs[-1]['lr']:g}, plain SGD ({rep.link('lr_sweep')}; "
            f"best validation accuracy against rate: {rep.figure_link('lr_sweep/lr_sweep_accuracy.png')}; loss over time "
            f"per rate: {rep.figure_link('lr_sweep/lr_sweep_losses.png')}). Picked by validation accuracy, not test: "
            f"**η = {best['lr']:g}** ({pct(best['best_val_accuracy'])} validation, {acc(best['test_accuracy'])} test)")
    if len(finished) > 1:
        second = finished[1]
        gap = 100 * (best["best_val_accuracy"] - second["best_val_accuracy"])
        noise = [spread(r["val_accuracy"][len(r["val_accuracy"]) // 2:]) for r in (best, second)]
        text += f", then η = {second['lr']:g} ({pct(second['best_val_accuracy'])})"
        if None not in noise:
            text += (f"; their {gap:.1f}-point gap is " + ("smaller" if gap < max(noise) else "larger")
                     + f" than the {max(noise):.1f} points their validation accuracy moves over the second half of a run"
                     + (", so the sweep singles out a window of rates more than one value" if gap < max(noise) else ""))
    text += ". Why: the largest rates that are still stable make the most progress in a fixed number of steps"
    slower = [r for r in finished if r["lr"] < best["lr"] and len(r["train_loss"]) > 1]
    falling = [r for r in slower if r["train_loss"][-1] < r["train_loss"][-2]]
    if slower:
        text += ("; the training loss of " + ("every smaller rate" if len(falling) == len(slower) else
                                              f"{len(falling)} of the {len(slower)} smaller rates")
                 + " is still falling in the last epoch (too slow)")
    if diverged:
        text += (", and the loss of " + listing([f"η = {r['lr']:g}" for r in diverged])
                 + " blows up within the first epoch (too high: beyond the stability limit)")
    return text + "."


if __name__ == "__main__":
    main()
