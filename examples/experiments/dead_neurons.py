#!/usr/bin/env python
"""Experiment 6: dead ReLU units. For each hidden layer, the fraction of units whose ReLU output
is zero for every validation image, at initialisation and after every epoch, for the three
network sizes of the batch-norm experiment ([128], [256, 128], [512, 256, 128]), without and with
batch norm, at the default rate 0.1 and at a rate high enough to kill units.

    python examples/experiments/dead_neurons.py --data-dir ../shared/data/cifar10

The high rate is searched for, per size, on the networks without batch norm: rates 0.1·√2ᵏ
(0.1, 0.1414, 0.2, 0.2828, ..., to 4 digits) in increasing order, each trained for the full run, until one
diverges (or the grid ends). Every rate tried is kept as a run. The size's high rate is the
rate, among those that did not diverge, that left the most units dead after the last epoch (the
largest one if none killed any). The network with batch norm is then trained at 0.1 and at that
rate.

Besides the fractions, each run records whether a dead unit ever comes back, and whether the
incoming weights and bias of the units dead after one epoch changed at all during the next (a
ReLU that outputs zero on every training input passes no gradient to them). The hidden
activations are computed on the device, layer by layer, in evaluation mode, one validation batch
at a time; one transfer per epoch reads back every measurement.

Writes results/dead_neurons/dead_neurons.json and dead_neurons.png.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.ticker import MaxNLocator

from arrayml import Linear, ReLU, backend
from arrayml.backend import Array
from arrayml.modules import Sequential
from arrayml.training import ArraymlLearner, FitState
from arrayml_app.data import load_splits
from arrayml_app.experiments import Stopwatch, base_config, command_line, out_dir, parser, save_json, tabulate
from arrayml_app.figures import new_figure, save_figure
from arrayml_app.models import arrayml_learner
from arrayml_app.report import NotRun, Report, acc, listing, pct, times
from arrayml_app.run import run

SIZES = [[128], [256, 128], [512, 256, 128]]  # the batch-norm experiment's sizes
DEFAULT_LR = 0.1
GRID = [float(f"{0.1 * math.sqrt(2.0) ** k:.4g}") for k in range(8)]  # 0.1, 0.1414, ... 1.131: lr 1 diverges in the sweep
EPOCHS = 10


# --------------------------------------------------------------------------------------------
# The measurement
# --------------------------------------------------------------------------------------------


def hidden_layers(model: Sequential) -> list[tuple[int, int]]:
    """(index of the Linear, index of its ReLU) for each hidden layer of `model`."""
    pairs, linear = [], None
    for i, layer in enumerate(model.layers):
        if isinstance(layer, Linear):
            linear = i
        elif isinstance(layer, ReLU):
            if linear is None:
                raise ValueError(f"layer {i} is a ReLU with no Linear before it")
            pairs.append((linear, i))
    return pairs


def never_active(model: Sequential, x: Array, *, batch_size: int = 1000) -> list[Array]:
    """For each hidden layer, a boolean device array over its units: True where the ReLU output
    is zero for every row of `x` (evaluation mode: batch norm uses its running statistics)."""
    xp = backend.get_namespace(x)
    pairs = hidden_layers(model)
    last = pairs[-1][1]
    was_training = model.training
    model.eval()
    peaks: list[Array | None] = [None] * len(pairs)
    try:
        for start in range(0, x.shape[0], batch_size):
            h, k = x[start:min(start + batch_size, x.shape[0]), ...], 0
            for i in range(last + 1):
                h = model.layers[i].forward(h)
                if i == pairs[k][1]:
                    peak = xp.max(h, axis=0)
                    peaks[k] = peak if peaks[k] is None else xp.maximum(peaks[k], peak)
                    k += 1
    finally:
        model.clear_cache()
        model.train(was_training)
    return [p <= 0 for p in peaks]


def incoming(model: Sequential) -> list[tuple[Array, Array]]:
    """(weight, bias) of each hidden layer's Linear: references, which stay valid as snapshots
    (nothing in arrayml is written in place)."""
    return [(model.layers[i].params["weight"], model.layers[i].params["bias"]) for i, _ in hidden_layers(model)]


def unchanged_rows(before: list[tuple[Array, Array]], after: list[tuple[Array, Array]], xp: Any) -> list[Array]:
    """For each hidden layer, True for the units whose incoming weights and bias are bit for bit
    the same in `after` as in `before`."""
    return [xp.all(w1 == w0, axis=1) & (b1[0, :] == b0[0, :]) for (w0, b0), (w1, b1) in zip(before, after)]


class DeadUnitProbe:
    """Measures a model on the validation images at initialisation and after every epoch (as
    `run`'s ``on_epoch_end``); keeps host copies of the dead masks and of which units' incoming
    weights did not change during the epoch."""

    def __init__(self, x_val: Array) -> None:
        self.x_val = x_val
        self.dead: list[list[np.ndarray]] = []  # [epoch 0, 1, ...][layer] -> bool per unit
        self.unchanged: list[list[np.ndarray]] = []  # [epoch 1, ...][layer]
        self._previous: list[tuple[Array, Array]] | None = None

    def learner(self, config, where):
        """`run`'s learner factory: arrayml's, measured once before training."""
        learner, info = arrayml_learner(config, where)
        self._measure(learner)
        return learner, info

    def __call__(self, learner: ArraymlLearner, state: FitState) -> None:
        if not state.diverged:
            self._measure(learner)

    def _measure(self, learner: ArraymlLearner) -> None:
        model, xp = learner.model, learner.xp
        masks = never_active(model, self.x_val)
        now = incoming(model)
        same = unchanged_rows(self._previous, now, xp) if self._previous is not None else []
        packed = xp.concat([xp.astype(m, xp.int8) for m in masks + same])  # one transfer per epoch
        host = backend.to_numpy(packed).astype(bool)
        widths = [int(m.shape[0]) for m in masks]
        cuts = np.cumsum(widths + widths[: len(same)])[:-1]
        parts = np.split(host, cuts)
        self.dead.append(parts[: len(masks)])
        if same:
            self.unchanged.append(parts[len(masks):])
        self._previous = now

    def summary(self) -> dict[str, Any]:
        """Per layer: width, dead fraction per epoch (0 = initialisation), and the bookkeeping
        that tests the explanation (revived units, frozen incoming weights)."""
        layers = []
        for k in range(len(self.dead[0])):
            per_epoch = [d[k] for d in self.dead]
            width = int(per_epoch[0].size)
            dead_any = np.any(per_epoch, axis=0)
            # dead after epoch e, alive after some later epoch
            revived = np.zeros(width, dtype=bool)
            for e in range(len(per_epoch) - 1):
                revived |= per_epoch[e] & np.any(~np.array(per_epoch[e + 1:]), axis=0)
            # dead after epoch e and alive after epoch e + 1: how often, and how often with the
            # unit's own incoming weights unchanged during epoch e + 1 (then the layers below
            # brought it back)
            back = [self.dead[e][k] & ~self.dead[e + 1][k] for e in range(len(self.dead) - 1)]
            back_frozen = [b & self.unchanged[e][k] for e, b in enumerate(back) if e < len(self.unchanged)]
            # units dead after epoch e (0: at initialisation) whose incoming weights did not move
            # during epoch e + 1, and the same count for the units alive after epoch e
            dead_then = [self.dead[e][k] for e in range(len(self.unchanged))]
            frozen = [self.unchanged[e][k] for e in range(len(self.unchanged))]
            layers.append({
                "width": width,
                "dead": [int(np.sum(d)) for d in per_epoch],
                "dead_fraction": [float(np.mean(d)) for d in per_epoch],
                "ever_dead": int(np.sum(dead_any)),
                "revived": int(np.sum(revived)),
                "revivals": int(sum(np.sum(b) for b in back)),
                "revivals_frozen": int(sum(np.sum(b) for b in back_frozen)),
                "dead_unit_epochs": int(sum(np.sum(d) for d in dead_then)),
                "dead_unit_epochs_frozen": int(sum(np.sum(d & f) for d, f in zip(dead_then, frozen))),
                "alive_unit_epochs": int(sum(np.sum(~d) for d in dead_then)),
                "alive_unit_epochs_frozen": int(sum(np.sum(~d & f) for d, f in zip(dead_then, frozen))),
            })
        return {"layers": layers}


# --------------------------------------------------------------------------------------------
# The experiment
# --------------------------------------------------------------------------------------------


def train(args, hidden: list[int], bn: bool, lr: float, out: Path) -> dict[str, Any]:
    name = "-".join(map(str, hidden)) + ("-bn" if bn else "") + f"-lr{lr:.3g}"
    cfg = base_config(args, hidden_dims=hidden, batch_norm=bn, lr=lr, epochs=EPOCHS, out=str(out / name))
    splits, _ = load_splits(cfg)
    where = backend.placement(cfg.xp, cfg.device, cfg.dtype)
    probe = DeadUnitProbe(backend.convert(splits.x_val, where.xp, where.device, where.dtype))
    r = run(cfg, make_learner=probe.learner, plots=False, on_epoch_end=probe)
    epochs = [e for e in r["history"]["epochs"] if not e.get("diverged")]
    return {
        "name": name, "hidden_dims": hidden, "batch_norm": bn, "lr": lr, "epochs": cfg.epochs,
        "sgd": {"momentum": cfg.momentum, "weight_decay": cfg.optimizer_settings().get("weight_decay", 0.0)},
        **probe.summary(),
        "val_accuracy": [e["val_accuracy"] for e in epochs],
        "train_loss": [e["train_loss"] for e in epochs],
        "best_val_accuracy": r["best_val_accuracy"], "best_epoch": r["best_epoch"],
        "test_accuracy": r["test_accuracy"], "diverged": r["diverged"],
        "seconds": r["timing"]["wall_seconds"],
    }


def dead_at_end(row: dict[str, Any]) -> int:
    return sum(layer["dead"][-1] for layer in row["layers"])


def choose_rate(tried: list[dict[str, Any]]) -> float | None:
    """Among the rates whose run did not diverge, the one with the most dead units after the last
    epoch (the largest on a tie, e.g. when none killed any); None if every rate diverged."""
    ok = [row for row in tried if not row["diverged"]]
    if not ok:
        return None
    return max(ok, key=lambda row: (dead_at_end(row), row["lr"]))["lr"]


def main(argv: list[str] | None = None) -> dict:
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--grid", type=float, nargs="+", default=GRID, metavar="LR",
                   help="the rates to search, in increasing order (default: 0.1·√2ᵏ, k = 0..7)")
    args = p.parse_args(argv)
    out = out_dir(args, "dead_neurons")
    clock = Stopwatch()
    runs, search = [], []
    for hidden in SIZES:
        tried = []
        for lr in args.grid:  # the search: increasing rates until one diverges
            row = train(args, hidden, False, lr, out)
            tried.append(row)
            if row["diverged"]:
                break
        high = choose_rate(tried)
        search.append({
            "hidden_dims": hidden, "rates_tried": [row["lr"] for row in tried], "high_lr": high,
            "dead_at_end": [dead_at_end(row) for row in tried],
            "diverged": [row["diverged"] is not None for row in tried],
        })
        runs += tried
        for lr in dict.fromkeys([DEFAULT_LR] + ([high] if high is not None else [])):
            runs.append(train(args, hidden, True, lr, out))
    summary = {
        "experiment": "dead_neurons", "command": command_line("dead_neurons.py", argv),
        "definition": "a unit is dead when its ReLU output is zero for every validation image (evaluation mode)",
        "grid": args.grid, "default_lr": DEFAULT_LR, "epochs": args.epochs or EPOCHS, "search": search, "runs": runs,
        "seconds": clock.seconds(),
    }
    plot(summary, out / "dead_neurons.png")
    save_json(summary, out / "dead_neurons.json")
    tabulate([("hidden dims", "<16"), ("bn", ">4"), ("lr", ">7.3g"), ("dead after the last epoch, per layer", ">40"),
                 ("test acc", ">10")],
                ((str(r["hidden_dims"]), "yes" if r["batch_norm"] else "no", r["lr"],
                  ", ".join(f"{layer['dead'][-1]}/{layer['width']}" for layer in r["layers"]),
                  "diverged" if r["test_accuracy"] is None else f"{r['test_accuracy']:.4f}") for r in runs))
    return summary


def plot(summary: dict[str, Any], path: Path) -> None:
    """Dead fraction of each hidden layer over epochs: one column per size, the default rate on
    top and the size's high rate below (with, thinner, the other rates of the search for the
    layers that lost a unit); without batch norm solid, with batch norm dashed."""
    default = summary["default_lr"]
    fig, axes = new_figure(2, len(SIZES), size=(4.6 * len(SIZES), 7.6), sharex=True, sharey=True)
    axes = np.reshape(np.asarray(axes, dtype=object), (2, len(SIZES)))
    colours = ["tab:blue", "tab:orange", "tab:green", "tab:red"]
    highest = max((f for r in summary["runs"] for layer in r["layers"] for f in layer["dead_fraction"]), default=0.0)
    for col, search in enumerate(summary["search"]):
        hidden, high = search["hidden_dims"], search["high_lr"]
        mine = [r for r in summary["runs"] if r["hidden_dims"] == hidden]
        for row, lr in enumerate((default, high)):
            ax = axes[row, col]
            for r in mine:
                main = lr is not None and r["lr"] == lr
                other = row == 1 and not r["batch_norm"] and r["lr"] not in (default, high)
                if not (main or other):
                    continue
                for k, layer in enumerate(r["layers"]):
                    ys = layer["dead_fraction"]
                    if other and max(layer["dead"]) == 0:
                        continue
                    label = f"layer {k + 1} ({layer['width']})" + (", batch norm" if r["batch_norm"] else "")
                    label += f", lr {r['lr']:.4g}" if other else ""
                    label += " — diverged" if r["diverged"] else ""
                    style = ":x" if other else ("o--" if r["batch_norm"] else "s-")
                    ax.plot(range(len(ys)), ys, style, ms=3, lw=1.0 if other else 1.6, alpha=0.7 if other else 1.0,
                            color=colours[k % len(colours)], label=label)
            rate = "none found" if lr is None else f"{lr:.4g}"
            ax.set_title(f"hidden {hidden}, {'default' if row == 0 else 'high'} rate {rate}", fontsize=10)
            ax.grid(alpha=0.3)
            if ax.get_lines():
                ax.legend(fontsize=7, loc="upper right")
            if row == 1:
                ax.set_xlabel("epoch (0: initialisation)")
                ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0, 0].set_ylim(-0.02, max(0.1, 2.0 * highest))  # room above the curves for the legends
    for row in range(2):
        axes[row, 0].set_ylabel("fraction dead on every validation image")
    fig.suptitle("dead ReLU units per hidden layer (solid: no batch norm, dashed: batch norm, dotted: other rates tried)")
    save_figure(fig, path)


# --------------------------------------------------------------------------------------------
# Its section of docs/results.md (make_report.py puts the sections together)
# --------------------------------------------------------------------------------------------


def report(rep: Report, s: dict) -> None:
    """The definition and the search for each size's high rate, the table of every run, the
    figure, then what the numbers show."""
    rep.w(f"A unit is **dead** when its ReLU output is zero for every validation image: measured in evaluation mode (batch "
          f"norm with its running statistics), at initialisation (epoch 0) and after each of the {s['epochs']} epochs of a "
          f"run, layer by layer on the device with one read-back per epoch (`examples/experiments/dead_neurons.py`). The "
          f"sizes are those of {rep.ref('batchnorm')}, with the default settings otherwise.\n")
    search_text(rep, s)
    runs_table(rep, s["runs"])
    rep.fig("dead_neurons/dead_neurons.png", "fraction of dead units per hidden layer over epochs")
    rep.w(dead_neurons_text(s))


def search_text(rep: Report, s: dict) -> None:
    """How each size's high rate was found, and the rates each size was trained at."""
    grid = s["grid"]
    ratios = {round(b / a, 3) for a, b in zip(grid, grid[1:])}
    rep.w(f"**Finding the high rate.** For each size, the network without batch norm was trained at the rates "
          f"{', '.join(f'{lr:.4g}' for lr in grid)}"
          + (f" (a factor of {ratios.pop():g} apart)" if len(ratios) == 1 else "")
          + " in increasing order, each for the full run, stopping at "
          "the first rate that diverged. The size's high rate is the rate, among those that did not diverge, that left "
          "the most units dead after the last epoch (the largest one if none killed any). The network with batch norm "
          f"was then trained at {s['default_lr']:g} and at that rate.\n")
    for row in s["search"]:
        tried = [f"{lr:.4g}: " + ("diverged" if dv else f"{d} unit{'s' if d != 1 else ''} dead")
                 for lr, d, dv in zip(row["rates_tried"], row["dead_at_end"], row["diverged"])]
        high = row["high_lr"]
        rep.w(f"- {row['hidden_dims']}: " + "; ".join(tried) + " → high rate "
              + ("none (every rate diverged)" if high is None else f"**{high:.4g}**"))
    rep.w("")


