#!/usr/bin/env python
"""Experiment 5: batch norm across network sizes. Hidden dims [128], [256, 128] and
[512, 256, 128], each with and without batch norm, 20 epochs, lr 0.1.

    python examples/experiments/batchnorm.py --data-dir ../shared/data/cifar10

Writes results/batchnorm/batchnorm.json, batchnorm_train_accuracy.png and
batchnorm_val_accuracy.png (all six curves each), and a test-accuracy table in the JSON.
"""

from __future__ import annotations

from pathlib import Path

from arrayml_app.experiments import Stopwatch, base_config, command_line, out_dir, parser, save_json, tabulate
from arrayml_app.figures import finish_axes, new_figure, save_figure
from arrayml_app.report import Report, acc, epochs_label, last, listing, pct, points, second_half, spread
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
    tabulate([("hidden dims", "<16"), ("batch norm", ">11"), ("params", ">10"), ("test acc", ">10.4f"),
                 ("best val", ">10.4f"), ("final train", ">13.4f")],
                ((str(r["hidden_dims"]), str(r["batch_norm"]), r["parameters"], r["test_accuracy"], r["best_val_accuracy"],
                  r["train_accuracy"][-1]) for r in runs))
    return summary


def plot(runs: list[dict], key: str, title: str, path: Path) -> None:
    colours = {"128": "tab:blue", "256-128": "tab:orange", "512-256-128": "tab:green"}
    fig, ax = new_figure(size=(8, 4.8))
    for r in runs:
        size = "-".join(map(str, r["hidden_dims"]))
        ys = r[key]
        ax.plot(range(1, len(ys) + 1), ys, "o-" if r["batch_norm"] else "s--", ms=3, color=colours.get(size),
                label=f"hidden {r['hidden_dims']}" + (" + batch norm" if r["batch_norm"] else ""))
    finish_axes(ax, legend={"fontsize": 8}, xlabel="epoch", ylabel=title, title=f"{title} over epochs (lr 0.1, batch 128)")
    save_figure(fig, path)


# --------------------------------------------------------------------------------------------
# Its section of docs/results.md (make_report.py puts the sections together)
# --------------------------------------------------------------------------------------------


def report(rep: Report, s: dict) -> None:
    """The settings, the table of the six runs, the two figures, then what the runs show."""
    w = rep.w
    runs_list = s["runs"]
    cfg = next((c for c in ((rep.load("batchnorm", r["name"], "results.json") or {}).get("config") for r in runs_list) if c), {})
    w("Hidden dims " + listing([str(list(h)) for h in dict.fromkeys(tuple(r["hidden_dims"]) for r in runs_list)])
      + ", each without and with batch norm between every hidden Linear and its ReLU"
      + (f", {cfg['epochs']} epochs, lr {cfg['lr']:g}, batch {cfg['batch_size']}, plain SGD" if cfg else "") + ".\n")
    rep.table(("hidden dims", "batch norm", "parameters", "test accuracy", "best val accuracy (epoch)", "final train accuracy",
               "time per epoch"),
              ((r["hidden_dims"], "yes" if r["batch_norm"] else "no", f"{r['parameters']:,}", f"**{acc(r['test_accuracy'])}**",
                f"{pct(r['best_val_accuracy'])} ({r['best_epoch'] if r['best_epoch'] is not None else '—'})",
                pct(last(r["train_accuracy"])), f"{r['seconds_per_epoch']:.1f} s") for r in runs_list))
    rep.fig("batchnorm/batchnorm_train_accuracy.png", "training accuracy over epochs, six runs")
    rep.fig("batchnorm/batchnorm_val_accuracy.png", "validation accuracy over epochs, six runs")
    w(findings_text(runs_list))


