"""Learning-rate schedules: the learning rate as a function of the (fractional) epoch.

A schedule is called with ``epoch = step / steps_per_epoch`` before every step, so the rate can
change within an epoch (warm-up) or only at epoch boundaries (step decay). Plotting one over
``[0, epochs]`` shows exactly what training used.

    constant        lr
    step            lr · γ^⌊epoch / step_size⌋
    cosine          lr_min + ½(lr − lr_min)(1 + cos(π · epoch / epochs))
    warmup-cosine   linear from 0 to lr over the warm-up epochs, then cosine to lr_min
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Schedule:
    """Base class: a learning rate as a function of the (fractional) epoch; `name` and the fields
    describe it in results files. The base schedule is constant.

    Args:
        lr: the base learning rate.
    """

    lr: float

    name = "constant"

    def __call__(self, epoch: float) -> float:
        """The learning rate at `epoch`.

        Args:
            epoch: ``step / steps_per_epoch``, from 0 (fractional within an epoch).

        Returns:
            The rate of the step that starts at `epoch`.
        """
        return self.lr

    def describe(self) -> dict:
        """The schedule as plain data, for results files.

        Returns:
            ``{"name": ..., "lr": ..., ...}``: the name and every field.
        """
        return {"name": self.name, **asdict(self)}


@dataclass(frozen=True)
class Constant(Schedule):
    """``lr`` at every epoch.

    Args:
        lr: the learning rate.
    """
    name = "constant"


@dataclass(frozen=True)
class StepDecay(Schedule):
    """``lr · γ^⌊epoch / step_size⌋``: the rate multiplied by `gamma` every `step_size` epochs.

    Args:
        lr: the rate of the first `step_size` epochs.
        step_size: epochs between two decays (> 0).
        gamma: the factor of each decay, in (0, 1].
    """
    step_size: float = 5.0
    gamma: float = 0.1
    name = "step"

    def __call__(self, epoch: float) -> float:
        return self.lr * self.gamma ** math.floor(epoch / self.step_size + 1e-9)


@dataclass(frozen=True)
class Cosine(Schedule):
    """``lr_min + ½(lr − lr_min)(1 + cos(π · epoch / epochs))``: from `lr` down to `min_lr`.

    Args:
        lr: the rate at epoch 0.
        epochs: the length of the run; the rate stays at `min_lr` after it.
        min_lr: the rate at the end.
    """
    epochs: float = 10.0
    min_lr: float = 0.0
    name = "cosine"

    def __call__(self, epoch: float) -> float:
        return _cosine(self.lr, self.min_lr, epoch / self.epochs)


@dataclass(frozen=True)
class WarmupCosine(Schedule):
    """Linear from 0 to `lr` over the warm-up epochs, then cosine down to `min_lr` at `epochs`.

    Args:
        lr: the rate at the end of the warm-up.
        epochs: the length of the run.
        warmup_epochs: the warm-up's length, in [0, epochs).
        min_lr: the rate at the end.

    Example:
        >>> from arrayml.schedules import WarmupCosine
        >>> schedule = WarmupCosine(0.1, epochs=10, warmup_epochs=2)
        >>> [round(schedule(e), 4) for e in (0, 1, 2, 6, 10)]
        [0.0, 0.05, 0.1, 0.05, 0.0]
    """
    epochs: float = 10.0
    warmup_epochs: float = 1.0
    min_lr: float = 0.0
    name = "warmup-cosine"

    def __call__(self, epoch: float) -> float:
        if epoch < self.warmup_epochs:
            return self.lr * epoch / self.warmup_epochs
        span = max(self.epochs - self.warmup_epochs, 1e-12)
        return _cosine(self.lr, self.min_lr, (epoch - self.warmup_epochs) / span)


def _cosine(lr: float, min_lr: float, t: float) -> float:
    """The cosine decay from `lr` (t = 0) to `min_lr` (t = 1), t clipped to [0, 1]."""
    t = min(max(t, 0.0), 1.0)
    return min_lr + 0.5 * (lr - min_lr) * (1.0 + math.cos(math.pi * t))


SCHEDULES = {"constant": Constant, "step": StepDecay, "cosine": Cosine, "warmup-cosine": WarmupCosine}


def make_schedule(
    name: str, lr: float, *, epochs: float, step_size: float | None = None, gamma: float = 0.1,
    warmup_epochs: float = 1.0, min_lr: float = 0.0,
) -> Schedule:
    """A schedule by name, as ``train.py --schedule`` builds it.

    Args:
        name: ``"constant"``, ``"step"``, ``"cosine"`` or ``"warmup-cosine"``.
        lr: the base learning rate.
        epochs: the length of the run.
        step_size: for ``"step"``: epochs between decays (default: a third of the run, at least 1).
        gamma: for ``"step"``: the factor of each decay.
        warmup_epochs: for ``"warmup-cosine"``: the warm-up's length.
        min_lr: for the cosine schedules: the rate at the end.

    Returns:
        The `Schedule`.

    Raises:
        ValueError: an unknown name, a step decay with ``step_size <= 0`` or `gamma` outside
            (0, 1], or a warm-up outside [0, epochs).

    Example:
        >>> from arrayml.schedules import make_schedule
        >>> schedule = make_schedule("step", 0.1, epochs=30, step_size=10)
        >>> schedule
        StepDecay(lr=0.1, step_size=10, gamma=0.1)
        >>> round(schedule(25), 6)
        0.001
    """
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}; expected one of {', '.join(SCHEDULES)}")
    if name == "constant":
        return Constant(lr)
    if name == "step":
        size = step_size if step_size is not None else max(epochs / 3.0, 1.0)
        if size <= 0 or not 0 < gamma <= 1:
            raise ValueError(f"step decay needs step_size > 0 and 0 < gamma <= 1, got {size} and {gamma}")
        return StepDecay(lr, step_size=size, gamma=gamma)
    if name == "cosine":
        return Cosine(lr, epochs=epochs, min_lr=min_lr)
    if not 0 <= warmup_epochs < epochs:
        raise ValueError(f"warm-up must last between 0 and {epochs} epochs, got {warmup_epochs}")
    return WarmupCosine(lr, epochs=epochs, warmup_epochs=warmup_epochs, min_lr=min_lr)