def runs_table(rep: Report, runs: list[dict]) -> None:
    w = rep.w
    def row(r: dict) -> tuple:
        layers = r["layers"]
        return (r["hidden_dims"], "yes" if r["batch_norm"] else "no", f"{r['lr']:.4g}",
                ", ".join(f"{layer['dead'][-1]}/{layer['width']} ({100 * layer['dead_fraction'][-1]:.0f}%)" for layer in layers),
                ", ".join(f"{max(layer['dead'])}" for layer in layers), ", ".join(str(layer["revived"]) for layer in layers),
                pct(r["best_val_accuracy"]),
                f"diverged in epoch {r['diverged']['epoch']}" if r["diverged"] else acc(r["test_accuracy"]))

    rep.table(("hidden dims", "batch norm", "lr", "dead after the last epoch, per layer", "most dead in any epoch", "revived",
               "best val accuracy", "test accuracy"), map(row, runs))
    w("Per layer, first hidden layer first. *Revived*: units dead after some epoch and alive after a later one. A "
      "diverged run's columns are those of its last finished epoch.\n")


def dead_neurons_text(s: dict) -> str:
    """The explanation, each claim conditional on the numbers: where units die, what happens to a
    dead unit's weights, the harm, and batch norm."""
    parts = ["**What the numbers show.**", *where_units_die(s), *frozen_weights(s["runs"]), *the_harm(s),
             *with_batch_norm(s["runs"])]
    return " ".join(parts).replace(" \n\n", "\n\n") + "\n"