def findings_text(runs_list: list[dict]) -> str:
    """Batch norm against none, per size; then network size without batch norm; then where the
    largest network overfits."""
    runs = {(tuple(r["hidden_dims"]), r["batch_norm"]): r for r in runs_list if r["test_accuracy"] is not None}
    failed = [r for r in runs_list if r["test_accuracy"] is None]
    sizes = sorted({tuple(r["hidden_dims"]) for r in runs_list}, key=len)
    pairs = [(h, runs[(h, False)], runs[(h, True)]) for h in sizes if (h, False) in runs and (h, True) in runs]
    text = "**What the runs show.** "
    if failed:
        text += "Diverged: " + ", ".join(f"{r['hidden_dims']}{' with batch norm' if r['batch_norm'] else ''}" for r in failed) + ". "
    if not pairs:
        return text + "No size has both runs, so batch norm is not compared.\n"
    text += batch_norm_text(pairs) + size_text([runs[(h, False)] for h in sizes if (h, False) in runs])
    for bn in (False, True):
        r = runs.get((sizes[-1], bn))
        if r and r["best_epoch"] is not None:
            text += overfitting_text(r, f"{list(sizes[-1])} {'with' if bn else 'without'} batch norm")
    return text.rstrip() + "\n"


def batch_norm_text(pairs: list[tuple[tuple, dict, dict]]) -> str:
    """Each size without (a) and with (b) batch norm: test accuracy, final training accuracy and
    the validation swing, then how many sizes batch norm helped."""
    lines = []
    for h, a, b in pairs:
        ha, first = second_half(a["val_accuracy"])
        hb, _ = second_half(b["val_accuracy"])
        lines.append(f"{list(h)}: test {points(b['test_accuracy'], a['test_accuracy'])} points, final training accuracy "
                     f"{points(last(b['train_accuracy']), last(a['train_accuracy']))}, validation swing over "
                     f"{epochs_label(first, len(a['val_accuracy']))} {spread(hb):.1f} points with batch norm against "
                     f"{spread(ha):.1f} without")
    better = sum(1 for _, a, b in pairs if b["test_accuracy"] > a["test_accuracy"])
    steadier = sum(1 for _, a, b in pairs if spread(second_half(b["val_accuracy"])[0]) < spread(second_half(a["val_accuracy"])[0]) - 0.1)
    d_train = [100 * (last(b["train_accuracy"]) - last(a["train_accuracy"])) for _, a, b in pairs]
    return ("Adding batch norm, per size — " + "; ".join(lines) + ". "
            f"Batch norm raised test accuracy for {better} of {len(pairs)} sizes and made the validation curve steadier "
            f"(a smaller swing, by more than 0.1 point) for {steadier} of {len(pairs)}; it changed the final training "
            f"accuracy by {min(d_train):+.2f} to {max(d_train):+.2f} points. "
            "Batch norm normalises every hidden unit's pre-activation over the batch, so its scale does not depend "
            "on the size of the weights feeding it. ")


def size_text(plain: list[dict]) -> str:
    """The smallest network against the largest, both without batch norm."""
    if len(plain) <= 1:
        return ""
    small, big = plain[0], plain[-1]
    train_span = 100 * (last(big["train_accuracy"]) - last(small["train_accuracy"]))
    test_span = 100 * (big["test_accuracy"] - small["test_accuracy"])
    return (f"Without batch norm, going from {small['hidden_dims']} to {big['hidden_dims']} changes final training "
            f"accuracy by {train_span:+.2f} points ({pct(last(small['train_accuracy']))} to "
            f"{pct(last(big['train_accuracy']))}) and test accuracy by {test_span:+.2f}. ")


def overfitting_text(r: dict, who: str) -> str:
    """Whether run `r` peaks in validation accuracy before its end while training accuracy rises."""
    v, tr, b = r["val_accuracy"], r["train_accuracy"], r["best_epoch"]
    drop, rise = 100 * (r["best_val_accuracy"] - v[-1]), 100 * (tr[-1] - tr[b - 1])
    if b < len(v) and drop > 0 and rise > 0:
        return (f"{who} peaks in validation accuracy at epoch {b} of {len(v)}; by the end its validation accuracy "
                f"is {drop:.1f} points lower while its training accuracy is {rise:.1f} points higher: overfitting, "
                "which testing the best-validation epoch sidesteps but does not cure. ")
    return f"{who} has its best validation accuracy at epoch {b} of {len(v)}, with no later drop while training accuracy rises. "


