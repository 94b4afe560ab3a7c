"""One table of modules drives the gradient, torch-oracle and cross-backend tests.

Each entry says how to build the module on a backend, how wide its input is (or, for images,
one sample's shape (C, H, W)), whether it is in training or evaluation mode, and whether its
derivative has a kink at 0 (then drawn inputs keep away from 0, where central differences are
meaningless) or where two inputs tie (max pooling: then the drawn inputs are distinct). Layers
that draw random numbers (dropout, random flips and crops) get a fixed key, so that every
forward of the check draws the same mask.
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
    features: int | None = None  # rows of this many features; or:
    input_shape: tuple[int, ...] | None = None  # one sample's shape, (C, H, W) for images
    kink_at_zero: bool = False
    training: bool = True
    min_batch: int = 1
    max_batch: int = 5
    batch_stats: bool = False  # output depends on batch statistics (needs spread-out inputs)
    row_stats: bool = False  # output depends on each row's statistics (layer norm: spread-out rows)
    distinct: bool = False  # a kink where two inputs tie (max pooling): inputs drawn distinct

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """One sample's shape: ``(features,)`` or `input_shape`."""
        return self.input_shape if self.input_shape is not None else (self.features,)


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


def _bn2d_trained(where: dict[str, Any], seed: int) -> am.Module:
    """BatchNorm2d in eval mode after one training step has moved its running statistics."""
    import numpy as np

    bn = am.BatchNorm2d(2, momentum=0.5, **where)
    xp = where["xp"]
    warm = np.random.default_rng(seed).normal(1.0, 2.0, size=(3, 2, 3, 3))
    bn.forward(xp.asarray(warm, dtype=getattr(xp, where["dtype"]), device=where["device"]))
    return bn.eval()


#: The convolutional layers and the CNN builder, on small images (FD costs 4 forwards per scalar).
IMAGE_CASES = [
    ModuleCase("conv2d", lambda w, s: am.Conv2d(2, 2, 3, padding=1, rng=s, **w), input_shape=(2, 4, 4), max_batch=2),
    ModuleCase("conv2d-strided-dilated-nonsquare-torch-init",
               lambda w, s: am.Conv2d(2, 2, (2, 3), stride=(2, 1), padding=(1, 0), dilation=(1, 2), init="torch", rng=s, **w),
               input_shape=(2, 5, 6), max_batch=2),
    ModuleCase("conv2d-no-bias-stride3", lambda w, s: am.Conv2d(1, 2, 2, stride=3, padding=2, bias=False, rng=s, **w),
               input_shape=(1, 5, 4), max_batch=2),
    ModuleCase("maxpool2d", lambda w, s: am.MaxPool2d(2), input_shape=(2, 4, 5), max_batch=2, distinct=True),
    ModuleCase("maxpool2d-overlapping", lambda w, s: am.MaxPool2d((3, 2), stride=(2, 1)), input_shape=(1, 5, 4),
               max_batch=2, distinct=True),
    ModuleCase("avgpool2d-overlapping", lambda w, s: am.AvgPool2d((2, 3), stride=(1, 2)), input_shape=(2, 4, 5),
               max_batch=2),
    ModuleCase("global-avgpool2d", lambda w, s: am.GlobalAvgPool2d(), input_shape=(2, 3, 2), max_batch=3),
    ModuleCase("flatten", lambda w, s: am.Flatten(), input_shape=(2, 2, 3), max_batch=3),
    ModuleCase("batchnorm2d-train", lambda w, s: am.BatchNorm2d(2, **w), input_shape=(2, 3, 3), max_batch=2,
               batch_stats=True),
    ModuleCase("batchnorm2d-eval", _bn2d_trained, input_shape=(2, 3, 3), max_batch=2, training=False),
    ModuleCase("random-crop", lambda w, s: _fixed_key(am.RandomCrop(3, padding=1), w, s), input_shape=(2, 3, 4),
               max_batch=3),
    ModuleCase("random-flip-nchw", lambda w, s: _fixed_key(am.RandomFlip(), w, s), input_shape=(2, 2, 3), max_batch=4),
    ModuleCase(
        "cnn-relu-maxpool-global",  # CNN's defaults: batch norm, ReLU, 2x2 max pooling, global average, Linear
        lambda w, s: am.CNN(1, 4, [2], 2, blocks=1, rng=s, **w),
        input_shape=(1, 4, 4), max_batch=2, batch_stats=True, distinct=True,  # distinct: never 0 either
    ),
    ModuleCase(
        "cnn-batchnorm-tanh-avgpool-flatten",
        lambda w, s: am.CNN(1, 4, [2], 2, blocks=1, activation="tanh", pool="avg", head="flatten", rng=s, **w),
        input_shape=(1, 4, 4), max_batch=2, batch_stats=True,
    ),
]

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
    *IMAGE_CASES,
]
