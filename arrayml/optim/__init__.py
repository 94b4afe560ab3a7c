"""Optimizers as pure functions in optax's shape (`Optimizer.init`, `Optimizer.update`), with
``step(model, lr)`` as the eager convenience, and clipping by global norm as an option of every
one of them. See `arrayml.optim.base`; settings checked on every assignment in
``arrayml.optim.settings``, the state and its checks in ``arrayml.optim.state``. The optimizers know arrays only: nothing here imports
`arrayml.modules`."""

from .adam import Adam
from .adamw import AdamW
from .base import Optimizer, Trainable, clip_by_global_norm, global_norm
from .rmsprop import RMSprop
from .settings import Setting
from .sgd import SGD
from .state import State, flatten_state, unflatten_state

#: Optimizers by the names the command line takes.
OPTIMIZERS: dict[str, type[Optimizer]] = {"sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSprop}

__all__ = [
    "OPTIMIZERS",
    "Adam",
    "AdamW",
    "Optimizer",
    "RMSprop",
    "SGD",
    "Setting",
    "State",
    "Trainable",
    "clip_by_global_norm",
    "flatten_state",
    "global_norm",
    "unflatten_state",
]