# --------------------------------------------------------------------------------------------
# Its sentences in the answers to the assignment's questions (questions.md names them)
# --------------------------------------------------------------------------------------------


def batchnorm_runs(rep: Report) -> dict[tuple[tuple[int, ...], bool], dict]:
    """The batch-norm experiment's finished runs by (hidden dims, batch norm)."""
    return {(tuple(r["hidden_dims"]), r["batch_norm"]): r for r in rep.need("batchnorm")["runs"]
            if r["test_accuracy"] is not None}


def gains(rep: Report) -> str:
    runs = batchnorm_runs(rep)
    gains = [(list(h), 100 * (runs[(h, True)]["test_accuracy"] - r["test_accuracy"])) for (h, bn), r in runs.items()
             if not bn and (h, True) in runs]
    return (f"Measured ({rep.link('batchnorm')}, lr 0.1, 20 epochs): batch norm changes test accuracy by "
            + ", ".join(f"{g:+.2f} points for {h}" for h, g in gains) + ".") if gains else ""


def size_trend(rep: Report) -> str:
    runs = batchnorm_runs(rep)
    sizes = sorted({h for h, _ in runs}, key=len)
    plain = [runs[(h, False)] for h in sizes if (h, False) in runs]
    pairs = [(runs[(h, False)], runs[(h, True)]) for h in sizes if (h, False) in runs and (h, True) in runs]
    text = (f"Six runs, 20 epochs at lr 0.1 ({rep.link('batchnorm')}); training accuracy: "
            f"{rep.figure_link('batchnorm/batchnorm_train_accuracy.png')}, validation accuracy: "
            f"{rep.figure_link('batchnorm/batchnorm_val_accuracy.png')}. Test accuracy: "
            + "; ".join(f"{list(a['hidden_dims'])} {acc(a['test_accuracy'])} without and {acc(b['test_accuracy'])} with "
                        "batch norm" for a, b in pairs) + ". ")
    if len(plain) > 1:
        small, big = plain[0], plain[-1]
        text += (f"The trend with size: training accuracy rises fast with the number of parameters (without batch norm "
                 f"{pct(small['train_accuracy'][-1])} for {small['hidden_dims']} to {pct(big['train_accuracy'][-1])} for "
                 f"{big['hidden_dims']}) while test accuracy rises by only "
                 f"{100 * (big['test_accuracy'] - small['test_accuracy']):.2f} points: a larger network fits the training "
                 "set better, and the gap between final training and validation accuracy goes from "
                 f"{100 * (small['train_accuracy'][-1] - small['val_accuracy'][-1]):.1f} to "
                 f"{100 * (big['train_accuracy'][-1] - big['val_accuracy'][-1]):.1f} points. ")
        v, tr, b = big["val_accuracy"], big["train_accuracy"], big["best_epoch"]
        if b is not None and b < len(v) and v[-1] < v[b - 1] and tr[-1] > tr[b - 1]:
            text += (f"The largest one's validation accuracy peaks at epoch {b} of {len(v)} and then falls while its "
                     "training accuracy keeps rising: overfitting, which testing the best-validation model sidesteps. ")
    if pairs:
        early = sum(1 for a, b in pairs if b["train_accuracy"][0] > a["train_accuracy"][0])
        better = sum(1 for a, b in pairs if b["test_accuracy"] > a["test_accuracy"])
        text += (f"With batch norm, training accuracy after the first epoch is higher for {early} of {len(pairs)} sizes "
                 f"and test accuracy is higher for {better} of {len(pairs)}.")
    return text


if __name__ == "__main__":
    main()