def dead_fraction_at_end(r: dict) -> float:
    """The fraction of all hidden units of run `r` dead after its last epoch."""
    return sum(layer["dead"][-1] for layer in r["layers"]) / sum(layer["width"] for layer in r["layers"])


def worst_layer(runs: list[dict]) -> tuple[float, dict, int] | None:
    """(fraction, run, layer index) of the most-dead layer after the last epoch among `runs`."""
    cands = [(layer["dead_fraction"][-1], r, k) for r in runs for k, layer in enumerate(r["layers"])]
    return max(cands, key=lambda c: c[0]) if cands else None


def where_units_die(s: dict) -> list[str]:
    """At the default rate, then without batch norm at the higher rates: the most-dead layer,
    and whether first hidden layers lose units."""
    runs, default_lr = s["runs"], s["default_lr"]
    plain = [r for r in runs if not r["batch_norm"]]
    parts = []
    at_default = [r for r in runs if r["lr"] == default_lr]
    if at_default:
        n_zero = sum(1 for r in at_default if all(layer["dead"][-1] == 0 for layer in r["layers"]))
        worst = worst_layer(at_default)
        parts.append(f"At the default rate {default_lr:g}, {n_zero} of the {len(at_default)} networks end with no dead unit"
                     + ("." if n_zero == len(at_default) else
                        f"; the most is {100 * worst[0]:.1f}% of layer {worst[2] + 1} of {worst[1]['hidden_dims']}"
                        f"{' with batch norm' if worst[1]['batch_norm'] else ''}."))
    worst = worst_layer(plain)
    if worst and worst[0] > 0:
        frac, r, k = worst
        layer = r["layers"][k]
        parts.append(f"Without batch norm{', higher rates kill units' if r['lr'] > default_lr else ''}: the most after the "
                     f"last epoch is {layer['dead'][-1]} of the {layer['width']} units ({100 * frac:.0f}%) of layer {k + 1} "
                     f"of {r['hidden_dims']} at lr {r['lr']:.4g}"
                     + (f" ({max(layer['dead'])} after its worst epoch)." if max(layer["dead"]) > layer["dead"][-1] else "."))
        first = max(max(r["layers"][0]["dead_fraction"]) for r in plain)
        later = [max(layer["dead_fraction"]) for r in plain for layer in r["layers"][1:]]
        if later and first == 0 and max(later) > 0:
            parts.append("No unit of a first hidden layer is dead after any epoch of any run; every dead unit is in a layer "
                         "whose inputs are the outputs of a ReLU. A likely reason: a first-layer unit sees normalised images, centred on "
                         "zero, so wᵀx + b takes both signs over the validation images unless b is far below zero; a "
                         "later unit sees non-negative inputs, so a step that makes its weights mostly negative, or its "
                         "bias negative, switches it off for every image at once.")
        elif first > 0:
            parts.append(f"First hidden layers lose units too (up to {100 * first:.0f}%).")
    elif plain:
        parts.append("Without batch norm no rate that trained left a dead unit at the end of its run.")
    return parts


