"""`RandomModule`: the base of the layers that draw random numbers in training mode (`Dropout`,
`RandomFlip`), and where their keys come from (`arrayml.backend.random` explains the keys)."""

from __future__ import annotations

from typing import Any

from .. import backend
from ..backend import Namespace, Seed
from .base import Module


class RandomModule(Module):
    """Base of the layers that draw random numbers in training mode (`Dropout`, `RandomFlip`).

    A training step hands each its key (`Module.set_random_key`); a forward outside a step draws
    from the layer's own stream, the key of its `seed` folded with the number of draws so far.
    `rng`: a `numpy.random.Generator` (not advanced: the seed comes from a child of it,
    ``Generator.spawn``, so adding such a layer changes no other layer's initial weights), an
    int seed, or None (seed 0)."""

    draws_random = True

    def __init__(self, rng: Seed = None) -> None:
        super().__init__()
        self.seed = backend.child_seed(rng)
        #: Keys drawn from the layer's own stream so far.
        self.draws = 0

    def next_key(self, xp: Namespace, device: Any) -> Any:
        """The key to draw from now: the step's, or the next of the layer's own stream."""
        key = self.random_key
        if key is None:
            key = backend.fold_in(backend.random_key(self.seed, xp=xp, device=device), self.draws)
            self.draws += 1
        return key
