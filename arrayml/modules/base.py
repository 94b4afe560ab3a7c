"""The `Module` base class: plain-dict parameters and gradients, a forward cache, modes.

A module's learnable arrays live in ``module.params`` (a plain dict), the gradients that
``backward`` computes in ``module.grads`` (same keys, same shapes), and non-learned state such as
batch norm's running statistics in ``module.buffers``. Nothing is ever written in place: the
optimizer and ``backward`` reassign dict entries with new arrays, so a reference to an old array
is a snapshot that stays valid.

What a layer accepts, checked on every call by attribute comparisons only (no device read):
``forward`` a real floating array of the parameters' dtype, namespace and device; ``backward`` an
upstream gradient of the forward output's shape *and dtype*. Refused, naming the call and the
argument: None, lists, NumPy masked arrays, torch ``meta`` tensors, and torch tensors with
``requires_grad=True``. arrayml does its own backpropagation and never builds a torch autograd
graph (one would grow every step and pull the parameters and running statistics into it), so
such tensors are refused rather than silently detached: pass ``x.detach()``.
"""

from __future__ import annotations

import copy
import inspect
import math
from collections.abc import Iterator, Mapping
from typing import Any

from .. import backend
from ..backend import Array

#: Every Module subclass by its config name (`Module.config`'s "type").
_REGISTRY: dict[str, type[Module]] = {}

#: Constructor arguments that say where or how a module is made, not what it is: a config
#: leaves them out (the dtype is recorded beside it; a synchronisation function is a process's).
_PLACEMENT_ARGUMENTS = ("xp", "device", "dtype", "rng", "sync", "batch_norm_sync")


