#!/usr/bin/env python
"""Experiment 10, beyond the assignment: optimizers, dropout, layer norm, and the best MLP in ten
minutes of training.

    python examples/experiments/beyond.py --data-dir ../shared/data/cifar10

1. SGD (lr 0.1, the assignment's), SGD with momentum 0.9 (lr 0.01: the same step in the long run),
   Adam and AdamW (PyTorch's defaults: lr 1e-3; AdamW's decay 0.01) on the default MLP [128] and
   on [512, 256, 128], 20 epochs each;
2. dropout 0, 0.2 and 0.5 after each hidden activation of [512, 256, 128] (Adam, 20 epochs): the
   gap between training and validation accuracy it closes;
3. layer norm against batch norm (and neither) on [512, 256, 128] (Adam, 20 epochs);
4. the best MLP this library trains on the shared CIFAR-10 copy in at most 10 minutes of
   training: `BEST` (wider, batch norm, dropout, random horizontal flips of the training images,
   AdamW, a warm-up + cosine schedule), its time measured.

By default every run uses JAX with the whole step compiled (``jax.jit``) when JAX is installed
(NumPy otherwise); ``--xp`` chooses another backend (compiled where it has a compiler). Writes results/beyond/beyond.json, a run folder per
run, and beyond_optimizers.png, beyond_dropout.png, beyond_norms.png, beyond_best.png.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from arrayml_app.experiments import (
    Stopwatch,
    base_config,
    command_line,
    out_dir,
    parser,
    preferred_xp,
    save_json,
    tabulate,
    train_command,
)
from arrayml_app.figures import finish_axes, new_figure, save_figure
from arrayml_app.report import Report, acc, listing, pct, points, secs
from arrayml_app.run import run

EPOCHS = 20
DEFAULT, WIDE = [128], [512, 256, 128]
#: (label, settings) of part 1.
OPTIMIZERS = [
    ("SGD", {"optimizer": "sgd", "lr": 0.1}),
    ("SGD + momentum", {"optimizer": "sgd", "lr": 0.01, "momentum": 0.9}),
    ("Adam", {"optimizer": "adam", "lr": 1e-3}),
    ("AdamW", {"optimizer": "adamw", "lr": 1e-3}),
]
ADAM = dict(OPTIMIZERS)["Adam"]
DROPOUTS = [0.0, 0.2, 0.5]
NORMS = [("neither", {}), ("batch norm", {"batch_norm": True}), ("layer norm", {"layer_norm": True})]
#: The best MLP of part 4: its settings as train.py flags take them.
BEST = {"hidden_dims": [1024, 512, 256], "batch_norm": True, "dropout": 0.2, "flip": True, "optimizer": "adamw",
        "lr": 1e-3, "weight_decay": 0.05, "schedule": "warmup-cosine", "epochs": 30, "batch_size": 256}
#: The time part 4 may train for, and the accuracy it must reach.
BEST_SECONDS, BEST_TARGET = 600.0, 0.55


def main(argv: list[str] | None = None) -> dict:
    p = parser(__doc__.split("\n\n")[0])
    p.set_defaults(xp=preferred_xp("jax"))
    p.add_argument("--parts", nargs="*", type=int, default=[1, 2, 3, 4], choices=[1, 2, 3, 4],
                   help="run only these parts (default: all)")
    args = p.parse_args(argv)
    out = out_dir(args, "beyond")
    clock = Stopwatch()
    done: dict[str, dict] = {}

    def train(name: str, part: int, label: str, **settings: Any) -> dict:
        """One run (shared between parts when its settings are the same)."""
        if name not in done:
            cfg = base_config(args, compile=args.xp in ("jax", "torch"), out=str(out / name))
            for key, value in settings.items():
                setattr(cfg, key, value)
            if args.epochs:
                cfg.epochs = args.epochs
            if cfg.schedule == "warmup-cosine":  # one epoch of warm-up, a tenth of a quick check's
                cfg.warmup_epochs = min(1.0, cfg.epochs / 10)
            load_before = os.getloadavg()
            r = run(cfg, plots=False)
            done[name] = summarise(name, r, load_before)
        return {**done[name], "part": part, "label": label}

    runs = []
    if 1 in args.parts:
        for hidden in (DEFAULT, WIDE):
            for label, settings in OPTIMIZERS:
                name = f"{'-'.join(map(str, hidden))}-{label.lower().replace(' + ', '-').replace(' ', '-')}"
                runs.append(train(name, 1, label, hidden_dims=hidden, epochs=EPOCHS, **settings))
    if 2 in args.parts:
        for p_drop in DROPOUTS:
            name = "512-256-128-adam" if p_drop == 0 else f"512-256-128-adam-dropout{p_drop:g}"
            runs.append(train(name, 2, f"dropout {p_drop:g}", hidden_dims=WIDE, epochs=EPOCHS, dropout=p_drop, **ADAM))
    if 3 in args.parts:
        for label, settings in NORMS:
            name = "512-256-128-adam" + {"neither": "", "batch norm": "-bn", "layer norm": "-ln"}[label]
            runs.append(train(name, 3, label, hidden_dims=WIDE, epochs=EPOCHS, **settings, **ADAM))
    if 4 in args.parts:
        runs.append(train("best", 4, "best MLP", **BEST))
    summary = {"experiment": "beyond", "command": command_line("beyond.py", argv), "xp": args.xp, "runs": runs,
               "best_settings": BEST, "best_command": best_command(args), "seconds": clock.seconds()}
    plot_parts(runs, out)
    save_json(summary, out / "beyond.json")
    tabulate([("part", "<5"), ("run", "<34"), ("test acc", ">9"), ("best val", ">9"), ("train", ">8"), ("gap", ">9"),
                 ("s/epoch", ">9.1f")],
                ((r["part"], r["name"], _f(r["test_accuracy"]), _f(r["best_val_accuracy"]), _f(r["final_train_accuracy"]),
                  _f(r["final_gap"]), r["seconds_per_epoch"]) for r in runs))
    return summary


def _f(x: float | None) -> str:
    return "—" if x is None else f"{x:.4f}"


def summarise(name: str, r: dict, load_before: tuple[float, ...]) -> dict:
    """What the report needs of one run: accuracies per epoch, the final train − validation gap,
    times (and the machine's load average before and after it: a shared machine)."""
    epochs = [e for e in r["history"]["epochs"] if not e.get("diverged")]
    train_acc = [e["train_accuracy"] for e in epochs]
    val_acc = [e["val_accuracy"] for e in epochs]
    cfg = r["config"]
    return {
        "name": name, "hidden_dims": cfg["hidden_dims"], "optimizer": r["model"].get("optimizer"),
        "settings": {k: cfg[k] for k in ("optimizer", "lr", "momentum", "weight_decay", "dropout", "batch_norm",
                                         "layer_norm", "flip", "schedule", "epochs", "batch_size", "xp", "compile")},
        "parameters": r["model"]["parameters"], "test_accuracy": r["test_accuracy"],
        "best_val_accuracy": r["best_val_accuracy"], "best_epoch": r["best_epoch"], "diverged": r["diverged"],
        "train_accuracy": train_acc, "val_accuracy": val_acc,
        "final_train_accuracy": train_acc[-1] if train_acc else None,
        "final_gap": train_acc[-1] - val_acc[-1] if train_acc else None,
        "steps": len(r["history"]["steps"]["loss"]),
        "train_seconds": r["timing"]["train_seconds"], "seconds_per_epoch": r["timing"]["seconds_per_epoch"],
        "load_average": {"before": load_before[0], "after": os.getloadavg()[0]},
        "environment": r["environment"], "backend": r["backend"],
    }


def best_command(args: Any) -> str:
    """train.py's command for the best MLP, as the report prints it."""
    return train_command(BEST, "--xp", args.xp, *(["--compile"] if args.xp in ("jax", "torch") else []))


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------


def _curves(ax: Any, runs: list[dict], title: str, *, train: bool = True) -> None:
    for i, r in enumerate(runs):
        colour = f"C{i}"
        xs = range(1, len(r["val_accuracy"]) + 1)
        ax.plot(xs, r["val_accuracy"], "o-", ms=2.5, color=colour, label=f"{r['label']}: validation")
        if train:
            ax.plot(xs, r["train_accuracy"], "--", color=colour, alpha=0.7, label=f"{r['label']}: training")
    finish_axes(ax, legend={"fontsize": 7}, xlabel="epoch", ylabel="accuracy", title=title)


def plot_parts(runs: list[dict], out: Path) -> None:
    by_part = {k: [r for r in runs if r["part"] == k] for k in (1, 2, 3, 4)}
    if by_part[1]:
        fig, axes = new_figure(1, 2, size=(12, 4.5))
        for ax, hidden in zip(axes, (DEFAULT, WIDE)):
            _curves(ax, [r for r in by_part[1] if r["hidden_dims"] == hidden], f"hidden {hidden}: four optimizers",
                    train=False)
        save_figure(fig, out / "beyond_optimizers.png")
    for part, name, title in ((2, "dropout", f"dropout on {WIDE} (Adam)"), (3, "norms", f"normalisation on {WIDE} (Adam)"),
                              (4, "best", "the best MLP")):
        if by_part[part]:
            fig, ax = new_figure(size=(7.5, 4.5))
            _curves(ax, by_part[part], title)
            save_figure(fig, out / f"beyond_{name}.png")


# --------------------------------------------------------------------------------------------
# Its section of docs/results.md (make_report.py puts the sections together)
# --------------------------------------------------------------------------------------------


def report(rep: Report, s: dict) -> None:
    """The four parts: a table each, the figures, and what the runs show; then the best MLP with
    its command and its time."""
    w = rep.w
    runs = s["runs"]
    by_part = {k: [r for r in runs if r["part"] == k] for k in (1, 2, 3, 4)}
    backend = runs[0]["backend"] if runs else s.get("xp")
    compiled = bool(runs and runs[0]["settings"]["compile"])
    w(f"Every run here is on {backend}{' with the whole step compiled' if compiled else ''}, batch 128 unless said, "
      "the assignment's split and seed; the optimizers have PyTorch's semantics and defaults (their trajectories "
      "equal `torch.optim`'s to float64 rounding: tests/test_optimizers.py). "
      "Regenerate with " + f"`{s['command']}`.\n")
    if by_part[1]:
        w(f"**Optimizers.** SGD at the assignment's lr 0.1; SGD with momentum 0.9 at lr 0.01 (the same step size "
          f"once the velocity has built up); Adam and AdamW at PyTorch's defaults (lr 0.001; AdamW's decoupled decay "
          f"0.01); {runs_epochs(by_part[1])} epochs, constant rate.\n")
        table(rep, by_part[1], first="network / optimizer", hidden=True)
        rep.fig("beyond/beyond_optimizers.png", "validation accuracy over epochs of the four optimizers, two networks")
        w(optimizers_text(by_part[1]))
    if by_part[2]:
        w(f"**Dropout** after each hidden activation of {WIDE} (Adam, lr 0.001, {runs_epochs(by_part[2])} epochs): "
          "training accuracy is measured with dropout on, as the steps see it.\n")
        table(rep, by_part[2], first="dropout")
        rep.fig("beyond/beyond_dropout.png", "training and validation accuracy with dropout 0, 0.2 and 0.5")
        w(dropout_text(by_part[2]))
    if by_part[3]:
        w(f"**Layer norm against batch norm** between each hidden Linear and its ReLU of {WIDE} (Adam, lr 0.001, "
          f"{runs_epochs(by_part[3])} epochs).\n")
        table(rep, by_part[3], first="normalisation")
        rep.fig("beyond/beyond_norms.png", "training and validation accuracy with neither, batch norm, layer norm")
        w(norms_text(by_part[3]))
    if by_part[4]:
        best_section(rep, by_part[4][0], s)


def runs_epochs(runs: list[dict]) -> str:
    return listing(sorted({str(r["settings"]["epochs"]) for r in runs}))


def table(rep: Report, runs: list[dict], *, first: str, hidden: bool = False) -> None:
    rep.table((first, "test accuracy", "best val accuracy (epoch)", "final train accuracy", "final train − val gap",
               "time per epoch"),
              ((f"{r['hidden_dims']} {r['label']}" if hidden else r["label"], f"**{acc(r['test_accuracy'])}**",
                f"{pct(r['best_val_accuracy'])} ({r['best_epoch'] or '—'})", pct(r["final_train_accuracy"]),
                "—" if r["final_gap"] is None else f"{100 * r['final_gap']:.1f} points", f"{r['seconds_per_epoch']:.1f} s")
               for r in runs))


def _ok(runs: list[dict]) -> list[dict]:
    return [r for r in runs if r["test_accuracy"] is not None]


def optimizers_text(runs: list[dict]) -> str:
    text = "**What the runs show.** "
    for hidden in (DEFAULT, WIDE):
        rs = _ok([r for r in runs if r["hidden_dims"] == hidden])
        if not rs:
            continue
        best, worst = max(rs, key=lambda r: r["test_accuracy"]), min(rs, key=lambda r: r["test_accuracy"])
        sgd = next((r for r in rs if r["label"] == "SGD"), None)
        text += (f"On {hidden} the best test accuracy is {best['label']}'s, {acc(best['test_accuracy'])}, the lowest "
                 f"{worst['label']}'s, {acc(worst['test_accuracy'])}")
        if sgd is not None and sgd is not best:
            text += f" ({points(best['test_accuracy'], sgd['test_accuracy'])} points over plain SGD)"
        fastest = max(rs, key=lambda r: r["val_accuracy"][0])
        text += (f"; after one epoch {fastest['label']} is ahead ({pct(fastest['val_accuracy'][0])} validation "
                 f"accuracy). ")
        gaps = sorted(rs, key=lambda r: r["final_gap"])
        text += (f"The final train − validation gap runs from {100 * gaps[0]['final_gap']:.1f} points "
                 f"({gaps[0]['label']}) to {100 * gaps[-1]['final_gap']:.1f} ({gaps[-1]['label']}). ")
    adam = {tuple(r["hidden_dims"]): r for r in _ok(runs) if r["label"] == "Adam"}
    adamw = {tuple(r["hidden_dims"]): r for r in _ok(runs) if r["label"] == "AdamW"}
    both = [h for h in adam if h in adamw]
    if both:
        diffs = [points(adamw[h]["test_accuracy"], adam[h]["test_accuracy"]) for h in both]
        r = adamw[both[0]]
        per_step = r["settings"]["lr"] * (r["settings"]["weight_decay"] if r["settings"]["weight_decay"] is not None else 0.01)
        shrink = 100 * (1 - (1 - per_step) ** r["steps"])
        text += (f"AdamW's decoupled decay changes the test accuracy against Adam by {listing(diffs)} points "
                 f"({listing([str(list(h)) for h in both])}): at lr {r['settings']['lr']:g} it multiplies each weight "
                 f"by (1 − {per_step:.0e}) per step, {shrink:.0f}% less over the {r['steps']} steps of the run if "
                 "nothing pushed back. ")
    return text.rstrip() + "\n"


def dropout_text(runs: list[dict]) -> str:
    rs = _ok(runs)
    if len(rs) < 2:
        return "**What the runs show.** Too few runs finished to compare.\n"
    none = next((r for r in rs if r["settings"]["dropout"] == 0), rs[0])
    parts = [f"dropout {r['settings']['dropout']:g}: gap {100 * r['final_gap']:.1f} points, test "
             f"{acc(r['test_accuracy'])} ({points(r['test_accuracy'], none['test_accuracy'])})" for r in rs if r is not none]
    closed = [r for r in rs if r is not none and r["final_gap"] < none["final_gap"]]
    return (f"**What the runs show.** Without dropout the network ends {100 * none['final_gap']:.1f} points better on "
            f"its training batches than on the validation images (training {pct(none['final_train_accuracy'])}, "
            f"test {acc(none['test_accuracy'])}). {'; '.join(parts)}. Dropout narrowed the gap in {len(closed)} of "
            f"{len(rs) - 1} runs: each step trains a random sub-network, so no unit can rely on particular others, "
            "and the training accuracy it reports (masks on) is lower than that of the whole network.\n")


def norms_text(runs: list[dict]) -> str:
    rs = {r["label"]: r for r in _ok(runs)}
    if len(rs) < 2:
        return "**What the runs show.** Too few runs finished to compare.\n"
    base = rs.get("neither")
    parts = []
    for label in ("batch norm", "layer norm"):
        r = rs.get(label)
        if r is None:
            continue
        part = f"{label} {acc(r['test_accuracy'])}"
        if base is not None:
            part += f" ({points(r['test_accuracy'], base['test_accuracy'])} points against neither)"
        parts.append(part)
    text = "**What the runs show.** Test accuracy: " + "; ".join(parts) + ". "
    if "batch norm" in rs and "layer norm" in rs:
        b, l_ = rs["batch norm"], rs["layer norm"]
        text += (f"Batch norm against layer norm: {points(b['test_accuracy'], l_['test_accuracy'])} points of test "
                 f"accuracy, final training accuracy {pct(b['final_train_accuracy'])} against "
                 f"{pct(l_['final_train_accuracy'])}, {b['seconds_per_epoch']:.1f} s against "
                 f"{l_['seconds_per_epoch']:.1f} s per epoch. Batch norm normalises each unit over the batch (its "
                 "noise from batch to batch regularises; evaluation uses running averages); layer norm normalises "
                 "each sample over its units (the same computation in training and evaluation, any batch size). ")
    return text.rstrip() + "\n"


def assignment_best(rep: Report) -> str:
    """", against the assignment's best here, X% in §5" (read from the batch norm experiment)."""
    s = rep.load("batchnorm", "batchnorm.json")
    tested = [r["test_accuracy"] for r in (s or {}).get("runs", []) if r.get("test_accuracy") is not None]
    return f" (the assignment's best here is {pct(max(tested))}, in {rep.link('batchnorm')})" if tested else ""


def best_section(rep: Report, r: dict, s: dict) -> None:
    w = rep.w
    cfg = s["best_settings"]
    ok = r["test_accuracy"] is not None and r["test_accuracy"] >= BEST_TARGET and r["train_seconds"] <= BEST_SECONDS
    load = r["load_average"]
    env = r["environment"]
    w(f"**The best MLP in at most {BEST_SECONDS / 60:.0f} minutes of training.** Hidden {cfg['hidden_dims']} with batch "
      f"norm and dropout {cfg['dropout']:g} after each hidden layer, AdamW (lr {cfg['lr']:g}, decoupled decay "
      f"{cfg['weight_decay']:g}), batch {cfg['batch_size']}, {cfg['epochs']} epochs of a warm-up + cosine schedule, "
      "and **data augmentation**: each training image is mirrored left–right with probability 1/2 in every step "
      "(`--flip`, a `RandomFlip` layer before the MLP, drawn on the arrays' own device from the step's random key; "
      "validation and test images are not flipped). Command:\n")
    w(f"```bash\n{s['best_command']}\n```\n")
    in_seconds = f"{r['train_seconds']:.0f} s"
    exact = "" if secs(r["train_seconds"]) == in_seconds else f" ({in_seconds})"  # when secs() gave minutes
    rep.table(("test accuracy", "best validation accuracy (epoch)", "training time", "per epoch", "parameters"),
              [(f"**{acc(r['test_accuracy'])}**", f"{pct(r['best_val_accuracy'])} ({r['best_epoch']})",
                f"**{secs(r['train_seconds'])}**{exact}", f"{r['seconds_per_epoch']:.1f} s", f"{r['parameters']:,}")])
    rep.fig("beyond/beyond_best.png", "training and validation accuracy of the best MLP")
    w(f"The training time is `fit`'s, from the first step to the last epoch's validation (the data loaded "
      f"and moved to the device before; compiling the step included), measured on {env['date'][:10]} on the "
      f"{env['cpu_count']}-core machine of this report; its load average was {load['before']:.1f} before the run "
      f"and {load['after']:.1f} after it ({env['cpu_count']} would be every core busy"
      + ("): the machine was **shared** with other work, so this time is pessimistic. "
         if load["before"] > 2 * env["cpu_count"] else  # more than its own threads could make
         "; this experiment's own runs, one after another, keep them busy with a few threads each). ")
      + (f"It reaches the target of {pct(BEST_TARGET)}{assignment_best(rep)} within the time." if ok else
         f"**It misses the target** of {pct(BEST_TARGET)} within {BEST_SECONDS:.0f} s."))
    w("")


if __name__ == "__main__":
    main()
