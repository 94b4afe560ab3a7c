"""Classification metrics written against the array API and computed on the device.

Everything derives from the confusion matrix ``M`` (rows: true class, columns: predicted class):

    accuracy   = tr(M) / ΣM
    precision  = M_cc / Σ_r M_rc         (column sums: how many predictions of c were right)
    recall     = M_cc / Σ_c' M_cc'       (row sums: how many samples of c were found)
    F_β        = (1 + β²)·P·R / (β²·P + R)

A class with no predictions (or no samples) gets precision (or recall) 0 rather than NaN, and
so does its F-beta. `summarize` computes all of it on the device and reads it back in a single
host transfer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from . import backend
from .backend import Array, Namespace
from .validate import positive_int, real_number


def confusion_matrix(
    y_true: Array, y_pred: Array, n_classes: int, *, xp: Namespace | None = None,
    validate: bool = True,
) -> Array:
    """Counts ``M[i, j]`` of samples of class i predicted as j.

    Computed as ``onehot(y_true)ᵀ · onehot(y_pred)`` (one matrix product, no scatter, which the
    standard lacks). Float predictions are refused, never truncated: take
    ``xp.argmax(scores, axis=1)``.

    Args:
        y_true: the true classes, a 1-D integer array of class indices.
        y_pred: the predicted classes, a 1-D integer array of the same length.
        n_classes: C, the number of classes.
        xp: their namespace (default: asked of the arrays).
        validate: True (the default) checks every index is in [0, n_classes), which reads two
            values back from the device; with False such a sample is silently left out of the
            matrix (use it only for indices checked before, e.g. labels checked once and argmax
            predictions).

    Returns:
        An int64 (C, C) array on the labels' device.

    Raises:
        TypeError: an argument is None or not an integer array.
        ValueError: the arrays are not 1-D and of equal length, or (with `validate`) an index is
            out of range.

    Example:
        >>> import numpy as np
        >>> from arrayml.metrics import accuracy, confusion_matrix
        >>> cm = confusion_matrix(np.array([0, 1, 1, 2]), np.array([0, 1, 2, 2]), 3)
        >>> cm
        array([[1, 0, 0],
               [0, 1, 1],
               [0, 0, 1]])
        >>> float(accuracy(cm))
        0.75
    """
    n_classes = positive_int(n_classes, "confusion_matrix n_classes")
    if xp is None:
        for name, y in (("y_true", y_true), ("y_pred", y_pred)):
            if y is None:
                raise TypeError(f"confusion_matrix expects {name} as an array, got None")
        xp = backend.get_namespace(y_true, y_pred, names=("y_true", "y_pred"), what="confusion_matrix")
    if tuple(y_true.shape) != tuple(y_pred.shape) or y_true.ndim != 1:
        raise ValueError(f"y_true and y_pred must be 1-D and of equal length, got {tuple(y_true.shape)} and {tuple(y_pred.shape)}")
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if not xp.isdtype(y.dtype, "integral"):
            raise TypeError(
                f"confusion_matrix: {name} must hold integer class indices, got dtype "
                f"{backend.dtype_name(y.dtype)} (floats are not truncated to classes: for scores "
                "use xp.argmax(scores, axis=1))"
            )
    if validate and y_true.shape[0] > 0 and bool(
        xp.any((y_true < 0) | (y_true >= n_classes) | (y_pred < 0) | (y_pred >= n_classes))
    ):  # one host read; the error path reads more
        for name, y in (("y_true", y_true), ("y_pred", y_pred)):
            lo, hi = xp.min(y), xp.max(y)
            if bool((lo < 0) | (hi >= n_classes)):
                raise ValueError(
                    f"confusion_matrix: {name} must hold class indices in [0, {n_classes}) for "
                    f"n_classes={n_classes}, got values from {int(lo)} to {int(hi)}"
                )
    dev = backend.device(y_true)
    classes = xp.arange(n_classes, dtype=y_true.dtype, device=dev)
    # float32 counts are exact up to 2**24 samples per cell
    t = xp.astype(y_true[:, None] == classes, xp.float32)
    p = xp.astype(xp.astype(y_pred, y_true.dtype)[:, None] == classes, xp.float32)
    return xp.astype(t.T @ p, backend.widest_int(xp))  # int32 on JAX without x64


def _check_matrix(cm: Array, what: str, xp: Namespace | None) -> Namespace:
    """A confusion matrix: a square 2-D array of counts (integer or real floating)."""
    if xp is None:
        if cm is None:
            raise TypeError(f"{what} expects a confusion matrix as an array, got None")
        xp = backend.get_namespace(cm, names=("the confusion matrix",), what=what)
    shape = tuple(cm.shape)
    if len(shape) != 2 or shape[0] != shape[1]:
        raise ValueError(f"{what} expects a square (C, C) confusion matrix, got shape {shape}")
    if not (xp.isdtype(cm.dtype, "integral") or xp.isdtype(cm.dtype, "real floating")):
        raise TypeError(
            f"{what} expects a confusion matrix of counts (integer or float), got dtype "
            f"{backend.dtype_name(cm.dtype)}"
        )
    return xp


def accuracy(cm: Array, *, xp: Namespace | None = None) -> Array:
    """Fraction of samples on the diagonal.

    Args:
        cm: a square (C, C) confusion matrix of counts.
        xp: its namespace (default: asked of `cm`).

    Returns:
        A 0-D float64 array (float32 on JAX without x64); NaN when `cm` counts no sample.
    """
    xp = _check_matrix(cm, "accuracy", xp)
    cm = xp.astype(cm, backend.widest_float(xp))
    return xp.sum(xp.linalg.diagonal(cm)) / xp.sum(cm)


def _safe_divide(xp: Namespace, num: Array, den: Array) -> Array:
    return xp.where(den > 0, num / xp.where(den > 0, den, 1.0), 0.0)


def precision_recall_fbeta(cm: Array, beta: float = 1.0, *, xp: Namespace | None = None) -> tuple[Array, Array, Array]:
    """Per-class precision, recall and F-beta.

    Args:
        cm: a square (C, C) confusion matrix of counts (rows: true class, columns: predicted).
        beta: the positive weight of recall against precision in F-beta.
        xp: its namespace (default: asked of `cm`).

    Returns:
        ``(precision, recall, fbeta)``: float64 arrays of length C (0 where a ratio is 0/0).
    """
    xp = _check_matrix(cm, "precision_recall_fbeta", xp)
    beta = real_number(beta, "beta", low=0.0, low_open=True)
    cm = xp.astype(cm, backend.widest_float(xp))
    tp = xp.linalg.diagonal(cm)
    precision = _safe_divide(xp, tp, xp.sum(cm, axis=0))
    recall = _safe_divide(xp, tp, xp.sum(cm, axis=1))
    b2 = beta * beta
    fbeta = _safe_divide(xp, (1.0 + b2) * precision * recall, b2 * precision + recall)
    return precision, recall, fbeta


def summarize(
    cm: Array, *, loss_sum: Array | None = None, betas: Sequence[float] = (0.1, 1.0, 10.0),
    class_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Accuracy, loss, per-class precision/recall/F-beta and macro averages, as plain Python.

    Everything is computed on `cm`'s device, packed into one vector and read back once.

    Args:
        cm: a square (C, C) confusion matrix of counts.
        loss_sum: the summed loss over the samples, a 0-D array, or None (no loss).
        betas: the F-beta weights to report, each a positive finite number.
        class_names: None (classes named ``"0"``, ``"1"``...) or C names.

    Returns:
        A dict with ``n``, ``accuracy`` (NaN when `cm` counts no sample), ``loss`` (the mean, or
        None), ``confusion_matrix``, ``classes``, ``precision``, ``recall``, ``fbeta`` (per beta)
        and ``macro`` averages.

    Raises:
        ValueError: `class_names` does not name C classes, or `loss_sum` is not 0-D.
        TypeError: `cm` is not a matrix of counts, or `loss_sum` is on another namespace.
    """
    _check_matrix(cm, "summarize", None)
    xp, dev = backend.get_namespace_and_device(cm)
    C = cm.shape[0]
    betas = [real_number(b, f"summarize betas[{i}]", low=0.0, low_open=True) for i, b in enumerate(betas)]
    if class_names is not None:
        if isinstance(class_names, str):
            class_names = list(class_names)
        if len(class_names) != C:
            raise ValueError(
                f"summarize: class_names must name the {C} classes of the confusion matrix, got "
                f"{len(class_names)} names"
            )
    if loss_sum is not None:
        backend.get_namespace(cm, loss_sum, names=("the confusion matrix", "loss_sum"), what="summarize")
        if tuple(loss_sum.shape) != ():
            raise ValueError(f"summarize: loss_sum must be a 0-D array (one number), got shape {tuple(loss_sum.shape)}")
    wide = backend.widest_float(xp)  # float64; float32 on JAX without x64 (counts < 2**24 exact)
    n = xp.sum(xp.astype(cm, wide))
    parts = [xp.reshape(accuracy(cm, xp=xp), (1,)), xp.reshape(n, (1,))]
    loss = xp.zeros((1,), dtype=wide, device=dev) if loss_sum is None else xp.reshape(xp.astype(loss_sum, wide), (1,)) / n
    parts.append(loss)
    precision, recall, _ = precision_recall_fbeta(cm, 1.0, xp=xp)
    fbetas = [precision_recall_fbeta(cm, beta, xp=xp)[2] for beta in betas]
    parts += [precision, recall, *fbetas, xp.reshape(xp.astype(cm, wide), (-1,))]
    host = backend.to_numpy(xp.concat(parts))  # the one host transfer
    acc, count, mean_loss = float(host[0]), int(host[1]), float(host[2])
    at = 3
    prec, rec = host[at:at + C], host[at + C:at + 2 * C]
    at += 2 * C
    fb = {}
    for beta in betas:
        fb[beta] = host[at:at + C]
        at += C
    matrix = np.asarray(np.reshape(host[at:at + C * C], (C, C)), dtype=np.int64)
    names = list(class_names) if class_names is not None else [str(i) for i in range(C)]
    out: dict[str, Any] = {
        "n": count,
        "accuracy": acc,
        "loss": mean_loss if loss_sum is not None else None,
        "confusion_matrix": matrix.tolist(),
        "classes": names,
        "precision": prec.tolist(),
        "recall": rec.tolist(),
        "fbeta": {_beta_key(b): v.tolist() for b, v in fb.items()},
        "macro": {
            "precision": float(np.mean(prec)),
            "recall": float(np.mean(rec)),
            **{f"f{_beta_key(b)}": float(np.mean(v)) for b, v in fb.items()},
        },
    }
    return out


def _beta_key(beta: float) -> str:
    return f"{beta:g}"