def frozen_weights(runs: list[dict]) -> list[str]:
    """The explanation, checked: how often a dead unit's incoming weights did not move during an
    epoch, and the units that came back."""
    dead_epochs = sum(layer["dead_unit_epochs"] for r in runs for layer in r["layers"])
    if not dead_epochs:
        return []
    frozen = sum(layer["dead_unit_epochs_frozen"] for r in runs for layer in r["layers"])
    alive_epochs = sum(layer["alive_unit_epochs"] for r in runs for layer in r["layers"])
    alive_frozen = sum(layer["alive_unit_epochs_frozen"] for r in runs for layer in r["layers"])
    plain_sgd = all(r.get("sgd", {}).get("momentum", 1) == 0 and r.get("sgd", {}).get("weight_decay", 1) == 0 for r in runs)
    return ["\n\n**Gradients of dead units, measured.** A dead unit's ReLU derivative is zero on every input that keeps it at zero, so no gradient reaches "
            f"its incoming weights and bias. Measured: of the {dead_epochs} times a unit was dead at the start "
            f"of an epoch (all runs, all layers), its incoming weights and bias were unchanged, bit for bit, "
            f"at the end of that epoch {times(frozen)} ({100 * frozen / dead_epochs:.0f}%); for units alive at "
            f"the start of an epoch this happened {times(alive_frozen)} out of {alive_epochs}."
            + (" The others must have been active on some training image while dead on the validation "
               "images: with plain SGD, without momentum or weight decay (as in every run here), a unit's "
               "weights move only through the samples on which it is active." if frozen < dead_epochs and plain_sgd else ""),
            revived_text(runs)]


