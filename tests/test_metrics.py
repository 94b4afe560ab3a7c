"""Metrics against hand-computed confusion matrices, on every backend, from one host transfer."""

from __future__ import annotations

import numpy as np
import pytest

from arrayml import backend, metrics
from backends import BACKENDS

Y_TRUE = [0, 0, 1, 1, 2, 2, 2]
Y_PRED = [0, 1, 1, 1, 2, 0, 2]
# rows: true class, columns: predicted class (worked out by hand)
CM = [[1, 1, 0, 0],
      [0, 2, 0, 0],
      [1, 0, 2, 0],
      [0, 0, 0, 0]]  # class 3: no samples, no predictions
PRECISION = [1 / 2, 2 / 3, 2 / 2, 0.0]  # tp / column sum
RECALL = [1 / 2, 2 / 2, 2 / 3, 0.0]  # tp / row sum


def _fbeta(p, r, b):
    return 0.0 if p + r == 0 else (1 + b * b) * p * r / (b * b * p + r)


@pytest.mark.parametrize("bk", BACKENDS)
def test_confusion_matrix_by_hand(bk):
    cm = metrics.confusion_matrix(bk.asarray(np.array(Y_TRUE)), bk.asarray(np.array(Y_PRED)), 4)
    assert backend.device(cm) == bk.device
    assert backend.to_numpy(cm).tolist() == CM


@pytest.mark.parametrize("bk", BACKENDS)
def test_precision_recall_fbeta_by_hand(bk):
    cm = bk.asarray(np.array(CM))
    for beta in (0.1, 1.0, 10.0):
        p, r, f = (backend.to_numpy(v) for v in metrics.precision_recall_fbeta(cm, beta))
        np.testing.assert_allclose(p, PRECISION)
        np.testing.assert_allclose(r, RECALL)
        np.testing.assert_allclose(f, [_fbeta(a, b, beta) for a, b in zip(PRECISION, RECALL)])
    assert float(metrics.accuracy(cm)) == pytest.approx(5 / 7)
    # F1 of class 1 by hand: 2 * (2/3) * 1 / (2/3 + 1) = 0.8
    assert float(backend.to_numpy(metrics.precision_recall_fbeta(cm, 1.0)[2])[1]) == pytest.approx(0.8)


@pytest.mark.parametrize("bk", BACKENDS)
def test_summarize_reads_back_everything_once(bk, monkeypatch):
    calls = []
    real = backend.to_numpy
    monkeypatch.setattr(backend, "to_numpy", lambda x: calls.append(1) or real(x))
    cm = bk.asarray(np.array(CM))
    out = metrics.summarize(cm, loss_sum=bk.asarray(np.array(3.5)), betas=(0.1, 1.0, 10.0), class_names="abcd")
    assert len(calls) == 1
    assert out["n"] == 7 and out["accuracy"] == pytest.approx(5 / 7) and out["loss"] == pytest.approx(0.5)
    assert out["confusion_matrix"] == CM and out["classes"] == list("abcd")
    np.testing.assert_allclose(out["precision"], PRECISION)
    np.testing.assert_allclose(out["fbeta"]["10"], [_fbeta(a, b, 10.0) for a, b in zip(PRECISION, RECALL)])
    assert out["macro"]["f1"] == pytest.approx(np.mean([_fbeta(a, b, 1.0) for a, b in zip(PRECISION, RECALL)]))


def test_bad_metric_inputs():
    with pytest.raises(ValueError, match="must be 1-D and of equal length"):
        metrics.confusion_matrix(np.array([0, 1]), np.array([0]), 2)
    with pytest.raises(ValueError, match=r"beta must be a finite number in \(0, inf\), got 0.0"):
        metrics.precision_recall_fbeta(np.eye(2, dtype=np.int64), 0.0)
