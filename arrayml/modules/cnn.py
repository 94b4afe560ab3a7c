"""`CNN`: a convolutional network for small images, built from its settings (what a checkpoint
records, so that `arrayml.checkpoint.load_model` rebuilds it), as `MLP` is for the perceptron.

    stage 1 … stage k:   [Conv2d(k x k, same padding) → BatchNorm2d → activation] x blocks → pool
    head:                GlobalAvgPool2d (or Flatten) → [Dropout] → Linear(…, n_classes)

e.g. ``CNN(3, 32, [16, 32, 64], 10)``: three stages of two 3x3 convolutions with 16, 32 and 64
channels, batch norm, ReLU, 2x2 max pooling after each stage (32 → 16 → 8 → 4 pixels), the
global average of each of the 64 channels, and a linear layer to the 10 classes' logits.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterable
from typing import Any

from .. import backend, validate
from ..backend import Array, Seed
from .activations import Activation, activation_by_name, activation_config
from .base import Module
from .batchnorm import BatchNorm2d
from .containers import Sequential, built_from_arguments
from .conv import Conv2d
from .dropout import Dropout
from .flatten import Flatten
from .init import check_init
from .linear import Linear
from .pooling import AvgPool2d, GlobalAvgPool2d, MaxPool2d

#: The pooling after each stage, by name (None: no pooling).
POOLS = ("max", "avg")
#: The heads: the global average of each channel, or every pixel of every channel.
HEADS = ("global", "flatten")


class CNN(Sequential):
    """A convolutional network returning logits (pair it with `SoftmaxCrossEntropy`).

    Each stage is `blocks` times ``Conv2d → [BatchNorm2d] → activation``, then a 2x2 pooling;
    then the head, [`Dropout`], and a `Linear` to the classes.

    Args:
        in_channels: channels of the input images (3 for RGB).
        image_size: their height and width: one int (square) or a pair.
        widths: the channels of each stage's convolutions, e.g. ``[16, 32, 64]``.
        n_classes: output size.
        blocks: convolutions per stage (default 2).
        kernel_size: the convolutions' odd kernel size (default 3), padded to keep the size.
        batch_norm: a `BatchNorm2d` after each convolution (whose bias it makes redundant:
            those convolutions have none).
        batch_norm_sync: for data-parallel training, the function that sums a list of arrays
            over the processes (`arrayml.distributed.ProcessGroup.batch_norm_sync`).
        pool: ``"max"`` (default) or ``"avg"``: 2x2 pooling after each stage; None: none.
        head: ``"global"`` (default): the mean of each channel (`GlobalAvgPool2d`), then the
            Linear; ``"flatten"``: every pixel of every channel (`Flatten`).
        dropout: a `Dropout` of this probability before the Linear (0: none).
        activation: the activation after each convolution (any name in `ACTIVATIONS`).
        init: the convolutions' and the Linear's initialiser (`arrayml.modules.init`).
        xp, device, dtype: where the parameters live (default NumPy, CPU, float32).
        rng: generator or int seed for the initial weights (default seed 0).

    Raises:
        TypeError: a setting has the wrong type.
        ValueError: a setting is out of range or unknown (an even kernel size, an unknown pool or
            head, ``batch_norm_sync`` without ``batch_norm``), or the stages' pooling leaves
            nothing of the image.

    Example:
        >>> import numpy as np
        >>> import arrayml as am
        >>> model = am.CNN(3, 8, [4, 8], 10, blocks=1)
        >>> model.input_shape
        (3, 8, 8)
        >>> model(np.zeros((2, 3, 8, 8), dtype=np.float32)).shape
        (2, 10)
    """

    def __init__(
        self, in_channels: int, image_size: int | tuple[int, int], widths: Iterable[int], n_classes: int, *,
        blocks: int = 2, kernel_size: int = 3, batch_norm: bool = True,
        batch_norm_sync: Callable[[list[Array]], list[Array]] | None = None, pool: str | None = "max",
        head: str = "global", dropout: float = 0.0, activation: str | type[Activation] = "relu", init: str = "kaiming",
        xp: Any = None, device: Any = None, dtype: Any = None, rng: Seed = None,
    ) -> None:
        in_channels = validate.positive_int(in_channels, "CNN in_channels")
        size = validate.int_pair(image_size, "CNN image_size")
        n_classes = validate.positive_int(n_classes, "CNN n_classes")
        widths = _widths(widths)
        blocks = validate.positive_int(blocks, "CNN blocks")
        kernel_size = validate.positive_int(kernel_size, "CNN kernel_size")
        if kernel_size % 2 == 0:
            raise ValueError(f"CNN kernel_size must be odd (padding (k - 1)/2 keeps the image size), got {kernel_size}")
        batch_norm = validate.boolean(batch_norm, "CNN batch_norm")
        if batch_norm_sync is not None and not batch_norm:
            raise ValueError("CNN batch_norm_sync synchronizes batch norm layers: it needs batch_norm=True")
        if pool is not None and pool not in POOLS:
            raise ValueError(f"CNN pool must be one of {', '.join(POOLS)} or None, got {pool!r}")
        if head not in HEADS:
            raise ValueError(f"CNN head must be one of {', '.join(HEADS)}, got {head!r}")
        dropout = validate.real_number(dropout, "CNN dropout", low=0.0, high=1.0, high_open=True)
        activation_by_name(activation)  # an unknown name fails here, before any weight is drawn
        init = check_init(init, "CNN init")
        if pool is not None and min(size) >> len(widths) < 1:
            raise ValueError(f"CNN: {len(widths)} stages, each halving the image, leave nothing of a "
                             f"{size[0]}x{size[1]} image; use fewer stages, pool=None, or larger images")
        where = backend.placement(xp, device, dtype)
        put = {"xp": where.xp, "device": where.device, "dtype": where.dtype}
        gen = backend.as_generator(rng)
        layers: list[Module] = []
        channels, (h, w) = in_channels, size
        for width in widths:
            for _ in range(blocks):
                layers.append(Conv2d(channels, width, kernel_size, padding=kernel_size // 2, bias=not batch_norm,
                                     init=init, rng=gen, **put))
                if batch_norm:
                    layers.append(BatchNorm2d(width, sync=batch_norm_sync, **put))
                layers.append(activation_by_name(activation))
                channels = width
            if pool is not None:
                layers.append((MaxPool2d if pool == "max" else AvgPool2d)(2))
                h, w = h // 2, w // 2
        layers.append(GlobalAvgPool2d() if head == "global" else Flatten())
        if dropout:
            layers.append(Dropout(dropout, rng=gen))
        features = channels if head == "global" else channels * h * w
        layers.append(Linear(features, n_classes, init=init, rng=gen, **put))
        super().__init__(*layers)
        self.in_channels, self.image_size, self.widths, self.n_classes = in_channels, size, widths, n_classes
        self.blocks, self.kernel_size, self.batch_norm, self.pool, self.head = blocks, kernel_size, batch_norm, pool, head
        self.dropout, self.activation, self.init = dropout, activation, init
        self._input_shape = (in_channels, *size)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """One sample's shape, (channels, height, width): what an exported graph takes."""
        return self._input_shape

    @property
    def in_features(self) -> int | None:
        """None: the network takes images (`input_shape`), not rows of features."""
        return None

    def arguments(self) -> dict[str, Any]:
        size = self.image_size[0] if self.image_size[0] == self.image_size[1] else list(self.image_size)
        return {"in_channels": self.in_channels, "image_size": size, "widths": list(self.widths),
                "n_classes": self.n_classes, "blocks": self.blocks, "kernel_size": self.kernel_size,
                "batch_norm": self.batch_norm, "pool": self.pool, "head": self.head, "dropout": self.dropout,
                "activation": activation_config(self.activation), "init": self.init}

    config = Module.config  # the arguments rebuild the layers: no need to list them
    from_config = classmethod(built_from_arguments)


def _widths(widths: Any) -> list[int]:
    if isinstance(widths, numbers.Integral) and not isinstance(widths, bool):
        return [validate.positive_int(widths, "CNN widths")]
    if isinstance(widths, (str, bytes)) or not isinstance(widths, Iterable):
        raise TypeError(f"CNN widths must be a list of positive integers (the channels of each stage, e.g. [16, 32, 64]), "
                        f"got {type(widths).__name__} {widths!r}")
    out = [validate.positive_int(w, f"CNN widths[{i}]") for i, w in enumerate(widths)]
    if not out:
        raise ValueError("CNN widths must name at least one stage, e.g. [16, 32, 64]")
    return out
