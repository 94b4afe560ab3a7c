"""Data sets, a library feature of their own (as ``sklearn.datasets``): each finds its file,
verifies it, downloads and caches it if asked, and preprocesses it into `arrayml.data.Splits`.
The core (layers, losses, the training loop) knows none of them.

    from arrayml.datasets import cifar10
    splits = cifar10.load_splits("../shared/data/cifar10")      # preprocessed, seeded 45k/5k split
    raw = cifar10.load_cifar10("../shared/data/cifar10")        # the uint8 images and labels
"""

from . import cifar10
from ._base import DataError
from .cifar10 import load_cifar10

__all__ = ["DataError", "cifar10", "load_cifar10"]
