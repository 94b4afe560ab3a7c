"""A whole training step — forward, loss, backward and the optimizer's update — compiled as one
function.

    step = arrayml.compile.compile_step(model, SoftmaxCrossEntropy(validate=False), SGD(0.1))
    for xb, yb in batches:
        loss = step(xb, yb, lr)          # a 0-D device array; nothing is read back

What is compiled is `arrayml.step.train_step` — the eager step itself, the same layer code —
as a pure function of its state, the way JAX wants it:

    (params, buffers, optimizer state), x, y, lr  →  (params', buffers', optimizer state'), loss

The function runs the step on a `Module.clone` of the model that holds the arrays it is given
(the tracers, while tracing), so the live model never holds a traced array. On JAX it is
``jax.jit`` with the parameter, buffer and optimizer-state arrays donated (XLA writes the new
values into the old buffers); on PyTorch ``torch.compile(fullgraph=True)``. After each call the
outputs are put into ``model.params``, ``model.buffers`` and ``optimizer.state``, so the model and
optimizer look as after an eager step, except that ``model.grads`` is empty (the gradients live
only inside the compiled function; use the eager step to inspect them).

What a compiled step assumes, and what it does about it:

- Tracing runs the Python code once per *signature*; a host read of a value (``float(x)``,
  ``bool(x)``) or a Python branch on one cannot be traced. arrayml's layers only branch on
  shapes and settings. The losses' label checks (``validate=True``) read values back from the
  device, so a compiled step needs a loss built with ``validate=False`` (check the labels once,
  up front, as the training loop does); it says so otherwise.
- Settings read while tracing (each module's training/eval mode, the optimizer's
  `~arrayml.optim.Optimizer.hyperparameters`) are part of the compiled function's key: changing
  them compiles a new one rather than silently running the old. A layer's own settings (batch
  norm's momentum, say) must not change after the first step; build a new step if they do.
- A new batch shape (a smaller last batch) traces and compiles once more. A model moved with
  ``model.to(...)`` to another device of the same compiler is followed (compiled anew); one
  moved to a backend without a compiler is an error naming what to do.
- The learning rate is an argument, not a constant: a schedule's new rate each step neither
  recompiles nor waits on the device (`backend.traced_scalar`). Its value is checked on the host.
- Donation (JAX): the arrays the model held before a step are deleted by it. Anything that kept
  a reference to them (``model.state()`` taken before the step, a "best model" snapshot) must
  copy them first: `CompiledStep.snapshot` does. PyTorch has no donation and its old arrays
  stay valid.

Random draws (dropout): the step's random key is an argument too (``step(x, y, lr, key=...)``,
or the step's own ``step_key(seed, n)`` for its n-th call). JAX takes the key array as a traced
argument and draws inside the compiled function with ``jax.random``: the very masks of the eager
step, and no host random numbers. ``torch.compile`` cannot trace a generator object: its draws
come from torch's default generator of the device, seeded from the step's key around the call
and restored after it (`arrayml.backend.seeded_globally`): reproducible, but other masks than
the eager torch step's.

Namespaces without a tracing compiler (NumPy, CuPy, array-api-strict) get a `ValueError` that
says which ones compile, unless ``fallback="eager"`` is passed: then the same pure step runs
uncompiled (it gives the eager loop's numbers bit for bit), and ``step.compiled`` is False.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import backend, validate
from .backend import Array
from .modules.base import Loss, Module
from .optim.base import Optimizer, State
from .step import step_key, train_step

__all__ = ["CompiledStep", "compile_step"]

Arrays = dict[str, Array]


class CompiledStep:
    """``step(x, y, lr=None, key=None)``: one optimizer step of `model` on the batch (x, y),
    compiled.

    Returns the batch loss as a 0-D device array, or ``(loss, metrics(logits, y))`` when a
    `metrics` function was given (it runs inside the compiled function; e.g. the number of
    correct predictions). `lr` defaults to the optimizer's ``lr``. Build it with `compile_step`.
    """

    #: What the step is called in error messages (a subclass that compiles otherwise renames it).
    what = "compile_step"

    def __init__(
        self, model: Module, loss: Loss, optimizer: Optimizer, *,
        metrics: Callable[[Array, Array], Any] | None = None, donate: bool = True, fallback: str | None = None,
        options: dict[str, Any] | None = None, seed: int = 0,
    ) -> None:
        for value, kind, what in ((model, Module, "an arrayml Module"), (loss, Loss, "an arrayml Loss"),
                                  (optimizer, Optimizer, "an arrayml optimizer (arrayml.optim.Optimizer)")):
            if not isinstance(value, kind):
                raise TypeError(f"{self.what} needs {what}, got {type(value).__name__}")
        if fallback not in (None, "eager"):
            raise ValueError(f"fallback must be None (an error) or 'eager', got {fallback!r}")
        self.model, self.loss, self.optimizer, self.metrics = model, loss, optimizer, metrics
        self.fallback = fallback
        self.placement = self._placement()
        if self.compiler is not None and getattr(loss, "validate", False):
            raise ValueError(
                f"{self.what}: {type(loss).__name__}(validate=True) checks the labels by reading "
                "them back from the device, which a compiled function cannot do; build it with "
                "validate=False and check the labels once, up front, as the training loop does"
            )
        self._donate = bool(donate)
        self._options = options
        self.seed = validate.seed(seed, "compile_step seed")
        #: The number of the next call without a key (its key: ``step_key(seed, next_step)``).
        self.next_step = 0
        self._functions: dict[tuple[Any, ...], Any] = {}

    def _placement(self) -> backend.Placement:
        """Where the model lives now; an error if its backend cannot compile and no fallback."""
        where = self.model.placement()
        if where is None:
            raise ValueError(f"{self.what}: the model has no parameters to train")
        if self.compiler_for(where.xp) is None and self.fallback is None:
            raise ValueError(self._no_compiler(where))
        return where

    def _no_compiler(self, where: backend.Placement) -> str:
        return (
            f"compile_step: the {backend.namespace_name(where.xp)} backend has no compiler "
            "(jax and torch have: jax.jit, torch.compile); move the model with "
            "model.to('jax') or model.to('torch'), or pass fallback='eager' to run the same "
            "step uncompiled"
        )

    def compiler_for(self, xp: backend.Namespace) -> str | None:
        """The compiler of a model on namespace `xp`: ``backend.compiler_name`` (None: none)."""
        return backend.compiler_name(xp)

    @property
    def compiler(self) -> str | None:
        """"jax.jit", "torch.compile", or None when running uncompiled (``fallback="eager"``)."""
        return self.compiler_for(self.placement.xp)

    @property
    def compiled(self) -> bool:
        """Whether the step runs compiled (False only with ``fallback="eager"``)."""
        return self.compiler is not None

    @property
    def donate(self) -> bool:
        """Whether the state's buffers are donated (JAX only)."""
        return self._donate and self.compiler == "jax.jit"

    # -- the pure step: state in, state out ----------------------------------------------------
    def pure_step(self, params: Arrays, buffers: Arrays, opt_state: State, x: Array, y: Array, lr: Any,
                  key: Any = None) -> tuple[tuple[Arrays, Arrays, State], Array, Any]:
        """`arrayml.step.train_step` as a function of its state (this is what gets traced), on
        a clone of the model and of the loss that hold the given arrays. `key`: the step's random
        key (a traced array on JAX); None inside ``torch.compile`` for a model that draws, whose
        draws then use the seeded default generator (`backend.GLOBAL_GENERATOR`)."""
        model, loss_fn = self.model.clone(), self.loss.clone()
        model.set_parameters(params)
        model.set_buffers(buffers)
        if key is None and self.compiler == "torch.compile" and model.draws_random_numbers():
            key = backend.GLOBAL_GENERATOR
        opt_state, loss, extra = train_step(model, loss_fn, self.optimizer, opt_state, x, y, lr, key=key,
                                            metrics=self.metrics)
        return (model.parameters(), model.named_buffers(), opt_state), loss, extra

    def _function(self) -> Any:
        key = (tuple(m.training for _, m in self.model.named_modules()), self.optimizer.hyperparameters(),
               backend.namespace_name(self.placement.xp), str(self.placement.device))
        fn = self._functions.get(key)
        if fn is None:
            if self.compiler is None:
                fn = self.pure_step
            else:
                # A function object of its own for each key: JAX caches traces by function (and
                # two bound methods of one object compare equal), so compiling the method itself
                # again would hand back the trace made in the other mode.
                def step(params: Arrays, buffers: Arrays, opt_state: State, x: Array, y: Array, lr: Any,
                         key: Any = None) -> Any:
                    return self.pure_step(params, buffers, opt_state, x, y, lr, key)

                fn = self._compile(step)
            self._functions[key] = fn
        return fn

    def _compile(self, step: Callable[..., Any]) -> Any:
        """`step` (the pure step, a function of its own) compiled for the model's backend."""
        return backend.compile_function(step, self.placement.xp, donate_argnums=(0, 1, 2) if self.donate else (),
                                        options=self._options)

    def __call__(self, x: Array, y: Array, lr: float | None = None, *, key: Any = None) -> Any:
        rate = validate.learning_rate(self.optimizer.lr if lr is None else lr, "compile_step learning rate",
                                      zero_ok=lr is not None)  # on the host, before tracing
        params = self.model.parameters()
        where = self.placement
        if params and not _same_place(next(iter(params.values())), where):
            where = self.placement = self._placement()  # the model moved: follow it
        opt_state = self.optimizer.state_for(params)
        buffers = self.model.named_buffers()
        # the eager step's namespace/device error, before jax.jit would quietly move NumPy input
        backend.get_namespace_and_device(x, y, next(iter(params.values())),
                                         names=("input x", "labels y", "the model's parameters"), what=self.what)
        if not self.model.draws_random_numbers():
            key = None
        elif key is None:
            key = step_key(self.seed, self.next_step, xp=where.xp, device=where.device)
            self.next_step += 1
        # torch.compile draws from the default generator, seeded from the key around the call
        traced_key = None if self.compiler == "torch.compile" else key
        with backend.seeded_globally(key if self.compiler == "torch.compile" else None, xp=where.xp,
                                     device=where.device):
            new_state, loss, extra = self._function()(
                params, buffers, opt_state, x, y,
                backend.traced_scalar(rate, xp=where.xp, device=where.device, dtype=where.dtype), traced_key)
        new_params, new_buffers, opt_state = new_state
        self.optimizer.set_state(opt_state)
        self.model.set_parameters(new_params)
        self.model.set_buffers(new_buffers)
        for _, module in self.model.named_modules():
            module.grads = {}
        self.model.clear_cache()
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