def revived_text(runs: list[dict]) -> str:
    """The units that came back after being dead, and whether their own weights had moved."""
    revived = [(k, layer) for r in runs for k, layer in enumerate(r["layers"]) if layer["revived"]]
    if not revived:
        return "No dead unit came back in any run."
    total = sum(layer["revived"] for _, layer in revived)
    in_first = sum(layer["revived"] for k, layer in revived if k == 0)
    back = sum(layer.get("revivals", 0) for _, layer in revived)
    back_frozen = sum(layer.get("revivals_frozen", 0) for _, layer in revived)
    text = (f"Dead is not always for good: {total} unit{'s' if total != 1 else ''} came back after being dead, "
            + ("none of them in a first hidden layer." if in_first == 0 else f"{in_first} in a first hidden layer."))
    if back:
        text += (f" Of the {back} times a dead unit was alive again one epoch later, its own incoming weights "
                 f"and bias had not changed during that epoch {times(back_frozen)}"
                 + (": those times it came back because the layers below it changed what it receives"
                    + (", which cannot happen in a first hidden layer, whose input is the image" if in_first == 0 else "")
                    + (f"; the other {back - back_frozen} times its own weights had moved." if back > back_frozen else ".")
                    if back_frozen else ": each time its own weights had moved."))
    return text


