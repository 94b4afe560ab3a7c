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
from arrayml_app.experiments import Stopwatch, base_config, command_line, out_dir, parser, save_json
from arrayml_app.figures import new_figure, save_figure
from arrayml_app.run import arrayml_learner, load_splits, run

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
        "sgd": {"momentum": cfg.momentum, "weight_decay": cfg.weight_decay},
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
    print(f"{'hidden dims':<16}{'bn':>4}{'lr':>7}{'dead after the last epoch, per layer':>40}{'test acc':>10}")
    for r in runs:
        dead = ", ".join(f"{layer['dead'][-1]}/{layer['width']}" for layer in r["layers"])
        acc = "diverged" if r["test_accuracy"] is None else f"{r['test_accuracy']:.4f}"
        print(f"{str(r['hidden_dims']):<16}{'yes' if r['batch_norm'] else 'no':>4}{r['lr']:>7.3g}{dead:>40}{acc:>10}")
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


if __name__ == "__main__":
    main()
