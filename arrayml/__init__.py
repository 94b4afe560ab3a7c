"""arrayml: deep learning with hand-written backpropagation, written once against the array API.

The same forward and backward code runs on NumPy, CuPy, PyTorch, JAX and array-api-strict arrays;
`compile_step` compiles a whole training step with jax.jit or torch.compile.
"""

from . import backend, gradcheck
from .compile import CompiledStep, compile_step
from .modules import (
    ACTIVATIONS,
    ELU,
    GELU,
    MLP,
    Activation,
    BatchNorm1d,
    CrossEntropy,
    Dropout,
    Identity,
    LayerNorm,
    LeakyReLU,
    Linear,
    Loss,
    Module,
    RandomFlip,
    ReLU,
    Residual,
    Sequential,
    Sigmoid,
    Softmax,
    SoftmaxCrossEntropy,
    Tanh,
    activation_by_name,
)
from .optim import SGD, Adam, AdamW, Optimizer, RMSprop

__version__ = "0.1.0"

__all__ = [
    "ACTIVATIONS",
    "Activation",
    "Adam",
    "AdamW",
    "BatchNorm1d",
    "CompiledStep",
    "CrossEntropy",
    "Dropout",
    "ELU",
    "GELU",
    "Identity",
    "LayerNorm",
    "LeakyReLU",
    "Loss",
    "Linear",
    "MLP",
    "Module",
    "Optimizer",
    "RMSprop",
    "RandomFlip",
    "ReLU",
    "Residual",
    "SGD",
    "Sequential",
    "Sigmoid",
    "Softmax",
    "SoftmaxCrossEntropy",
    "Tanh",
    "activation_by_name",
    "backend",
    "compile_step",
    "gradcheck",
]