def the_harm(s: dict) -> list[str]:
    """The run without batch norm, at its size's high rate, that ends with the most dead units,
    against the default rate and against batch norm at the same rate."""
    runs, default_lr = s["runs"], s["default_lr"]
    highs = {tuple(row["hidden_dims"]): row["high_lr"] for row in s["search"]}
    plain = [r for r in runs if not r["batch_norm"]]
    high_plain = [r for r in plain if highs.get(tuple(r["hidden_dims"])) == r["lr"] and r["lr"] != default_lr]
    if not high_plain:
        return []
    r = max(high_plain, key=dead_fraction_at_end)
    if dead_fraction_at_end(r) <= 0:
        return []
    ref = next((x for x in plain if x["hidden_dims"] == r["hidden_dims"] and x["lr"] == default_lr), None)
    bn_same = next((x for x in runs if x["batch_norm"] and x["hidden_dims"] == r["hidden_dims"] and x["lr"] == r["lr"]), None)
    alive = ", ".join(f"{layer['width'] - layer['dead'][-1]} of {layer['width']}" for layer in r["layers"])
    return [f"\n\n**The harm.** While dead, a unit adds nothing to the output and learns nothing, so the layer works "
            f"with fewer units. "
            f"{r['hidden_dims']} at lr {r['lr']:.4g} ends with {alive} units alive per layer and a test "
            f"accuracy of {acc(r['test_accuracy'])}"
            + (f", against {acc(ref['test_accuracy'])} at lr {default_lr:g}" if ref else "")
            + (f" and {acc(bn_same['test_accuracy'])} with batch norm at the same rate" if bn_same else "")
            + "; the rate itself also changes the optimisation, so this difference is not due to the dead "
            "units alone."]


