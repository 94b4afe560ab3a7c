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
from .augment import RandomCrop, RandomFlip
from .base import Loss, Module
from .batchnorm import BatchNorm1d, BatchNorm2d
from .cnn import CNN
from .containers import MLP, Residual, Sequential
from .conv import Conv2d
from .dropout import Dropout
from .flatten import Flatten
from .init import INITIALIZERS
from .layernorm import LayerNorm
from .linear import Linear
from .pooling import AvgPool2d, GlobalAvgPool2d, MaxPool2d
from .softmax import CrossEntropy, Softmax, SoftmaxCrossEntropy, target_matrix
from .squared_error import SquaredError

__all__ = [
    "ACTIVATIONS",
    "Activation",
    "AvgPool2d",
    "BatchNorm1d",
    "BatchNorm2d",
    "CNN",
    "Conv2d",
    "CrossEntropy",
    "Dropout",
    "ELU",
    "Flatten",
    "GELU",
    "GlobalAvgPool2d",
    "INITIALIZERS",
    "Identity",
    "LayerNorm",
    "LeakyReLU",
    "Loss",
    "Linear",
    "MLP",
    "MaxPool2d",
    "Module",
    "RandomCrop",
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
