#!/usr/bin/env python
"""Experiment 4: learning-rate schedules (arrayml.schedules, usable as train.py --schedule):
constant, step decay, cosine, and linear warm-up then cosine. Draws each schedule over the run,
then trains the default network with each and compares them with the default constant rate.

    python examples/experiments/schedules.py --data-dir ../shared/data/cifar10

Writes results/schedules/schedules.json, schedules_lr.png (rate against epoch) and
schedules_runs.png (validation accuracy and training loss of each run).
"""

from __future__ import annotations

import math
from pathlib import Path

from arrayml.schedules import make_schedule
from arrayml_app.experiments import Stopwatch, base_config, command_line, out_dir, parser, save_json
from arrayml_app.figures import Curve, Panel, compare_runs, finish_axes, new_figure, save_figure
from arrayml_app.report import Report, acc, listing, pct, points, secs, spread
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
    finish_axes(ax, xlabel="epoch", ylabel="learning rate",
                title=f"learning-rate schedules over {epochs} epochs (peak {schedules['constant'].lr:g})")
    save_figure(fig, path)


def plot_runs(results: dict, path: Path) -> None:
    panels = (Panel("validation accuracy", "validation accuracy", (Curve("val_accuracy", label="{name} (test {test})"),)),
              Panel("training loss (epoch mean)", "training loss", (Curve("train_loss"),)))
    save_figure(compare_runs(results, panels), path)


# --------------------------------------------------------------------------------------------
# Its section of docs/results.md (make_report.py puts the sections together)
# --------------------------------------------------------------------------------------------


def report(rep: Report, s: dict) -> None:
    """The schedules, the table of runs, the figures, then the comparison with the constant rate."""
    w = rep.w
    w("`arrayml.schedules` has constant, step decay, cosine, and linear warm-up then cosine; `examples/train.py "
      "--schedule NAME` uses them (`--step-size`, `--gamma`, `--warmup-epochs`, `--min-lr`). The rate is set "
      "before every step from the fractional epoch, so the warm-up is smooth within the first epoch.\n")
    rep.fig("schedules/schedules_lr.png", "learning rate against epoch for each schedule")
    def row(name: str, r: dict) -> tuple:
        d = s["schedules"].get(name, {})
        rest = {k: v for k, v in d.items() if k not in ("name", "lr")}
        settings = f"peak lr {d['lr']:g}" if "lr" in d else ""
        settings += ("; " + ", ".join(f"{k} {v:g}" for k, v in rest.items())) if rest else ""
        loss = r.get("final_train_loss")
        return (name, settings or "—", f"**{acc(r['test_accuracy'])}**",
                f"{pct(r['best_val_accuracy'])} ({r['best_epoch'] if r['best_epoch'] is not None else '—'})",
                "—" if loss is None else f"{loss:.4f}", secs(r["seconds"]))

    rep.table(("schedule", "settings", "test accuracy", "best val accuracy (epoch)", "final training loss", "time"),
              (row(name, r) for name, r in s["runs"].items()))
    rep.fig("schedules/schedules_runs.png", "validation accuracy and training loss per schedule")
    w(comparison_text(s))


def comparison_text(s: dict) -> str:
    """Every decayed schedule against the constant rate: test accuracy, final training loss, how
    much validation accuracy still moves at the end, and the jumps at step decay's decays."""
    runs = s["runs"]
    if "constant" not in runs:
        return "**Comparison.** The constant-rate run is not in the results (not run), so the schedules are not compared with it.\n"
    const = runs["constant"]
    others = {k: r for k, r in runs.items() if k != "constant"}
    ok = {k: r for k, r in others.items() if r["test_accuracy"] is not None}
    if const["test_accuracy"] is None or not ok:
        return ("**Comparison.** " + ("The constant-rate run diverged. " if const["test_accuracy"] is None else "")
                + ", ".join(f"{k} diverged" for k, r in others.items() if r["test_accuracy"] is None) + "\n")
    text = (verdict_text(const, ok) + loss_text(runs, const, ok) + settling_text(runs, ok)
            + step_decay_text(runs.get("step"), s["schedules"].get("step", {}).get("step_size")))
    if "warmup-cosine" in ok and "cosine" in ok:
        text += (f"Warm-up then cosine and plain cosine differ by "
                 f"{points(ok['warmup-cosine']['test_accuracy'], ok['cosine']['test_accuracy'])} points of test accuracy.")
    return text.rstrip() + "\n"


