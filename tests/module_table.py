"""One table of modules drives the gradient, torch-oracle and cross-backend tests.

Each entry says how to build the module on a backend, how wide its input is, whether it is in
training or evaluation mode, and whether its derivative has a kink at 0 (then drawn inputs keep
away from 0, where central differences are meaningless). Layers that draw random numbers
(dropout, random flips) get a fixed key, so that every forward of the check draws the same mask.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import arrayml as am
from arrayml import backend


@dataclass(frozen=True)
class ModuleCase:
    id: str
    make: Callable[[dict[str, Any], int], am.Module]  # (placement kwargs, seed) -> module
    features: int
    kink_at_zero: bool = False
    training: bool = True
    min_batch: int = 1
    batch_stats: bool = False  # output depends on batch statistics (needs spread-out inputs)
    row_stats: bool = False  # output depends on each row's statistics (layer norm: spread-out rows)


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


#: How many different keys (so masks, per shape) the drawn seeds of a random layer's case give:
#: few, so that the ndonnx rows, whose graphs hold the mask, build few graphs.
MASK_KEYS = 4


def _fixed_key(module: am.Module, where: dict[str, Any], seed: int) -> am.Module:
    """`module` with a fixed random key: every forward draws the same masks (a seeded key)."""
    module.set_random_key(backend.random_key(seed % MASK_KEYS, xp=where["xp"], device=where["device"]))
    return module


def _layer_norm(where: dict[str, Any], seed: int) -> am.Module:
    """Layer norm with a drawn scale and shift, so that their gradients and dx̂ = γ ⊙ dy matter."""
    import numpy as np

    ln = am.LayerNorm(5, **where)
    rng = np.random.default_rng(seed)
    xp, dtype = where["xp"], getattr(where["xp"], where["dtype"])
    ln.params["gamma"] = xp.asarray(rng.uniform(0.5, 1.5, size=5), dtype=dtype, device=where["device"])
    ln.params["beta"] = xp.asarray(rng.normal(size=5), dtype=dtype, device=where["device"])
    return ln


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
    ModuleCase("dropout-train", lambda w, s: _fixed_key(am.Dropout(0.4), w, s), 4),
    ModuleCase("layernorm", _layer_norm, 5, row_stats=True),
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
        "mlp-layernorm-dropout-tanh",
        lambda w, s: _fixed_key(am.MLP(4, [6, 5], 3, activation="tanh", layer_norm=True, dropout=0.3, rng=s, **w), w, s),
        4,
        row_stats=True,  # a row of zeros (the biases start at 0) has zero variance in the first layer norm
    ),
    ModuleCase(
        "mlp-batchnorm-tanh",
        lambda w, s: am.MLP(4, [5], 3, activation="tanh", batch_norm=True, rng=s, **w),
        4,
        min_batch=3,
        batch_stats=True,
    ),
]
