"""Figures of results, built with matplotlib's object API (`matplotlib.figure.Figure`): no
global backend is switched and no pyplot state is kept, so importing this module changes nothing
for the rest of the process, and no display is needed.

Every plotting function returns a `Figure`; `save_figure` writes it (the one place figures are
saved, with one resolution).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

DPI = 110


def new_figure(nrows: int = 1, ncols: int = 1, *, size: tuple[float, float] = (6.0, 4.0), **kwargs: Any) -> tuple[Figure, Any]:
    """A figure and its grid of axes, like ``pyplot.subplots`` but with no global state: a single
    `Axes` for 1 × 1, else an array of them; `kwargs` go to `Figure.subplots` (sharex, ...)."""
    fig = Figure(figsize=size)
    return fig, fig.subplots(nrows, ncols, **kwargs)


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Write `fig` as a PNG (folders made as needed) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    return path


def finished_epochs(history: dict[str, Any]) -> list[dict[str, Any]]:
    """The per-epoch records of a run's history, less an epoch that diverged (it has no figures)."""
    return [e for e in history["epochs"] if not e.get("diverged")]


def finish_axes(ax: Any, *, legend: dict[str, Any] | None = None, grid: dict[str, Any] | None = None,
                **labels: Any) -> None:
    """Labels, limits and title (`labels`, as ``Axes.set`` takes them), the legend (`legend`: its
    settings) and a light grid (`grid`: which lines)."""
    ax.set(**labels)
    ax.legend(**(legend or {}))
    ax.grid(alpha=0.3, **(grid or {}))


def plot_history(history: dict[str, Any], *, title: str = "") -> Figure:
    """Loss (per step and per epoch, train and validation) and accuracy curves, side by side."""
    steps = history["steps"]
    epochs = finished_epochs(history)
    n_steps = len(steps["loss"])
    per_epoch = n_steps / max(len(history["epochs"]), 1)
    fig, (ax_loss, ax_acc) = new_figure(1, 2, size=(11, 4))
    if n_steps:
        x = np.arange(1, n_steps + 1) / per_epoch
        ax_loss.plot(x, steps["loss"], color="tab:blue", alpha=0.25, lw=0.8, label="train loss (each step)")
    ep = [e["epoch"] for e in epochs]
    panels = ((ax_loss, "loss", "cross-entropy loss", "train loss (epoch mean)"),
              (ax_acc, "accuracy", "accuracy", "train accuracy"))
    for ax, key, ylabel, train_label in panels:
        ax.plot(ep, [e[f"train_{key}"] for e in epochs], "o-", color="tab:blue", label=train_label)
        ax.plot(ep, [e[f"val_{key}"] for e in epochs], "s-", color="tab:orange", label=f"validation {key}")
        finish_axes(ax, xlabel="epoch", ylabel=ylabel)
    if title:
        fig.suptitle(title)
    return fig


@dataclass(frozen=True)
class Curve:
    """One per-epoch value of every run, in a panel of `compare_runs`."""

    key: str  #: the field of the history's epoch records: "val_accuracy", "train_loss", ...
    style: str = "o-"
    #: the legend entry, formatted with the run's `name` and `test`, its test accuracy
    label: str = "{name}"


@dataclass(frozen=True)
class Panel:
    ylabel: str
    title: str
    curves: tuple[Curve, ...]


def compare_runs(results: Mapping[str, dict[str, Any]], panels: Sequence[Panel], *,
                 colours: Mapping[str, str] | None = None, size: tuple[float, float] = (12, 4.2)) -> Figure:
    """Several runs' per-epoch curves (`results`: run name -> results.json), one panel beside
    the other; each run in its colour from `colours`, or the default cycle's."""
    fig, axes = new_figure(1, len(panels), size=size)
    for ax, panel in zip(np.atleast_1d(axes), panels):
        for name, r in results.items():
            epochs = finished_epochs(r["history"])
            test = "diverged" if r["test_accuracy"] is None else f"{r['test_accuracy']:.3f}"
            for curve in panel.curves:
                ax.plot([e["epoch"] for e in epochs], [e[curve.key] for e in epochs], curve.style,
                        color=(colours or {}).get(name), label=curve.label.format(name=name, test=test))
        finish_axes(ax, legend={"fontsize": 8}, xlabel="epoch", ylabel=panel.ylabel, title=panel.title)
    return fig


def plot_confusion(matrix: Sequence[Sequence[int]], classes: Sequence[str], *, title: str = "") -> Figure:
    """The confusion matrix as a heat map with counts (rows: true class, columns: predicted)."""
    return plot_confusions([(matrix, title)], classes)


def plot_confusions(matrices: Sequence[tuple[Sequence[Sequence[int]], str]], classes: Sequence[str]) -> Figure:
    """Confusion matrices (each with its title) side by side, as heat maps with counts on one
    colour scale (rows: true class, columns: predicted)."""
    ms = [np.asarray(m) for m, _ in matrices]
    top = max((int(np.max(m)) for m in ms if m.size), default=0)
    fig, axes = new_figure(1, len(ms), size=(7.5 * len(ms), 6.5))
    fig.subplots_adjust(wspace=0.4)  # room for each colour bar before the next panel's labels
    for ax, m, (_, title) in zip(np.atleast_1d(axes), ms, matrices):
        im = ax.imshow(m, cmap="Blues", vmin=0, vmax=max(top, 1))
        fig.colorbar(im, ax=ax, fraction=0.046)
        ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
        ax.set_yticks(range(len(classes)), classes)
        ax.set_xlabel("predicted class")
        ax.set_ylabel("true class")
        for i in range(m.shape[0]):
            for j in range(m.shape[1]):
                ax.text(j, i, str(m[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if m[i, j] > top / 2 else "black")
        if title:
            ax.set_title(title)
    return fig