def verdict_text(const: dict, ok: dict[str, dict]) -> str:
    """Which schedules beat the constant rate in test accuracy, and the best."""
    beat = [k for k, r in ok.items() if r["test_accuracy"] > const["test_accuracy"]]
    lost = [k for k in ok if k not in beat]
    if not lost:
        verdict = f"Every schedule that lowers the rate beats the constant rate here ({listing(beat)})"
    elif not beat:
        verdict = f"No schedule that lowers the rate beats the constant rate here ({listing(lost)} do not)"
    else:
        verdict = f"{listing(beat)} beat{'s' if len(beat) == 1 else ''} the constant rate here; {listing(lost)} do{'es' if len(lost) == 1 else ''} not"
    best = max(ok, key=lambda k: ok[k]["test_accuracy"])
    return (f"**Comparison.** {verdict}; the best is **{best}** ({acc(ok[best]['test_accuracy'])} against "
            f"{acc(const['test_accuracy'])} for the constant rate). ")


def loss_text(runs: dict[str, dict], const: dict, ok: dict[str, dict]) -> str:
    lower_loss = [k for k, r in ok.items() if r.get("final_train_loss") is not None
                  and const.get("final_train_loss") is not None and r["final_train_loss"] < const["final_train_loss"]]
    if len(lower_loss) == len(ok):
        who = "every decayed schedule ends"
    elif lower_loss:
        who = listing(lower_loss) + (" ends" if len(lower_loss) == 1 else " end")
    else:
        who = "no decayed schedule ends"
    return ("Final training loss: " + ", ".join(f"{k} {r['final_train_loss']:.3f}" for k, r in runs.items()
                                                if r.get("final_train_loss") is not None)
            + f"; {who} below the constant rate. ")


def settling_text(runs: dict[str, dict], ok: dict[str, dict]) -> str:
    """How much validation accuracy moves over the last epochs, per schedule."""
    tail = min(len(r["val_accuracy"]) for r in runs.values() if r["val_accuracy"])
    n = min(4, tail)
    swings = {k: spread(r["val_accuracy"][-n:]) for k, r in runs.items()}
    text = (f"Over the last {n} epochs validation accuracy moves by "
            + ", ".join(f"{swings[k]:.1f} points ({k})" for k in runs if swings[k] is not None) + ". ")
    calmer = [k for k in ok if swings.get(k) is not None and swings["constant"] is not None and swings[k] < swings["constant"]]
    if len(calmer) == len(ok):
        return text + ("Every decayed schedule settles more than the constant rate, which keeps moving with the noise of "
                       "mini-batch gradients; a smaller step lets the weights settle. ")
    if calmer:
        return text + f"Only {listing(calmer)} settle{'s' if len(calmer) == 1 else ''} more than the constant rate. "
    return text + "No decayed schedule settles more than the constant rate over these epochs. "


def step_decay_text(step: dict | None, size: float | None) -> str:
    """The change of validation accuracy in the epochs where step decay lowers the rate, against
    the other epochs."""
    if not (step and size and len(step["val_accuracy"]) > 1):
        return ""
    v = step["val_accuracy"]
    decays = [int(math.floor(k * size)) + 1 for k in range(1, len(v)) if k * size < len(v)]
    decays = [e for e in decays if 2 <= e <= len(v)]
    jumps = {e: 100 * (v[e - 1] - v[e - 2]) for e in range(2, len(v) + 1)}
    if not decays:
        return ""
    others_max = max((j for e, j in jumps.items() if e not in decays), default=None)
    return (f"Step decay lowers the rate during epoch{'s' if len(decays) > 1 else ''} {listing([str(e) for e in decays])}; "
            f"its validation accuracy changes by {listing([f'{jumps[e]:+.1f}' for e in decays])} points there"
            + (f", against at most {others_max:+.1f} in any other epoch after the first" if others_max is not None else "")
            + (": the jump comes with the decay. " if others_max is not None and min(jumps[e] for e in decays) > others_max
               else ". "))


# --------------------------------------------------------------------------------------------
# Its sentences in the answers to the assignment's questions (questions.md names them)
# --------------------------------------------------------------------------------------------


def gain(rep: Report) -> str:
    ok = {k: r for k, r in rep.need("schedules")["runs"].items() if r["test_accuracy"] is not None}
    if "constant" not in ok or len(ok) < 2:
        return ""
    const = ok["constant"]
    best = max((k for k in ok if k != "constant"), key=lambda k: ok[k]["test_accuracy"])
    text = (f"Over the same {len(const['val_accuracy'])} epochs ({rep.link('schedules')}), test accuracy is "
            + ", ".join(f"{acc(r['test_accuracy'])} ({k})" for k, r in ok.items())
            + f": the best schedule, **{best}**, gains {100 * (ok[best]['test_accuracy'] - const['test_accuracy']):+.2f} "
            "points over the constant rate")
    losses = {k: r.get("final_train_loss") for k, r in ok.items() if r.get("final_train_loss") is not None}
    if best in losses and "constant" in losses and min(losses, key=losses.get) == best:
        text += f" and ends at the lowest training loss ({losses[best]:.3f} against {losses['constant']:.3f})"
    return text + "."


if __name__ == "__main__":
    main()
