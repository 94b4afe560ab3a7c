"""Figures of results, built with matplotlib's object API (`matplotlib.figure.Figure`): no
global backend is switched and no pyplot state is kept, so importing this module changes nothing
for the rest of the process, and no display is needed.

Every plotting function returns a `Figure`; `save_figure` writes it (the one place figures are
saved, with one resolution).
"""

from __future__ import annotations

from collections.abc import Sequence
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


def plot_history(history: dict[str, Any], *, title: str = "") -> Figure:
    """Loss (per step and per epoch, train and validation) and accuracy curves, side by side."""
    steps = history["steps"]
    epochs = [e for e in history["epochs"] if not e.get("diverged")]
    n_steps = len(steps["loss"])
    per_epoch = n_steps / max(len(history["epochs"]), 1)
    fig, (ax_loss, ax_acc) = new_figure(1, 2, size=(11, 4))
    if n_steps:
        x = np.arange(1, n_steps + 1) / per_epoch
        ax_loss.plot(x, steps["loss"], color="tab:blue", alpha=0.25, lw=0.8, label="train loss (each step)")
    ep = [e["epoch"] for e in epochs]
    ax_loss.plot(ep, [e["train_loss"] for e in epochs], "o-", color="tab:blue", label="train loss (epoch mean)")
    ax_loss.plot(ep, [e["val_loss"] for e in epochs], "s-", color="tab:orange", label="validation loss")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("cross-entropy loss")
    ax_loss.legend()
    ax_loss.grid(alpha=0.3)
    ax_acc.plot(ep, [e["train_accuracy"] for e in epochs], "o-", color="tab:blue", label="train accuracy")
    ax_acc.plot(ep, [e["val_accuracy"] for e in epochs], "s-", color="tab:orange", label="validation accuracy")
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("accuracy")
    ax_acc.legend()
    ax_acc.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    return fig


def plot_confusion(matrix: Sequence[Sequence[int]], classes: Sequence[str], *, title: str = "") -> Figure:
    """The confusion matrix as a heat map with counts (rows: true class, columns: predicted)."""
    m = np.asarray(matrix)
    fig, ax = new_figure(size=(7.5, 6.5))
    im = ax.imshow(m, cmap="Blues")
    fig.colorbar(im, ax=ax, fraction=0.046)
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    threshold = np.max(m) / 2 if m.size else 0
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            ax.text(j, i, str(m[i, j]), ha="center", va="center", fontsize=7, color="white" if m[i, j] > threshold else "black")
    if title:
        ax.set_title(title)
    return fig
