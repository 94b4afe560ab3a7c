"""Optimizers as pure functions in optax's shape (`Optimizer.init`, `Optimizer.update`), with
``step(model, lr)`` as the eager convenience. See `arrayml.optim.base`."""

from .base import Optimizer, State, flatten_state, unflatten_state
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "State", "flatten_state", "unflatten_state"]
