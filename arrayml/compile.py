"""A whole training step — forward, loss, backward and the SGD update — compiled as one function.

    step = arrayml.compile.compile_step(model, SoftmaxCrossEntropy(validate=False), SGD(0.1))
    for xb, yb in batches:
        loss = step(xb, yb, lr)          # a 0-D device array; nothing is read back

On JAX the step is ``jax.jit`` with the parameter, buffer and momentum arrays donated (XLA writes
the new values into the old buffers); on PyTorch it is ``torch.compile(fullgraph=True)``. The
layers' code is not changed or duplicated: the compiled function is the eager step itself —
``Module.forward``, ``Loss.forward``/``backward``, ``Module.backward`` and ``SGD.step`` — written
as a pure function of its state, the way JAX wants it:

    (params, buffers, velocity), x, y, lr  →  (params', buffers', velocity'), loss

It puts the (traced) arrays it is given into the modules' dicts, runs the eager code, reads the
new arrays back out, and clears every forward cache and gradient so that no traced array stays
behind in a module. The caller's side writes the outputs into ``model.params``,
``model.buffers`` and ``optimizer.velocity``, so after a step the model and optimizer look as
after an eager step, except that ``model.grads`` is empty (the gradients live only inside the
compiled function; use the eager step to inspect them).

What a compiled step assumes, and what it does about it:

- Tracing runs the Python code once per *signature*; a host read of a value (``float(x)``,
  ``bool(x)``) or a Python branch on one cannot be traced. arrayml's layers only branch on
  shapes and settings. The losses' label checks (``validate=True``) read values back from the
  device, so a compiled step needs a loss built with ``validate=False`` (check the labels once,
  up front, as the training loop does); it says so otherwise.
- Settings read while tracing (each module's training/eval mode, the optimizer's momentum,
  Nesterov flag and weight decay) are part of the compiled function's key: changing them
  compiles a new one rather than silently running the old. A layer's own settings (batch norm's
  momentum, say) must not change after the first step; build a new step if they do.
- A new batch shape (a smaller last batch) traces and compiles once more. Moving the model
  (``model.to(...)``) after building the step is an error at the next call: build a new step.
- The learning rate is an argument, not a constant: a schedule's new rate each step neither
  recompiles nor waits on the device (`backend.traced_scalar`). Its value is checked on the host.
- Momentum buffers that do not exist yet start at zero, so that the first step has the same
  signature as every later one; ``0·μ + g = g`` exactly, as the eager first step's ``v = g``.
- Donation (JAX): the arrays the model held before a step are deleted by it. Anything that kept
  a reference to them (``model.state()`` taken before the step, a "best model" snapshot) must
  copy them first: `CompiledStep.snapshot` does. PyTorch has no donation and its old arrays
  stay valid.

Namespaces without a tracing compiler (NumPy, CuPy, array-api-strict) get a `ValueError` that
says which ones compile, unless ``fallback="eager"`` is passed: then the same pure step runs
uncompiled (it gives the eager loop's numbers bit for bit), and ``step.compiled`` is False.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import backend
from .backend import Array
from .modules.base import Loss, Module
from .optim import SGD, _check_rate

__all__ = ["CompiledStep", "compile_step"]

State = tuple[dict[str, Array], dict[str, Array], dict[str, Array]]  # params, buffers, velocity


class CompiledStep:
    """``step(x, y, lr=None)``: one SGD step of `model` on the batch (x, y), compiled.

    Returns the batch loss as a 0-D device array, or ``(loss, metrics(logits, y))`` when a
    `metrics` function was given (it runs inside the compiled function; e.g. the number of
    correct predictions). `lr` defaults to the optimizer's ``lr``. Build it with `compile_step`.
    """

    def __init__(
        self, model: Module, loss: Loss, optimizer: SGD, *, metrics: Callable[[Array, Array], Any] | None = None,
        donate: bool = True, fallback: str | None = None, options: dict[str, Any] | None = None,
    ) -> None:
        if not isinstance(model, Module):
            raise TypeError(f"compile_step needs an arrayml Module, got {type(model).__name__}")
        if not isinstance(loss, Loss):
            raise TypeError(f"compile_step needs an arrayml Loss, got {type(loss).__name__}")
        if not isinstance(optimizer, SGD):
            raise TypeError(f"compile_step needs an arrayml SGD optimizer, got {type(optimizer).__name__}")
        if fallback not in (None, "eager"):
            raise ValueError(f"fallback must be None (an error) or 'eager', got {fallback!r}")
        where = model.placement()
        if where is None:
            raise ValueError("the model has no parameters to train")
        self.model, self.loss, self.optimizer, self.metrics = model, loss, optimizer, metrics
        self.placement = where
        #: "jax.jit", "torch.compile", or None when running uncompiled (``fallback="eager"``)
        self.compiler = backend.compiler_name(where.xp)
        if self.compiler is None and fallback is None:
            raise ValueError(
                f"compile_step: the {backend.namespace_name(where.xp)} backend has no compiler "
                "(jax and torch have: jax.jit, torch.compile); move the model with "
                "model.to('jax') or model.to('torch'), or pass fallback='eager' to run the same "
                "step uncompiled"
            )
        if self.compiler is not None and getattr(loss, "validate", False):
            raise ValueError(
                f"compile_step: {type(loss).__name__}(validate=True) checks the labels by reading "
                "them back from the device, which a compiled function cannot do; build it with "
                "validate=False and check the labels once, up front, as the training loop does"
            )
        self.donate = bool(donate) and self.compiler == "jax.jit"
        self._options = options
        self._functions: dict[tuple[Any, ...], Any] = {}

    @property
    def compiled(self) -> bool:
        """Whether the step runs compiled (False only with ``fallback="eager"``)."""
        return self.compiler is not None

    # -- the pure step: state in, state out ----------------------------------------------------
    def _pure_step(self, state: State, x: Array, y: Array, lr: Any) -> tuple[State, Array, Any]:
        """The eager step as a function of its state (this is what gets traced)."""
        self._put(state)
        logits = self.model.forward(x)
        loss = self.loss.forward(logits, y)
        self.model.backward(self.loss.backward(), input_grad=False)  # dL/d(input) is never used
        self.optimizer.step(self.model, lr)
        extra = self.metrics(logits, y) if self.metrics is not None else None
        new_state = self._take()
        self._forget()  # no traced array may stay in a module once tracing is over
        return new_state, loss, extra

    def _take(self) -> State:
        params = self.model.parameters()
        buffers = {name: owner.buffers[key] for name, owner, key in self.model.buffer_slots()}
        return params, buffers, dict(self.optimizer.velocity)

    def _put(self, state: State) -> None:
        params, buffers, velocity = state
        for name, owner, key in self.model.parameter_slots():
            owner.params[key] = params[name]
        for name, owner, key in self.model.buffer_slots():
            owner.buffers[key] = buffers[name]
        self.optimizer.velocity = dict(velocity)

    def _forget(self) -> None:
        self.model.clear_cache()
        self.loss.clear_cache()
        for _, module in self.model.named_modules():
            module.grads = {}

    def _state(self) -> State:
        """The current state, with zero momentum buffers where the optimizer has none yet."""
        params, buffers, velocity = self._take()
        if self.optimizer.momentum and len(velocity) != len(params):
            xp, dev = self.placement.xp, self.placement.device
            for name, p in params.items():
                if name not in velocity:
                    velocity[name] = xp.zeros(tuple(p.shape), dtype=p.dtype, device=dev)
        return params, buffers, velocity

    def _function(self) -> Any:
        opt = self.optimizer
        key = (tuple(m.training for _, m in self.model.named_modules()),
               opt.momentum, opt.nesterov, opt.weight_decay)
        fn = self._functions.get(key)
        if fn is None:
            if self.compiler is None:
                fn = self._pure_step
            else:
                # A function object of its own for each key: JAX caches traces by function (and
                # two bound methods of one object compare equal), so compiling the method itself
                # again would hand back the trace made in the other mode.
                def step(state: State, x: Array, y: Array, lr: Any) -> tuple[State, Array, Any]:
                    return self._pure_step(state, x, y, lr)

                fn = backend.compile_function(
                    step, self.placement.xp, donate_argnums=(0,) if self.donate else (),
                    options=self._options,
                )
            self._functions[key] = fn
        return fn

    def __call__(self, x: Array, y: Array, lr: float | None = None) -> Any:
        rate = _check_rate(self.optimizer.lr if lr is None else lr)  # on the host, before tracing
        where = self.placement
        state = self._state()
        # the eager step's namespace/device error, before jax.jit would quietly move NumPy input
        xp, dev = backend.get_namespace_and_device(x, y, next(iter(state[0].values())))
        if xp is not where.xp or dev != where.device:
            raise ValueError(
                f"the model moved to {backend.namespace_name(xp)} on {dev} after compile_step "
                f"built this step for {where}; build a new step for the model where it is now"
            )
        try:
            new_state, loss, extra = self._function()(
                state, x, y, backend.traced_scalar(rate, xp=where.xp, device=where.device, dtype=where.dtype)
            )
        except BaseException:
            self._put(state)  # tracing failed part way: put the real arrays back
            self._forget()
            raise
        self._put(new_state)
        return loss if self.metrics is None else (loss, extra)

    def snapshot(self) -> dict[str, Array]:
        """A copy of ``model.state()`` that the next (donating) step cannot delete."""
        xp = self.placement.xp
        state = self.model.state()
        if not self.donate:
            return state  # nothing is written in place: references stay valid
        return {k: xp.asarray(v, copy=True) for k, v in state.items()}

    def __repr__(self) -> str:
        how = self.compiler or "uncompiled (fallback='eager')"
        return f"CompiledStep({how}, donate={self.donate}, {self.placement})"


def compile_step(
    model: Module, loss: Loss, optimizer: SGD, *, metrics: Callable[[Array, Array], Any] | None = None,
    donate: bool = True, fallback: str | None = None, options: dict[str, Any] | None = None,
) -> CompiledStep:
    """A `CompiledStep` for `model`, `loss` and `optimizer`: ``step(x, y, lr)`` runs forward,
    loss, backward and the SGD update as one compiled function (``jax.jit`` with the state's
    buffers donated on JAX unless ``donate=False``; ``torch.compile(fullgraph=True)`` on
    PyTorch). Compilation happens on the first call (and again for each new batch shape).

    Args:
        model, loss, optimizer: as for an eager step; `loss` built with ``validate=False``.
        metrics: optional ``f(logits, y)`` computed inside the compiled function; the step then
            returns ``(loss, f(logits, y))``.
        donate: donate the state's buffers on JAX (default True).
        fallback: ``None`` (default) raises `ValueError` for a backend without a compiler;
            ``"eager"`` runs the same pure step uncompiled there.
        options: passed to ``jax.jit`` or ``torch.compile`` (e.g. ``{"mode": "max-autotune"}``).
    """
    return CompiledStep(model, loss, optimizer, metrics=metrics, donate=donate, fallback=fallback, options=options)
