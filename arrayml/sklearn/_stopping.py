"""scikit-learn's stopping rule for its stochastic solvers, written once (`_Progress`)."""

from __future__ import annotations

from typing import Any, Protocol

from ..backend import Array
from ..training import ArraymlLearner
from ._settings import _Settings


class _Record(Protocol):
    """What the rule reads and writes of an estimator (`_BaseMLP`'s fitted attributes)."""

    validation_scores_: list[float] | None
    best_validation_score_: float | None
    best_loss_: float | None
    _no_improvement: int

    def _score_outputs(self, out: Array, targets: Array) -> float: ...


class _Progress:
    """scikit-learn's stopping rule for its stochastic solvers, once: without early stopping,
    the training loss must fall by more than ``tol`` below its best within ``n_iter_no_change``
    epochs; with it, the held-out score must rise by more than ``tol`` above its best, whose
    weights are kept and put back at the end."""

    def __init__(self, est: _Record, s: _Settings) -> None:
        self.est, self.s = est, s
        self.best_state: dict[str, Any] | None = None

    def update(self, loss: float, learner: ArraymlLearner, x_val: Array | None, t_val: Array | None) -> bool:
        """Record the epoch; True when training should stop."""
        est, s = self.est, self.s
        if s.early_stopping:
            score = est._score_outputs(learner.logits(x_val), t_val)
            assert est.validation_scores_ is not None and est.best_validation_score_ is not None
            est.validation_scores_.append(score)
            if s.verbose:
                print(f"Validation score: {score:f}")
            est._no_improvement = est._no_improvement + 1 if score < est.best_validation_score_ + s.tol else 0
            if score > est.best_validation_score_:
                est.best_validation_score_ = score
                self.best_state = learner.snapshot()
        else:
            assert est.best_loss_ is not None
            est._no_improvement = est._no_improvement + 1 if loss > est.best_loss_ - s.tol else 0
            est.best_loss_ = min(est.best_loss_, loss)
        if est._no_improvement > s.n_iter_no_change:
            if s.verbose:
                what = "Validation score" if s.early_stopping else "Training loss"
                print(f"{what} did not improve more than tol={s.tol:f} for {s.n_iter_no_change} consecutive epochs. "
                      "Stopping.")
            return True
        return False

    def finish(self, learner: ArraymlLearner) -> None:
        if self.best_state is not None:
            learner.restore(self.best_state)


