"""Layers and losses, each with its analytic forward and backward side by side."""

from .activations import (
    ACTIVATIONS,
    ELU,
    GELU,
    Activation,
    Identity,
    LeakyReLU,
    ReLU,
    Sigmoid,
    Tanh,
    activation_by_name,
)
from .augment import RandomFlip
from .base import Loss, Module
from .batchnorm import BatchNorm1d
from .containers import MLP, Residual, Sequential
from .dropout import Dropout
from .init import INITIALIZERS
from .layernorm import LayerNorm
from .linear import Linear
from .softmax import CrossEntropy, Softmax, SoftmaxCrossEntropy, target_matrix
from .squared_error import SquaredError

__all__ = [
    "ACTIVATIONS",
    "Activation",
    "BatchNorm1d",
    "CrossEntropy",
    "Dropout",
    "ELU",
    "GELU",
    "INITIALIZERS",
    "Identity",
    "LayerNorm",
    "LeakyReLU",
    "Loss",
    "Linear",
    "MLP",
    "Module",
    "RandomFlip",
    "ReLU",
    "Residual",
    "Sequential",
    "Sigmoid",
    "Softmax",
    "SoftmaxCrossEntropy",
    "SquaredError",
    "Tanh",
    "activation_by_name",
    "target_matrix",
]
