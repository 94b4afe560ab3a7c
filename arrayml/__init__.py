"""arrayml: deep learning with hand-written backpropagation, written once against the array API.

The same forward and backward code runs on NumPy, CuPy, PyTorch, JAX and array-api-strict arrays;
`compile_step` compiles a whole training step with jax.jit or torch.compile.
"""

import importlib
from typing import Any

from . import backend, gradcheck
from .compile import CompiledStep, compile_step
from .modules import (
    ACTIVATIONS,
    CNN,
    ELU,
    GELU,
    MLP,
    Activation,
    AvgPool2d,
    BatchNorm1d,
    BatchNorm2d,
    Conv2d,
    CrossEntropy,
    Dropout,
    Flatten,
    GlobalAvgPool2d,
    Identity,
    LayerNorm,
    LeakyReLU,
    Linear,
    Loss,
    MaxPool2d,
    Module,
    RandomCrop,
    RandomFlip,
    ReLU,
    Residual,
    Sequential,
    Sigmoid,
    Softmax,
    SoftmaxCrossEntropy,
    SquaredError,
    Tanh,
    activation_by_name,
)
from .optim import SGD, Adam, AdamW, Optimizer, RMSprop

__version__ = "0.1.0"

# Submodules reachable as attributes after `import arrayml` (`arrayml.training.fit`,
# `help(arrayml.checkpoint)`), imported on first use: `import arrayml` stays light and never
# imports torch, JAX, matplotlib or scikit-learn.
_LAZY_SUBMODULES = ("checkpoint", "compat", "data", "datasets", "distributed", "learners", "metrics", "optim",
                    "schedules", "step", "training", "validate")


def __getattr__(name: str) -> Any:
    if name in _LAZY_SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY_SUBMODULES))

__all__ = [
    "ACTIVATIONS",
    "Activation",
    "Adam",
    "AdamW",
    "AvgPool2d",
    "BatchNorm1d",
    "BatchNorm2d",
    "CNN",
    "CompiledStep",
    "Conv2d",
    "CrossEntropy",
    "Dropout",
    "ELU",
    "Flatten",
    "GELU",
    "GlobalAvgPool2d",
    "Identity",
    "LayerNorm",
    "LeakyReLU",
    "Loss",
    "Linear",
    "MLP",
    "MaxPool2d",
    "Module",
    "Optimizer",
    "RMSprop",
    "RandomCrop",
    "RandomFlip",
    "ReLU",
    "Residual",
    "SGD",
    "Sequential",
    "Sigmoid",
    "Softmax",
    "SoftmaxCrossEntropy",
    "SquaredError",
    "Tanh",
    "activation_by_name",
    "backend",
    "compile_step",
    "gradcheck",
]