def with_batch_norm(runs: list[dict]) -> list[str]:
    """Dead units with batch norm, and why it keeps units alive."""
    normed = [r for r in runs if r["batch_norm"]]
    if not normed:
        return []
    worst_bn = worst_layer(normed)
    most = max(max(layer["dead"]) for r in normed for layer in r["layers"])
    rates = sorted({r["lr"] for r in normed})
    return [f"\n\n**Batch norm.** With batch norm, at {listing([f'{lr:.4g}' for lr in rates])}, "
            + ("no unit is dead after any epoch." if most == 0 else
               f"at most {most} units of a layer are dead after any epoch "
               f"({100 * worst_bn[0]:.1f}% of a layer after the last one).")
            + " Batch norm re-centres each unit's pre-activation over the batch: in training, the unit's "
            "normalised input has mean 0 and variance 1 over every batch, so γx̂ + β is positive on part of "
            "every batch unless β is far below zero relative to γ, and the unit keeps receiving a gradient "
            "whatever the weights before it do."]


# --------------------------------------------------------------------------------------------
# Its sentences in the answers to the assignment's questions (questions.md names them)
# --------------------------------------------------------------------------------------------


def worst_dead(rep: Report) -> tuple[list[dict], tuple[dict, int, dict] | None]:
    """The dead-unit experiment's runs, and (run, layer index, layer) of the layer without batch
    norm with the most dead units after the last epoch (None if there is none)."""
    runs = rep.need("dead_neurons")["runs"]
    cands = [(r, k, layer) for r in runs if not r["batch_norm"] and r["test_accuracy"] is not None
             for k, layer in enumerate(r["layers"])]
    return runs, max(cands, key=lambda c: c[2]["dead"][-1]) if cands else None