def _same_place(p: Array, where: backend.Placement) -> bool:
    try:
        xp, dev = backend.get_namespace_and_device(p)
    except (TypeError, ValueError):
        return False
    return xp is where.xp and dev == where.device


def compile_step(
    model: Module, loss: Loss, optimizer: Optimizer, *, metrics: Callable[[Array, Array], Any] | None = None,
    donate: bool = True, fallback: str | None = None, options: dict[str, Any] | None = None, seed: int = 0,
) -> CompiledStep:
    """A `CompiledStep` for `model`, `loss` and `optimizer`: ``step(x, y, lr)`` runs forward,
    loss, backward and the optimizer's update as one compiled function (``jax.jit`` with the
    state's buffers donated on JAX unless ``donate=False``; ``torch.compile(fullgraph=True)`` on
    PyTorch). Compilation happens on the first call (and again for each new batch shape).

    Args:
        model, loss, optimizer: as for an eager step; `loss` built with ``validate=False``.
        metrics: optional ``f(logits, y)`` computed inside the compiled function; the step then
            returns ``(loss, f(logits, y))``.
        donate: donate the state's buffers on JAX (default True).
        fallback: ``None`` (default) raises `ValueError` for a backend without a compiler;
            ``"eager"`` runs the same pure step uncompiled there.
        options: passed to ``jax.jit`` or ``torch.compile`` (e.g. ``{"mode": "max-autotune"}``).
        seed: seeds the random draws (dropout) of the calls given no key: the n-th such call
            draws from ``arrayml.step.step_key(seed, n)``.
    """
    return CompiledStep(model, loss, optimizer, metrics=metrics, donate=donate, fallback=fallback, options=options,
                        seed=seed)