def registered_module(name: str) -> type[Module]:
    """The Module subclass whose config type is `name` (a `ValueError` naming the known ones)."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown module type {name!r} in the architecture; known: {', '.join(sorted(_REGISTRY))} "
                         "(a layer of your own must be imported before its checkpoint is loaded)")
    return _REGISTRY[name]


class Module:
    """Base class of every layer. Subclasses implement ``forward`` and ``backward``."""

    #: Whether the layer itself draws random numbers in training mode (`Dropout`): it then
    #: takes a key from `set_random_key` (see `arrayml.backend.random`).
    draws_random = False
    #: The key a random layer draws from next (None: its own stream); set by `set_random_key`.
    random_key: Any = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _REGISTRY[cls.config_type()] = cls

    def __init__(self) -> None:
        self.params: dict[str, Array] = {}
        self.grads: dict[str, Array] = {}
        self.buffers: dict[str, Array] = {}
        self.training = True
        self._cache: Any = None

    # -- the two methods every layer writes -------------------------------------------------
    def forward(self, x: Array) -> Array:  # pragma: no cover - abstract
        raise NotImplementedError

    def backward(self, dy: Array, *, input_grad: bool = True) -> Array | None:  # pragma: no cover - abstract
        """Fill ``self.grads`` from the upstream gradient `dy` and return dL/d(input).

        With ``input_grad=False`` the input gradient is not computed and None is returned: the
        first layer of a network never needs it (autograd likewise skips inputs that do not
        require grad), and for the input layer of an MLP it costs as much as its weight gradient.
        """
        raise NotImplementedError

    def __call__(self, x: Array) -> Array:
        return self.forward(x)

    # -- the forward cache ---------------------------------------------------------------------
    def _saved(self) -> Any:
        """What ``forward`` cached for ``backward``; a clear error if there is nothing."""
        cache = self._cache
        return cache if cache is not None else _saved(self)  # (_saved raises the error)

    def clear_cache(self) -> None:
        """Drop the activations saved by ``forward`` (and those of every child)."""
        self._cache = None
        for _, child in self.children():
            child.clear_cache()

    # -- tree structure ------------------------------------------------------------------------
    def children(self) -> list[tuple[str, Module]]:
        """The direct sub-modules, with their names. Containers override this."""
        return []

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """This module and every descendant, depth first, with dotted names."""
        found: list[tuple[str, Module]] = []
        _walk(self, prefix, found)
        return iter(found)

    def parameter_slots(self) -> Iterator[tuple[str, Module, str]]:
        """``(full_name, owner, key)`` for every parameter: ``owner.params[key]`` is the array."""
        found: list[tuple[str, Module]] = []
        _walk(self, "", found)
        return iter([
            ((f"{prefix}.{key}" if prefix else key), module, key)
            for prefix, module in found
            for key in module.params
        ])

    def parameters(self) -> dict[str, Array]:
        """Every learnable array, by dotted name (``"0.weight"``, ``"2.gamma"``...)."""
        return {name: owner.params[key] for name, owner, key in self.parameter_slots()}

    def gradients(self) -> dict[str, Array]:
        """The gradients of the last ``backward``, by the same names as `parameters`."""
        out = {}
        for name, owner, key in self.parameter_slots():
            if key not in owner.grads:
                raise RuntimeError(f"no gradient for parameter {name!r}: call backward() first")
            out[name] = owner.grads[key]
        return out

    def buffer_slots(self) -> Iterator[tuple[str, Module, str]]:
        """Like `parameter_slots`, for the non-learned state (running statistics)."""
        for prefix, module in self.named_modules():
            for key in module.buffers:
                yield (f"{prefix}.{key}" if prefix else key), module, key

    def named_buffers(self) -> dict[str, Array]:
        """Every buffer (running statistics), by dotted name."""
        return {name: owner.buffers[key] for name, owner, key in self.buffer_slots()}

    def set_parameters(self, params: Mapping[str, Array]) -> None:
        """Reassign every parameter from `params` (by the names of `parameters`), as the
        optimizer's update does: no checks, no conversion, nothing written in place. For arrays
        from elsewhere, `load_state` checks and converts."""
        for name, owner, key in self.parameter_slots():
            owner.params[key] = params[name]

    def set_buffers(self, buffers: Mapping[str, Array]) -> None:
        """Reassign every buffer from `buffers` (by the names of `named_buffers`), unchecked."""
        for name, owner, key in self.buffer_slots():
            owner.buffers[key] = buffers[name]

    def clone(self) -> Module:
        """A structural copy: the same classes and settings, dicts of its own holding the same
        arrays (nothing is copied, since nothing is written in place), no gradients, no forward
        cache. What `arrayml.compile` traces, so that the live model never holds a traced array."""
        new = copy.copy(self)
        new.params, new.grads, new.buffers, new._cache = dict(self.params), {}, dict(self.buffers), None
        children = self.children()
        if children:
            new._set_children([child.clone() for _, child in children])
        return new

    def _set_children(self, children: list[Module]) -> None:
        """Replace the direct sub-modules (in `children` order): containers implement it."""
        raise NotImplementedError(f"{type(self).__name__} has children but cannot replace them")

    def state(self) -> dict[str, Array]:
        """Parameters and buffers by dotted name: everything needed to rebuild the model's
        outputs (what a checkpoint saves)."""
        out = self.parameters()
        out.update({name: owner.buffers[key] for name, owner, key in self.buffer_slots()})
        return out

    def load_state(self, state: dict[str, Array]) -> None:
        """Set parameters and buffers from a dict like `state` returns.

        The names, shapes and dtypes must match this model exactly; arrays are converted to the
        namespace and device this model lives on. Raises `ValueError` or `TypeError` naming every
        difference; nothing is reshaped or cast silently, and nothing is changed on error.
        """
        if not isinstance(state, Mapping):
            raise TypeError(
                f"load_state expects a dict of arrays by name (what state() returns), got "
                f"{type(state).__name__}"
            )
        slots = {name: (owner.params, key) for name, owner, key in self.parameter_slots()}
        slots.update({name: (owner.buffers, key) for name, owner, key in self.buffer_slots()})
        missing = sorted(set(slots) - set(state))
        extra = sorted(set(state) - set(slots))
        problems = []
        if missing:
            problems.append(f"missing {missing}")
        if extra:
            problems.append(f"unexpected {extra}")
        for name in sorted(set(slots) & set(state)):
            table, key = slots[name]
            mine, theirs = table[key], state[name]
            try:  # an array arrayml can use (not a list, not a tensor that requires grad)
                backend.get_namespace(theirs, names=("the value",), what=name)
            except (TypeError, ValueError) as exc:
                problems.append(str(exc))
                continue
            if tuple(theirs.shape) != tuple(mine.shape):
                problems.append(
                    f"{name}: shape {tuple(theirs.shape)} where the model has {tuple(mine.shape)}"
                )
            elif backend.dtype_name(theirs.dtype) != backend.dtype_name(mine.dtype):
                problems.append(
                    f"{name}: dtype {backend.dtype_name(theirs.dtype)} where the model has "
                    f"{backend.dtype_name(mine.dtype)}"
                )
        if problems:
            raise ValueError("state does not match this model: " + "; ".join(problems))
        for name, (table, key) in slots.items():
            mine = table[key]
            xp, dev = backend.get_namespace_and_device(mine)
            table[key] = backend.convert(state[name], xp, dev, mine.dtype)
        self.clear_cache()
        for _, module in self.named_modules():
            module.grads = {}

    # -- random numbers ------------------------------------------------------------------------
    def set_random_key(self, key: Any) -> None:
        """Give every layer of the tree that draws random numbers (`Dropout`) its key: `key`
        (a `arrayml.backend.random_key`) folded with the layer's index among those layers, so
        that no two draw the same numbers; None gives each back its own stream. A training step
        calls this with the step's key before forward; a key set and left fixes the masks."""
        index = 0
        for _, module in self.named_modules():
            if module.draws_random:
                module.random_key = None if key is None else backend.fold_in(key, index)
                index += 1

    def draws_random_numbers(self) -> bool:
        """Whether any layer of the tree draws random numbers in its current mode."""
        return any(m.draws_random and m.training for _, m in self.named_modules())

    # -- modes, size, placement ----------------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        """Training mode (batch statistics in batch norm). Returns self."""
        for _, module in self.named_modules():
            module.training = mode
        return self

    def eval(self) -> Module:
        """Evaluation mode (running statistics in batch norm). Returns self."""
        return self.train(False)

    def num_parameters(self) -> int:
        """The number of learnable scalars (``Linear(20, 40)`` has 840)."""
        return sum(math.prod(p.shape) for p in self.parameters().values())

    def to(self, xp: Any = None, device: Any = None, dtype: Any = None) -> Module:
        """Move every parameter and buffer to namespace `xp` (a namespace or a backend name),
        `device` and floating `dtype` (default: keep the current dtype). Drops gradients and the
        forward cache. Returns self."""
        current = self.placement()
        if xp is None and current is not None:
            xp = current.xp
            device = current.device if device is None else device
        where = backend.placement(xp, device, "float32" if dtype is None else dtype)
        for _, module in self.named_modules():
            for table in (module.params, module.buffers):
                for key, value in table.items():
                    target = where.dtype if dtype is not None else getattr(
                        where.xp, backend.dtype_name(value.dtype)
                    )
                    table[key] = backend.convert(value, where.xp, where.device, target)
            module.grads = {}
        self.clear_cache()
        return self

    def placement(self) -> backend.Placement | None:
        """Namespace, device and dtype of this module's parameters (None if it has none)."""
        for p in self.parameters().values():
            xp, dev = backend.get_namespace_and_device(p)
            return backend.Placement(xp=xp, device=dev, dtype=p.dtype)
        return None

    # -- architecture (what a checkpoint records; arrayml.modules.architecture) -----------------
    @classmethod
    def config_type(cls) -> str:
        """The name `config` records: the class name for arrayml's modules, ``module.QualName``
        for others (so that two classes of one name cannot be confused)."""
        if cls.__module__.startswith("arrayml.modules"):
            return cls.__name__
        return f"{cls.__module__}.{cls.__qualname__}"

    def arguments(self) -> dict[str, Any]:
        """The constructor's arguments that make this module what it is (JSON-able; not where it
        lives). A module whose constructor takes such arguments must override this."""
        taken = [p for p in inspect.signature(type(self).__init__).parameters
                 if p not in ("self", *_PLACEMENT_ARGUMENTS)]
        if taken:
            raise NotImplementedError(
                f"{type(self).__name__}.arguments() must return its constructor's arguments ({', '.join(taken)}) "
                "for its architecture to be recorded"
            )
        return {}

    def config(self) -> dict[str, Any]:
        """This module's architecture as plain data: ``{"type": ..., **arguments()}``;
        `arrayml.modules.architecture.build` makes a new module from it."""
        return {"type": self.config_type(), **self.arguments()}

    @classmethod
    def from_config(cls, config: Mapping[str, Any], **placement: Any) -> Module:
        """A new module from `config` (see `config`); `placement` (xp, device, dtype) is passed to
        constructors that take it."""
        accepted = inspect.signature(cls.__init__).parameters
        args = {k: v for k, v in config.items() if k != "type"}
        return cls(**args, **{k: v for k, v in placement.items() if k in accepted})

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        kids = self.children()
        if not kids:
            return f"{type(self).__name__}({self.extra_repr()})"
        inner = "\n".join(f"  ({n}): " + repr(m).replace("\n", "\n  ") for n, m in kids)
        return f"{type(self).__name__}(\n{inner}\n)"


