"""Optimizers in optax's shape: pure functions over name → array dicts.

    state = opt.init(params)                                   # params: {"0.weight": W, ...}
    new_params, new_state = opt.update(grads, state, params, lr)

`update` never writes into its inputs: it returns new dicts of new arrays, so it can be traced
(``jax.jit``, ``torch.compile``), exported (ndonnx), or run eagerly, and an old reference stays
an unchanged snapshot. The state is a plain dict: each entry is either a dict of arrays by
parameter name (a "slot": momentum buffers, Adam's moments) or one array (Adam's step count). It
is what a checkpoint saves (`flatten_state`) and what a compiled step takes and returns.

The optimizers know arrays only. ``opt.step(model, lr)`` is the eager convenience on top, for
anything `Trainable` (an arrayml Module, or any object with ``parameters()``, ``gradients()``
and ``set_parameters()``): it checks the gradients (every one, before any parameter changes),
keeps the eager state in ``opt.state``, moves it along when the model moved (``model.to``), and
hands the model `update`'s new parameters.

Every setting is checked where it enters, in the constructor and again whenever it is
reassigned (`Setting`): ``opt.lr = -1`` or ``opt.betas = (1.0, 0.999)`` is refused at once,
naming the setting. A state set by hand (``opt.state = ...``) or loaded (`fitted_state`) is
checked against the optimizer once, before the first step that uses it: its entries, their
shapes, and the values that only some numbers make sense for (a step count that is a whole
number, second moments >= 0; `check_state_values`). The states that `update` returns are
trusted, so no step reads a value back to the host.

Gradient clipping is a transformation of the gradients, written once, here: with
``clip_grad_norm=c`` every optimizer's `update` first scales the gradients by
``min(1, c / (‖g‖ + 1e-6))``, ``‖g‖`` the norm over all parameters together
(`clip_by_global_norm`, ``torch.nn.utils.clip_grad_norm_``'s semantics), then applies its rule
(`Optimizer.apply_gradients`). Since the eager, compiled and data-parallel steps all call
`update` (the data-parallel one with the averaged gradients), each clips the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from .. import backend, validate
from ..backend import Array
from .settings import positive_or_none, rate
from .state import State, check_values, fits, fitted, flatten_state, unflatten_state

__all__ = ["Optimizer", "State", "Trainable", "clip_by_global_norm", "flatten_state", "global_norm", "namespace_of",
           "unflatten_state", "zero_slot", "zeros_like"]

class Trainable(Protocol):
    """What `Optimizer.step` updates: an arrayml Module, or anything with these three methods."""

    def parameters(self) -> Mapping[str, Array]:
        """Every learnable array, by name.

        Returns:
            A mapping from parameter name to array.
        """

    def gradients(self) -> Mapping[str, Array]:
        """The gradient of every parameter, by the same names.

        Returns:
            A mapping from parameter name to gradient array.
        """

    def set_parameters(self, params: Mapping[str, Array]) -> None:
        """Take these new arrays as the parameters.

        Args:
            params: the new arrays, by the names of `parameters`.
        """


class Optimizer:
    """Base class: subclasses implement `init`, `apply_gradients` (the rule) and `settings`, and
    declare their settings as `Setting` attributes.

    ``state`` is the eager state (None until the first `step`, or set by a checkpoint).

    Args:
        lr: the rate `step` uses when it is given none (a finite number >= 0).
        clip_grad_norm: None, or a positive number: the gradients are then clipped by their
            global norm before the rule sees them (`clip_by_global_norm`).
    """

    lr = rate()
    clip_grad_norm = positive_or_none()
    #: State entries that count steps, and slots that hold second moments (checked when a state
    #: is set by hand or loaded: a whole number >= 0, values >= 0).
    step_counts: tuple[str, ...] = ()
    second_moments: tuple[str, ...] = ()

    def __init__(self, lr: float, *, clip_grad_norm: float | None = None) -> None:
        self.lr = lr
        self.clip_grad_norm = clip_grad_norm
        self._state: State | None = None
        self._state_checked = True

    # -- the pure interface ----------------------------------------------------------------------
    def init(self, params: Mapping[str, Array]) -> State:  # pragma: no cover - abstract
        """The state before the first step.

        Args:
            params: the parameters, by name.

        Returns:
            A new state (its slots are zeros like `params`, on their device).
        """
        raise NotImplementedError

    def update(
        self, grads: Mapping[str, Array], state: State, params: Mapping[str, Array], lr: Any,
    ) -> tuple[dict[str, Array], State]:
        """New parameters and new state after one step: the gradients clipped by their global norm if
        ``clip_grad_norm`` is set, then the optimizer's rule (`apply_gradients`). Pure: nothing
        given is modified.

        Args:
            grads: the gradients, by parameter name.
            state: the state of the previous step (or `init`'s).
            params: the parameters, by name.
            lr: the rate: a number, which must be finite and >= 0, or an array (a 0-D array inside a
                compiled or exported step), which passes unchecked: reading it would be a host sync,
                or impossible while tracing; the runner checks such a rate on the host before tracing.

        Returns:
            ``(new_params, new_state)``: new dicts of new arrays.

        Raises:
            TypeError: `lr` is neither a number nor an array.
            ValueError: `lr` is negative or not finite.

        Example:
            >>> import numpy as np
            >>> import arrayml as am
            >>> opt = am.SGD(lr=0.1)
            >>> params = {"w": np.array([1.0, 2.0])}
            >>> state = opt.init(params)
            >>> params, state = opt.update({"w": np.array([1.0, -1.0])}, state, params, opt.lr)
            >>> params["w"]
            array([0.9, 2.1])
        """
        if not backend.is_array(lr):
            lr = validate.learning_rate(lr, f"argument lr of {type(self).__name__}.update: the learning rate",
                                        zero_ok=True)
        if self.clip_grad_norm is not None:
            grads = clip_by_global_norm(grads, self.clip_grad_norm)
        return self.apply_gradients(grads, state, params, lr)

    def apply_gradients(
        self, grads: Mapping[str, Array], state: State, params: Mapping[str, Array], lr: Any,
    ) -> tuple[dict[str, Array], State]:  # pragma: no cover - abstract
        """The optimizer's rule: new parameters and state from (already transformed) gradients.
        Pure: builds new arrays and dicts only.

        Args:
            grads: the gradients (clipped, if the optimizer clips), by parameter name.
            state: the state of the previous step.
            params: the parameters, by name.
            lr: the rate, a checked number or a 0-D array.

        Returns:
            ``(new_params, new_state)``.
        """
        raise NotImplementedError

    def hyperparameters(self) -> tuple[Any, ...]:
        """The settings `update` reads, besides the rate (a compiled step recompiles when they change).

        Returns:
            A tuple of ``(name, value)`` pairs: every setting but ``lr``.
        """
        return tuple((k, v) for k, v in self.settings().items() if k != "lr")

    def rate(self, lr: Any, what: str) -> float:
        """The rate of one step.

        Args:
            lr: the rate given, or None for the optimizer's own ``lr`` (checked when assigned).
            what: the call errors name (``"SGD.step"``).

        Returns:
            `lr` checked (a finite number >= 0: a schedule's warm-up starts at 0), or ``self.lr``.
        """
        if lr is None:
            return self.lr
        return validate.learning_rate(lr, f"argument lr of {what}: the learning rate", zero_ok=True)

    # -- the eager convenience -------------------------------------------------------------------
    def step(self, model: Trainable, lr: float | None = None) -> None:
        """Update every parameter of `model` from its gradients, handing it new arrays, never writing in
        place; the eager state is kept in ``state``.

        Every gradient (and state entry) is checked before any parameter changes, so a bad one leaves
        the whole model as it was.

        Args:
            model: an arrayml `Module` (or any `Trainable`) whose ``backward`` has run.
            lr: the rate of this step (default: the optimizer's ``lr``; a schedule passes each step's
                rate here, and 0 is allowed).

        Raises:
            TypeError: `model` lacks ``parameters``, ``gradients`` or ``set_parameters``, or a
                gradient is of another namespace or device than its parameter.
            RuntimeError: the model has no gradients (no backward since they were cleared).
            ValueError: a gradient is missing, extra, or of another shape or dtype than its parameter,
                or `lr` is negative or not finite.
        """
        name = type(self).__name__
        if not all(callable(getattr(model, m, None)) for m in ("parameters", "gradients", "set_parameters")):
            raise TypeError(f"{name}.step expects an arrayml Module, got {type(model).__name__}: it needs "
                            "parameters(), gradients() and set_parameters()")
        rate = self.rate(lr, f"{name}.step")
        params = model.parameters()
        try:
            grads = model.gradients()
        except RuntimeError as exc:
            raise RuntimeError(f"{name}.step(): {exc}") from None
        grads = self.checked_gradients(grads, params)
        new_params, new_state = self.update(grads, self.state_for(params), params, rate)
        self.set_state(new_state)
        model.set_parameters(new_params)

    def checked_gradients(self, grads: Mapping[str, Array], params: Mapping[str, Array]) -> dict[str, Array]:
        """Each gradient checked against its parameter: present, shape, dtype, namespace, device
        (attribute comparisons only, no device read). A (1, 4) gradient is never broadcast onto a
        (5, 4) weight, nor a float64 gradient allowed to turn a float32 parameter into float64.

        Args:
            grads: the gradients, by parameter name.
            params: the parameters, by name.

        Returns:
            A new dict of the same gradients.

        Raises:
            ValueError: a gradient is missing or extra, or has another shape or dtype.
            TypeError: a gradient is of another namespace or device than its parameter.
        """
        what = f"{type(self).__name__}.step"
        missing, extra = sorted(set(params) - set(grads)), sorted(set(grads) - set(params))
        if missing or extra:
            raise ValueError(f"{what}: the gradients must be named as the parameters; no gradient for {missing}, "
                             f"gradients of no parameter: {extra}")
        out = {}
        for pname, p in params.items():
            grad = grads[pname]
            if type(grad) is not type(p) or grad.shape != p.shape or grad.dtype != p.dtype:
                _check_pair(f"{what}, parameter {pname!r}", p, grad, ("the parameter", "its gradient"))
                raise ValueError(
                    f"{what}, parameter {pname!r}: its gradient must have the parameter's shape "
                    f"{tuple(p.shape)} and dtype {backend.dtype_name(p.dtype)}, got shape "
                    f"{tuple(grad.shape)} and dtype {backend.dtype_name(grad.dtype)}"
                )
            out[pname] = grad
        # one namespace and device for everything (the usual case, one call); otherwise the
        # first pair that differs is named
        everything = [a for pair in zip(params.values(), out.values()) for a in pair]
        try:
            backend.get_namespace(*everything)
        except (TypeError, ValueError):
            for pname, p in params.items():
                _check_pair(f"{what}, parameter {pname!r}", p, out[pname], ("the parameter", "its gradient"))
        return out

    # -- the eager state -------------------------------------------------------------------------
    @property
    def state(self) -> State | None:
        """The eager state, which the next step (`step`, or a learner's) continues from; None
        before the first. One assigned here (by hand, or from elsewhere) is checked against the
        optimizer and the parameters before the first step that uses it (`fitted_state`)."""
        return self._state

    @state.setter
    def state(self, value: Mapping[str, Any] | None) -> None:
        if value is not None and not isinstance(value, Mapping):
            raise TypeError(f"{type(self).__name__} state must be a dict (what init() returns) or None, got "
                            f"{type(value).__name__}")
        self._state = None if value is None else dict(value)
        self._state_checked = value is None

    def set_state(self, state: State) -> None:
        """Take `state` as the eager state, unchecked (as ``Module.set_parameters`` takes parameters).

        Args:
            state: a state that `update` returned or `fitted_state` checked. A state from anywhere
                else is assigned to ``state``, which checks it.
        """
        self._state, self._state_checked = state, True

    def state_for(self, params: Mapping[str, Array]) -> State:
        """The eager state fitted to `params`: a new state if there is none; one assigned by hand
        checked once (`fitted_state`); one on another namespace, device or dtype than its parameters
        (the model was moved with ``model.to``) converted to theirs.

        Args:
            params: the parameters the next step updates.

        Returns:
            The state to continue from (also kept as the eager state).
        """
        state = self._state
        if state is None:
            return self.init(params)
        if self._state_checked and fits(state, params):
            return state
        fitted = self.fitted_state(state, params)
        self.set_state(fitted)
        return fitted

    def fitted_state(self, state: Mapping[str, Any], params: Mapping[str, Array]) -> State:
        """`state` (e.g. read from a checkpoint, as host arrays) checked against this optimizer and
        `params`, and converted to where they live (`arrayml.optim.state.fitted`).

        Args:
            state: the state to check; an empty one gives a fresh state.
            params: the parameters it is for.

        Returns:
            The state, on the parameters' namespace and device.

        Raises:
            ValueError: an entry is missing, extra, of another shape, or holds values no step can
                have made (`check_state_values`); the entry is named.
            TypeError: an entry is not an array or a dict of arrays.
        """
        return fitted(self, state, params)

    def check_state_values(self, state: State) -> None:
        """Refuse values no step of this optimizer can have made: a step count (`step_counts`) that is
        not a whole number from 0 up to what its dtype counts exactly, a second moment
        (`second_moments`) below 0 or NaN. Reads the values back: called once per state set or
        loaded, never per step.

        Args:
            state: the state to check.

        Raises:
            ValueError: a value is impossible (named with its entry).
        """
        check_values(self, state)

    def __repr__(self) -> str:
        items = sorted(self.settings().items(), key=lambda kv: kv[0] == "clip_grad_norm")  # clipping last
        settings = ", ".join(f"{k}={v}" for k, v in items)
        return f"{type(self).__name__}({settings})"

    def settings(self) -> dict[str, Any]:
        """The constructor's arguments, by name (``repr`` and run records show them;
        ``type(opt)(**opt.settings())`` is an equal optimizer). Subclasses add theirs.

        Returns:
            A dict from argument name to value.
        """
        return {"lr": self.lr, "clip_grad_norm": self.clip_grad_norm}


def zeros_like(p: Array) -> Array:
    """Zeros of `p`'s shape, dtype, namespace and device."""
    xp, dev = backend.get_namespace_and_device(p)
    return xp.zeros(tuple(p.shape), dtype=p.dtype, device=dev)


def zero_slot(params: Mapping[str, Array]) -> dict[str, Array]:
    """A fresh slot of an optimizer's state: zeros like every parameter, by its name."""
    return {name: zeros_like(p) for name, p in params.items()}


def namespace_of(params: Mapping[str, Array], grads: Mapping[str, Array]) -> Any:
    """The namespace of a rule's arrays, asked of the first parameter and its gradient (the
    eager step has checked them all; a traced step holds one namespace)."""
    first = next(iter(params), None)
    return None if first is None else backend.get_namespace(params[first], grads[first])


def _check_pair(what: str, p: Array, other: Array, names: tuple[str, str]) -> None:
    backend.get_namespace_and_device(p, other, names=names, what=what)


def global_norm(grads: Mapping[str, Array]) -> Array:
    """The 2-norm of all the arrays of `grads` together, ``sqrt(Σ_p Σ g_p²)``.

    Args:
        grads: the gradients, by name.

    Returns:
        A 0-D device array (not read back).

    Raises:
        ValueError: `grads` is empty.
    """
    total = None
    for g in grads.values():
        xp = backend.get_namespace(g)
        s = xp.sum(g * g)
        total = s if total is None else total + s
    if total is None:
        raise ValueError("global_norm needs at least one gradient")
    return xp.sqrt(total)


def clip_by_global_norm(grads: Mapping[str, Array], max_norm: Any) -> dict[str, Array]:
    """`grads` scaled so that their global norm (`global_norm`) is at most `max_norm`.

    Every gradient is multiplied by ``min(1, max_norm / (norm + 1e-6))``, exactly as
    ``torch.nn.utils.clip_grad_norm_(params, max_norm)`` does (the same 1e-6, the same scale for
    every parameter, a multiplication by 1 below the threshold). The factor stays on the device:
    no host read, so the step can be compiled and never waits; a NaN norm makes every gradient
    NaN, as in PyTorch, and the training loop then reports the divergence.

    Args:
        grads: the gradients, by name.
        max_norm: a finite number > 0 (a negative one would flip the gradients' sign, 0 zero them).

    Returns:
        A new dict of the scaled gradients.

    Raises:
        TypeError: `max_norm` is not a real number.
        ValueError: `max_norm` is not finite and > 0, or `grads` is empty.
    """
    max_norm = validate.real_number(max_norm, "clip_by_global_norm max_norm", low=0.0, low_open=True)
    norm = global_norm(grads)
    xp = backend.get_namespace(norm)
    coef = max_norm / (norm + 1e-6)
    coef = xp.where(coef > 1.0, 1.0, coef)  # clamp(max=1) that keeps a NaN (`minimum` with a constant cannot be traced by torch.compile)
    return {name: g * xp.astype(coef, g.dtype) for name, g in grads.items()}
