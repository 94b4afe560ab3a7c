"""One table of modules drives the gradient, torch-oracle and cross-backend tests.

Each entry says how to build the module on a backend, how wide its input is, whether it is in
training or evaluation mode, and whether its derivative has a kink at 0 (then drawn inputs keep
away from 0, where central differences are meaningless).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import arrayml as am


@dataclass(frozen=True)
class ModuleCase:
    id: str
    make: Callable[[dict[str, Any], int], am.Module]  # (placement kwargs, seed) -> module
    features: int
    kink_at_zero: bool = False
    training: bool = True
    min_batch: int = 1
    batch_stats: bool = False  # output depends on batch statistics (needs spread-out inputs)


def _act(cls: type, **kw: Any) -> Callable[[dict[str, Any], int], am.Module]:
    return lambda where, seed: cls(**kw)


def _bn_trained(where: dict[str, Any], seed: int) -> am.Module:
    """Batch norm in eval mode after one training step has moved its running statistics."""
    import numpy as np

    bn = am.BatchNorm1d(4, momentum=0.5, **where)
    xp = where["xp"]
    warm = np.random.default_rng(seed).normal(1.0, 2.0, size=(6, 4))
    bn.forward(xp.asarray(warm, dtype=getattr(xp, where["dtype"]), device=where["device"]))
    return bn.eval()


MODULE_CASES = [
    ModuleCase("linear", lambda w, s: am.Linear(4, 3, rng=s, **w), 4),
    ModuleCase("linear-input-layer", lambda w, s: am.Linear(5, 2, input_layer=True, rng=s, **w), 5),
    ModuleCase("relu", _act(am.ReLU), 4, kink_at_zero=True),
    ModuleCase("leaky-relu", _act(am.LeakyReLU, negative_slope=0.1), 4, kink_at_zero=True),
    ModuleCase("elu", _act(am.ELU), 4, kink_at_zero=True),
    ModuleCase("tanh", _act(am.Tanh), 4),
    ModuleCase("sigmoid", _act(am.Sigmoid), 4),
    ModuleCase("gelu", _act(am.GELU), 4),
    ModuleCase("identity", _act(am.Identity), 4),
    ModuleCase("softmax", _act(am.Softmax), 4),
    ModuleCase("batchnorm-train", lambda w, s: am.BatchNorm1d(4, **w), 4, min_batch=3, batch_stats=True),
    ModuleCase("batchnorm-eval", _bn_trained, 4, training=False),
    ModuleCase(
        "residual",
        lambda w, s: am.Residual(am.Sequential(am.Linear(4, 5, rng=s, **w), am.Tanh(), am.Linear(5, 4, rng=s + 1, **w))),
        4,
    ),
    ModuleCase(
        "mlp-elu",
        lambda w, s: am.MLP(4, [5, 3], 3, activation="elu", rng=s, **w),
        4,
        kink_at_zero=True,  # x = 0 puts every pre-activation on ELU's kink (biases start at 0)
    ),
    ModuleCase(
        "mlp-batchnorm-tanh",
        lambda w, s: am.MLP(4, [5], 3, activation="tanh", batch_norm=True, rng=s, **w),
        4,
        min_batch=3,
        batch_stats=True,
    ),
]