def _walk(module: Module, prefix: str, found: list[tuple[str, Module]]) -> None:
    """Append `module` and its descendants to `found`, depth first, with dotted names: a list
    built by plain recursion, since the optimizer walks the tree on every step and nested
    generators cost a frame per level per item."""
    found.append((prefix, module))
    for name, child in module.children():
        _walk(child, f"{prefix}.{name}" if prefix else name, found)


def _saved(owner: Module | Loss) -> Any:
    if owner._cache is None:
        raise RuntimeError(
            f"{type(owner).__name__}.backward() called before forward(): there are no saved "
            "activations (or clear_cache() removed them)"
        )
    return owner._cache


class Loss:
    """Base class of the losses: ``forward(scores, targets)`` returns the scalar loss (a 0-D
    array) and caches what ``backward(dloss=None)`` needs to return dL/d(scores). A loss has no
    parameters; the chain rule continues from its ``backward`` into a `Module`'s."""

    def __init__(self) -> None:
        self._cache: Any = None

    def forward(self, x: Array, t: Array) -> Array:  # pragma: no cover - abstract
        raise NotImplementedError

    def backward(self, dloss: Array | float | None = None) -> Array:  # pragma: no cover - abstract
        """dL/d(scores) of the last forward, times the scalar `dloss` if given."""
        raise NotImplementedError

    def __call__(self, x: Array, t: Array) -> Array:
        return self.forward(x, t)

    def _saved(self) -> Any:
        cache = self._cache
        return cache if cache is not None else _saved(self)  # (_saved raises the error)

    def clear_cache(self) -> None:
        """Drop what ``forward`` saved."""
        self._cache = None

    def clone(self) -> Loss:
        """The same loss with a forward cache of its own (see `Module.clone`)."""
        new = copy.copy(self)
        new._cache = None
        return new

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
