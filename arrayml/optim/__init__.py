"""Optimizers as pure functions in optax's shape (`Optimizer.init`, `Optimizer.update`), with
``step(model, lr)`` as the eager convenience, and clipping by global norm as an option of every
one of them. See `arrayml.optim.base`."""

from .adam import Adam
from .adamw import AdamW
from .base import Optimizer, State, clip_by_global_norm, flatten_state, global_norm, unflatten_state
from .rmsprop import RMSprop
from .sgd import SGD

#: Optimizers by the names the command line takes.
OPTIMIZERS: dict[str, type[Optimizer]] = {"sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSprop}

__all__ = [
    "OPTIMIZERS",
    "Adam",
    "AdamW",
    "Optimizer",
    "RMSprop",
    "SGD",
    "State",
    "clip_by_global_norm",
    "flatten_state",
    "global_norm",
    "unflatten_state",
]