def batchnorm_at_high_rate(rep: Report) -> str:
    """(Nothing without the dead-unit experiment: the answer stands on the batch-norm one.)"""
    try:
        runs, worst = worst_dead(rep)
    except NotRun:
        return ""
    r = worst[0] if worst else None
    bn = next((x for x in runs if r and x["batch_norm"] and x["hidden_dims"] == r["hidden_dims"] and x["lr"] == r["lr"]),
              None)
    if r is None or bn is None or bn["test_accuracy"] is None:
        return ""
    return (f"At the higher rate {r['lr']:.4g}, {r['hidden_dims']} reaches {acc(bn['test_accuracy'])} with "
            f"batch norm against {acc(r['test_accuracy'])} without ({rep.link('dead_neurons')}).")


def dead_units(rep: Report) -> str:
    runs, worst = worst_dead(rep)
    if not worst or worst[2]["dead"][-1] == 0:
        return f"No run without batch norm ended with a dead unit ({rep.link('dead_neurons')})."
    r, k, layer = worst
    ref = next((x for x in runs if not x["batch_norm"] and x["test_accuracy"] is not None
                and x["hidden_dims"] == r["hidden_dims"] and x["lr"] == rep.need("dead_neurons")["default_lr"]), None)
    return (f"Measured ({rep.link('dead_neurons')}): without batch norm at lr {r['lr']:.4g}, "
            f"{layer['dead'][-1]} of the {layer['width']} units of layer {k + 1} of {r['hidden_dims']} are dead "
            f"after the last epoch ({max(layer['dead'])} after the worst one), and the run ends at "
            f"{acc(r['test_accuracy'])} test accuracy"
            + (f" against {acc(ref['test_accuracy'])} at lr {ref['lr']:g}" if ref else "")
            + " (the rate also changes the optimisation itself, so not all of the gap is the dead units').")


def no_dead_with_batchnorm(rep: Report) -> str:
    runs, worst = worst_dead(rep)
    normed = [r for r in runs if r["batch_norm"]]
    most_bn = max((max(layer["dead"]) for r in normed for layer in r["layers"]), default=None)
    if most_bn is None or worst is None:
        raise NotRun("dead_neurons")
    r, k, layer = worst
    rates = sorted({x["lr"] for x in normed})
    return (f"Measured ({rep.link('dead_neurons')}): without batch norm, up to {layer['dead'][-1]} of "
            f"{layer['width']} units of layer {k + 1} of {r['hidden_dims']} are dead after the last epoch (lr "
            f"{r['lr']:.4g}); with batch norm, at the rates {listing([f'{lr:.4g}' for lr in rates])}, "
            + ("no unit is dead after any epoch of any run." if most_bn == 0
               else f"at most {most_bn} units of a layer are dead after any epoch."))


if __name__ == "__main__":
    main()
