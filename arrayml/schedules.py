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
    """Base class; `name` and the fields describe it in results files."""

    lr: float

    name = "constant"

    def __call__(self, epoch: float) -> float:
        return self.lr

    def describe(self) -> dict:
        return {"name": self.name, **asdict(self)}


@dataclass(frozen=True)
class Constant(Schedule):
    name = "constant"


@dataclass(frozen=True)
class StepDecay(Schedule):
    step_size: float = 5.0
    gamma: float = 0.1
    name = "step"

    def __call__(self, epoch: float) -> float:
        return self.lr * self.gamma ** math.floor(epoch / self.step_size + 1e-9)


@dataclass(frozen=True)
class Cosine(Schedule):
    epochs: float = 10.0
    min_lr: float = 0.0
    name = "cosine"

    def __call__(self, epoch: float) -> float:
        return _cosine(self.lr, self.min_lr, epoch / self.epochs)


@dataclass(frozen=True)
class WarmupCosine(Schedule):
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
    """A schedule by name, as ``train.py --schedule`` builds it. Step decay defaults to a step
    every third of the run."""
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
