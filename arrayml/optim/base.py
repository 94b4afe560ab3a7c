"""Optimizers in optax's shape: pure functions over name → array dicts.

    state = opt.init(params)                                   # params: {"0.weight": W, ...}
    new_params, new_state = opt.update(grads, state, params, lr)

`update` never writes into its inputs: it returns new dicts of new arrays, so it can be traced
(``jax.jit``, ``torch.compile``), exported (ndonnx), or run eagerly, and an old reference stays
an unchanged snapshot. The state is a plain dict: each entry is either a dict of arrays by
parameter name (a "slot": momentum buffers, Adam's moments) or one array (Adam's step count). It
is what a checkpoint saves (`flatten_state`) and what a compiled step takes and returns.

``opt.step(model, lr)`` is the eager convenience on top: it checks the model's gradients (every
one, before any parameter changes), keeps the state in ``opt.state``, moves it along when the
model moved (``model.to``), and reassigns the model's parameters with `update`'s result.

Gradient clipping is a transformation of the gradients, written once, here: with
``clip_grad_norm=c`` every optimizer's `update` first scales the gradients by
``min(1, c / (‖g‖ + 1e-6))``, ``‖g‖`` the norm over all parameters together
(`clip_by_global_norm`, ``torch.nn.utils.clip_grad_norm_``'s semantics), then applies its rule
(`Optimizer.apply_gradients`). Since the eager, compiled and data-parallel steps all call
`update` (the data-parallel one with the averaged gradients), each clips the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import backend, validate
from ..backend import Array
from ..modules.base import Module

#: An optimizer's state: slot name → {parameter name → array}, or entry name → array.
State = dict[str, Any]


class Optimizer:
    """Base class: subclasses implement `init`, `apply_gradients` (the rule) and `settings`.

    ``lr`` is the rate `step` uses when it is given none; ``state`` is the eager state (None until
    the first `step`, or set by a checkpoint); ``clip_grad_norm`` (None, or a positive number)
    clips the gradients by their global norm before the rule sees them.
    """

    def __init__(self, lr: float, *, clip_grad_norm: float | None = None) -> None:
        self.lr = validate.learning_rate(lr, f"{type(self).__name__} learning rate")
        self.clip_grad_norm = clip_grad_norm
        self.state: State | None = None

    @property
    def clip_grad_norm(self) -> float | None:
        """The largest global gradient norm `update` lets through (None: no clipping)."""
        return self._clip_grad_norm

    @clip_grad_norm.setter
    def clip_grad_norm(self, value: float | None) -> None:
        self._clip_grad_norm = None if value is None else validate.real_number(
            value, f"{type(self).__name__} clip_grad_norm", low=0.0, low_open=True)

    # -- the pure interface ----------------------------------------------------------------------
    def init(self, params: Mapping[str, Array]) -> State:  # pragma: no cover - abstract
        """The state before the first step, for `params`."""
        raise NotImplementedError

    def update(
        self, grads: Mapping[str, Array], state: State, params: Mapping[str, Array], lr: Any,
    ) -> tuple[dict[str, Array], State]:
        """New parameters and new state after one step at rate `lr` (a number, or a 0-D array
        inside a compiled step): the gradients clipped by their global norm if
        ``clip_grad_norm`` is set, then the optimizer's rule (`apply_gradients`). Pure: nothing
        given is modified."""
        if self._clip_grad_norm is not None:
            grads = clip_by_global_norm(grads, self._clip_grad_norm)
        return self.apply_gradients(grads, state, params, lr)

    def apply_gradients(
        self, grads: Mapping[str, Array], state: State, params: Mapping[str, Array], lr: Any,
    ) -> tuple[dict[str, Array], State]:  # pragma: no cover - abstract
        """The optimizer's rule: new parameters and state from (already transformed) `grads`.
        Pure: builds new arrays and dicts only."""
        raise NotImplementedError

    def hyperparameters(self) -> tuple[Any, ...]:
        """The settings `update` reads, besides the rate (a compiled step recompiles when they
        change): every setting but ``lr``."""
        return tuple((k, v) for k, v in self.settings().items() if k != "lr")

    # -- the eager convenience -------------------------------------------------------------------
    def step(self, model: Module, lr: float | None = None) -> None:
        """Update every parameter of `model` from its ``grads`` at rate `lr` (default: the
        constructor's ``lr``; a schedule passes each step's rate here, and 0 is allowed),
        reassigning each entry, never writing in place.

        Every gradient (and state entry) is checked before any parameter changes, so a bad one
        leaves the whole model as it was."""
        name = type(self).__name__
        if not isinstance(model, Module):
            raise TypeError(f"{name}.step expects an arrayml Module, got {type(model).__name__}")
        rate = validate.learning_rate(self.lr if lr is None else lr, f"{name} learning rate", zero_ok=lr is not None)
        params = model.parameters()
        grads = self.checked_gradients(model, params)
        new_params, self.state = self.update(grads, self.state_for(params), params, rate)
        model.set_parameters(new_params)

    def checked_gradients(self, model: Module, params: Mapping[str, Array]) -> dict[str, Array]:
        """`model`'s gradients, each checked against its parameter (shape, dtype, namespace,
        device: attribute comparisons only, no device read): a (1, 4) gradient is never
        broadcast onto a (5, 4) weight, nor a float64 gradient allowed to turn a float32
        parameter into float64."""
        what = f"{type(self).__name__}.step"
        grads = {}
        for pname, owner, key in model.parameter_slots():
            grad = owner.grads.get(key)
            if grad is None:
                raise RuntimeError(f"no gradient for parameter {pname!r}: call backward() before {what}()")
            p = params[pname]
            if type(grad) is not type(p) or grad.shape != p.shape or grad.dtype != p.dtype:
                _check_pair(f"{what}, parameter {pname!r}", p, grad, ("the parameter", "its gradient"))
                raise ValueError(
                    f"{what}, parameter {pname!r}: its gradient must have the parameter's shape "
                    f"{tuple(p.shape)} and dtype {backend.dtype_name(p.dtype)}, got shape "
                    f"{tuple(grad.shape)} and dtype {backend.dtype_name(grad.dtype)}"
                )
            grads[pname] = grad
        # one namespace and device for everything (the usual case, one call); otherwise the
        # first pair that differs is named
        everything = [a for pair in zip(params.values(), grads.values()) for a in pair]
        try:
            backend.get_namespace(*everything)
        except (TypeError, ValueError):
            for pname, p in params.items():
                _check_pair(f"{what}, parameter {pname!r}", p, grads[pname], ("the parameter", "its gradient"))
        return grads

    def state_for(self, params: Mapping[str, Array]) -> State:
        """``self.state`` fitted to `params`: a new state if there is none; entries that are
        missing filled as `init` would; entries on another namespace, device or dtype than their
        parameter (the model was moved with ``model.to``) converted to it; anything that cannot
        belong to these parameters (an unknown entry, a wrong shape) a `ValueError` naming it."""
        state = self.state
        if state is None:
            return self.init(params)
        if _fits(state, params):
            return state
        return self.fitted_state(state, params)

    def fitted_state(self, state: Mapping[str, Any], params: Mapping[str, Array]) -> State:
        """`state` (e.g. read from a checkpoint, as host arrays) checked against `params` and
        converted to where they live; see `state_for`."""
        name = type(self).__name__
        if not isinstance(state, Mapping):
            raise TypeError(f"{name} state must be a dict (what init() returns), got {type(state).__name__}")
        fresh = self.init(params)
        unknown = sorted(set(state) - set(fresh))
        if unknown:
            keeps = ", ".join(sorted(fresh)) or "nothing"
            raise ValueError(
                f"{name} state has entries {unknown} that this optimizer does not keep (it keeps: {keeps}); "
                f"is it the state of another optimizer, or of {name} with other settings?"
            )
        out: State = {}
        for key, default in fresh.items():
            given = state.get(key)
            if isinstance(default, dict):
                out[key] = self._fitted_slot(key, given or {}, default, params)
            elif given is None:
                out[key] = default
            else:
                xp, dev = backend.get_namespace_and_device(default)
                backend.get_namespace(given, names=(f"{name} state {key!r}",))
                out[key] = backend.convert(given, xp, dev, default.dtype)
        return out

    def _fitted_slot(self, key: str, given: Any, default: dict[str, Array], params: Mapping[str, Array]) -> dict:
        what = f"{type(self).__name__} state {key}"
        if not isinstance(given, Mapping):
            raise TypeError(f"{what} must be a dict of arrays by parameter name, got {type(given).__name__}")
        unknown = sorted(set(given) - set(params))
        if unknown:
            raise ValueError(f"{what} has entries for parameters this model lacks: {unknown}")
        slot = {}
        for pname, p in params.items():
            v = given.get(pname)
            if v is None:
                slot[pname] = default[pname]
                continue
            backend.get_namespace(v, names=(f"{what}[{pname!r}]",))
            if tuple(v.shape) != tuple(p.shape):
                raise ValueError(
                    f"{what}[{pname!r}] has shape {tuple(v.shape)} but its parameter has shape {tuple(p.shape)}; "
                    f"it belongs to another model (a checkpoint of another architecture?): reset the "
                    f"optimizer's state with optimizer.state = None"
                )
            xp, dev = backend.get_namespace_and_device(p)
            slot[pname] = backend.convert(v, xp, dev, p.dtype)
        return slot

    def __repr__(self) -> str:
        items = sorted(self.settings().items(), key=lambda kv: kv[0] == "clip_grad_norm")  # clipping last
        settings = ", ".join(f"{k}={v}" for k, v in items)
        return f"{type(self).__name__}({settings})"

    def settings(self) -> dict[str, Any]:
        """The constructor's arguments, by name (``repr`` and run records show them;
        ``type(opt)(**opt.settings())`` is an equal optimizer). Subclasses add theirs."""
        return {"lr": self.lr, "clip_grad_norm": self.clip_grad_norm}


def zeros_like(p: Array) -> Array:
    """Zeros of `p`'s shape, dtype, namespace and device (an optimizer's fresh slot)."""
    xp, dev = backend.get_namespace_and_device(p)
    return xp.zeros(tuple(p.shape), dtype=p.dtype, device=dev)


def _check_pair(what: str, p: Array, other: Array, names: tuple[str, str]) -> None:
    backend.get_namespace_and_device(p, other, names=names, what=what)


def _fits(state: Mapping[str, Any], params: Mapping[str, Array]) -> bool:
    """Whether every slot of `state` holds, for every parameter, an array of its type, shape,
    dtype and device, and every single entry (a step count) an array of the parameters' type
    and device (attribute comparisons only: this runs every eager step)."""
    first = next(iter(params.values()), None)
    for entry in state.values():
        if not isinstance(entry, dict):
            if first is not None and (type(entry) is not type(first)
                                      or getattr(entry, "device", None) != getattr(first, "device", None)):
                return False
            continue
        if len(entry) != len(params):
            return False
        for pname, p in params.items():
            v = entry.get(pname)
            if v is None or type(v) is not type(p) or v.shape != p.shape or v.dtype != p.dtype \
                    or getattr(v, "device", None) != getattr(p, "device", None):
                return False
    return True


def flatten_state(state: Mapping[str, Any] | None) -> dict[str, Array]:
    """An optimizer state as flat ``"slot/parameter"`` (or ``"entry"``) → array pairs, for a
    checkpoint; `unflatten_state` undoes it."""
    flat: dict[str, Array] = {}
    for key, entry in (state or {}).items():
        if isinstance(entry, Mapping):
            flat.update({f"{key}/{pname}": v for pname, v in entry.items()})
        else:
            flat[key] = entry
    return flat


def unflatten_state(flat: Mapping[str, Array]) -> State:
    """The nested state that `flatten_state` flattened."""
    state: State = {}
    for key, value in flat.items():
        slot, sep, pname = key.partition("/")
        if sep:
            state.setdefault(slot, {})[pname] = value
        else:
            state[key] = value
    return state


def global_norm(grads: Mapping[str, Array]) -> Array:
    """The 2-norm of all the arrays of `grads` together, ``sqrt(Σ_p Σ g_p²)``, as a 0-D device
    array (not read back)."""
    total = None
    for g in grads.values():
        xp = backend.get_namespace(g)
        s = xp.sum(g * g)
        total = s if total is None else total + s
    if total is None:
        raise ValueError("global_norm needs at least one gradient")
    return xp.sqrt(total)


def clip_by_global_norm(grads: Mapping[str, Array], max_norm: Any) -> dict[str, Array]:
    """`grads` scaled so that their global norm (`global_norm`) is at most `max_norm`:
    every gradient times ``min(1, max_norm / (norm + 1e-6))``, exactly as
    ``torch.nn.utils.clip_grad_norm_(params, max_norm)`` does (the same 1e-6, the same scale for
    every parameter, a multiplication by 1 below the threshold). The factor stays on the device:
    no host read, so the step can be compiled and never waits; a NaN norm makes every gradient
    NaN, as in PyTorch, and the training loop then reports the divergence."""
    norm = global_norm(grads)
    xp = backend.get_namespace(norm)
    coef = max_norm / (norm + 1e-6)
    coef = xp.where(coef > 1.0, 1.0, coef)  # clamp(max=1) that keeps a NaN (`minimum` with a constant cannot be traced by torch.compile)
    return {name: g * xp.astype(coef, g.dtype) for name, g in grads.items()}
