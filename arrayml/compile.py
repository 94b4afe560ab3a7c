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
It is a `arrayml.runner.Runner` whose strategy is `Traced`: the runner keeps the step number,
the random keys and the optimizer's state, as it does for the eager and data-parallel steps.

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
from typing import Any, Protocol

from . import backend
from .backend import Array
from .modules.base import Loss, Module
from .optim.base import Optimizer, State
from .runner import Runner
from .step import train_step

__all__ = ["CompiledStep", "Compiler", "Jit", "Traced", "compile_step"]

Arrays = dict[str, Array]


class Compiler(Protocol):
    """What turns the pure step into something that runs: `Jit` (``jax.jit``, ``torch.compile``)
    here, onnxruntime in `arrayml.export`."""

    #: The step's name in error messages (``compile_step``, ``train_step_to_onnx``).
    what: str

    def name(self, xp: backend.Namespace) -> str | None:
        """The compiler of a model on namespace `xp`.

        Args:
            xp: the namespace the model lives on.

        Returns:
            The compiler's name (``"jax.jit"``, ``"torch.compile"``, ``"onnxruntime"``), or
            None when there is none for `xp`.
        """

    def unavailable(self, where: backend.Placement) -> str:
        """Why a model that lives at `where` cannot be compiled, and what to do.

        Args:
            where: where the model lives.

        Returns:
            The error message.
        """

    def compile(self, step: Callable[..., Any], traced: Traced) -> Callable[..., Any]:
        """`step` (the pure step, a function of its own) compiled for `traced`'s model.

        Args:
            step: the pure step, ``step(params, buffers, opt_state, x, y, lr, key)``.
            traced: the strategy it is compiled for (its placement, whether it donates).

        Returns:
            The compiled function, with `step`'s arguments and results.
        """

    def check_batch(self, x: Array, y: Array) -> tuple[Array, Array]:
        """The batch as the compiled function takes it, or an error before anything runs.

        Args:
            x, y: the batch's inputs and targets.

        Returns:
            ``(x, y)``, as the compiled function takes them.
        """


class Jit:
    """``jax.jit`` (the state's buffers donated unless ``donate=False``) on JAX,
    ``torch.compile(fullgraph=True)`` on PyTorch (`arrayml.backend.compile_function`).

    Args:
        options: keyword arguments passed to ``jax.jit`` or ``torch.compile``, or None.
    """

    what = "compile_step"

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        self.options = options

    def name(self, xp: backend.Namespace) -> str | None:
        """The compiler of a model on namespace `xp`.

        Args:
            xp: the namespace the model lives on.

        Returns:
            ``"jax.jit"``, ``"torch.compile"``, or None for a namespace without one.
        """
        return backend.compiler_name(xp)

    def unavailable(self, where: backend.Placement) -> str:
        """Why a model at `where` cannot be compiled: the backends that can, and how to get there.

        Args:
            where: where the model lives.

        Returns:
            The error message.
        """
        return (
            f"compile_step: the {backend.namespace_name(where.xp)} backend has no compiler "
            "(jax and torch have: jax.jit, torch.compile); move the model with "
            "model.to('jax') or model.to('torch'), or pass fallback='eager' to run the same "
            "step uncompiled"
        )

    def compile(self, step: Callable[..., Any], traced: Traced) -> Callable[..., Any]:
        """`step` compiled by ``jax.jit`` (the state's arguments donated where `traced` donates)
        or ``torch.compile``.

        Args:
            step: the pure step, ``step(params, buffers, opt_state, x, y, lr, key)``.
            traced: the strategy it is compiled for (its placement, whether it donates).

        Returns:
            The compiled function.
        """
        return backend.compile_function(step, traced.placement.xp, donate_argnums=(0, 1, 2) if traced.donates else (),
                                        options=self.options)

    def check_batch(self, x: Array, y: Array) -> tuple[Array, Array]:
        """The batch as it is: ``jax.jit`` and ``torch.compile`` take any array of the model's
        namespace (the runner checks where it lives).

        Args:
            x, y: the batch's inputs and targets.

        Returns:
            ``(x, y)``, unchanged.
        """
        return x, y


class Traced:
    """The runner's strategy for a compiled step: `arrayml.step.train_step` as a pure function of
    (parameters, buffers, optimizer state, batch, rate, key), run on a clone of the model,
    compiled by `compiler` once per signature; the live model gets the new arrays after each call.

    Settings read while tracing (each module's mode, the optimizer's `hyperparameters`) are part
    of the compiled function's key, as are the namespace and device: a change compiles a new
    function. A model moved to another device or compiler is followed; one moved where
    `compiler` has nothing is an error, unless ``fallback="eager"`` (the same pure step,
    uncompiled).

    Args:
        model, loss, optimizer: what each step trains, with which loss and optimizer.
        compiler: what compiles the pure step (`Jit`, or the ONNX export's).
        metrics: ``metrics(logits, y)``, computed inside the compiled function, or None.
        donate: donate the state's buffers (JAX only).
        fallback: None (a backend without a compiler is an error) or ``"eager"`` (run the pure
            step uncompiled there).

    Raises:
        ValueError: `fallback` is neither None nor ``"eager"``, the model has no parameters,
            the model's backend has no compiler (and no fallback), or the loss checks its
            labels (``validate=True``) in a step that compiles.
    """

    def __init__(self, model: Module, loss: Loss, optimizer: Optimizer, compiler: Compiler, *,
                 metrics: Callable[[Array, Array], Any] | None = None, donate: bool = True,
                 fallback: str | None = None) -> None:
        if fallback not in (None, "eager"):
            raise ValueError(f"fallback must be None (an error) or 'eager', got {fallback!r}")
        self.model, self.loss, self.optimizer, self.metrics = model, loss, optimizer, metrics
        self.compiler, self.fallback, self._donate = compiler, fallback, bool(donate)
        self.placement = self._placement()
        if self.compiler_name is not None and getattr(loss, "validate", False):
            raise ValueError(
                f"{compiler.what}: {type(loss).__name__}(validate=True) checks the labels by reading "
                "them back from the device, which a compiled function cannot do; build it with "
                "validate=False and check the labels once, up front, as the training loop does"
            )
        #: The compiled functions made so far, by modes, settings and placement.
        self.functions: dict[tuple[Any, ...], Any] = {}

    def _placement(self) -> backend.Placement:
        """Where the model lives now; an error if it cannot be compiled there and no fallback."""
        where = self.model.placement()
        if where is None:
            raise ValueError(f"{self.compiler.what}: the model has no parameters to train")
        if self.compiler.name(where.xp) is None and self.fallback is None:
            raise ValueError(self.compiler.unavailable(where))
        return where

    @property
    def compiler_name(self) -> str | None:
        """"jax.jit", "torch.compile", "onnxruntime", or None when running uncompiled."""
        return self.compiler.name(self.placement.xp)

    @property
    def donates(self) -> bool:
        """Whether the state's buffers are donated (JAX only)."""
        return self._donate and self.compiler_name == "jax.jit"

    def pure_step(self, params: Arrays, buffers: Arrays, opt_state: State, x: Array, y: Array, lr: Any,
                  key: Any = None) -> tuple[tuple[Arrays, Arrays, State], Array, Any]:
        """`arrayml.step.train_step` as a function of its state (this is what gets traced), on
        a clone of the model and of the loss that hold the given arrays.

        Args:
            params, buffers: the model's parameters and buffers, by name.
            opt_state: the optimizer's state.
            x, y: the batch.
            lr: the learning rate (a traced 0-D array when compiled).
            key: the step's random key (a traced array on JAX); None inside
                ``torch.compile`` for a model that draws, whose draws then use the seeded
                default generator (`arrayml.backend.GLOBAL_GENERATOR`).

        Returns:
            ``((params, buffers, opt_state), loss, extra)``: the new state, the batch loss and
            the metrics (None without).
        """
        model, loss_fn = self.model.clone(), self.loss.clone()
        model.set_parameters(params)
        model.set_buffers(buffers)
        if key is None and self.compiler_name == "torch.compile" and model.draws_random_numbers():
            key = backend.GLOBAL_GENERATOR
        opt_state, loss, extra = train_step(model, loss_fn, self.optimizer, opt_state, x, y, lr, key=key,
                                            metrics=self.metrics)
        return (model.parameters(), model.named_buffers(), opt_state), loss, extra

    def function(self) -> Any:
        """The compiled step for the model's current modes, the optimizer's settings and the
        model's placement (compiled now if it is new).

        Returns:
            A function with `pure_step`'s arguments and results (`pure_step` itself when
            running uncompiled).
        """
        key = (tuple(m.training for _, m in self.model.named_modules()), self.optimizer.hyperparameters(),
               backend.namespace_name(self.placement.xp), str(self.placement.device))
        fn = self.functions.get(key)
        if fn is None:
            if self.compiler_name is None:
                fn = self.pure_step
            else:
                # A function object of its own for each key: JAX caches traces by function (and
                # two bound methods of one object compare equal), so compiling the method itself
                # again would hand back the trace made in the other mode.
                def step(params: Arrays, buffers: Arrays, opt_state: State, x: Array, y: Array, lr: Any,
                         key: Any = None) -> Any:
                    return self.pure_step(params, buffers, opt_state, x, y, lr, key)

                fn = self.compiler.compile(step, self)
            self.functions[key] = fn
        return fn

    def run(self, opt_state: State, x: Array, y: Array, rate: Any, key: Any) -> tuple[State, Array, Any]:
        """One compiled step; the live model gets the new parameters and buffers (and empty
        ``grads``) afterwards.

        Args:
            opt_state: the optimizer's state before the step, fitted to the model.
            x, y: the batch, where the model lives.
            rate: the learning rate, already checked by the runner.
            key: the step's random key, or None (the model draws nothing).

        Returns:
            ``(opt_state, loss, extra)``: the new optimizer state, the loss (a 0-D device array)
            and the metrics (None without).

        Raises:
            ValueError: the batch is not where the model lives, the model moved where nothing
                compiles, or the compiler refuses the batch (`Compiler.check_batch`).
        """
        x, y = self.compiler.check_batch(x, y)
        params = self.model.parameters()
        if params and not _same_place(next(iter(params.values())), self.placement):
            self.placement = self._placement()  # the model moved: follow it
        where = self.placement
        # the eager step's namespace/device error, before jax.jit would quietly move NumPy input
        backend.get_namespace_and_device(x, y, next(iter(params.values())),
                                         names=("input x", "labels y", "the model's parameters"),
                                         what=self.compiler.what)
        # torch.compile draws from the default generator, seeded from the key around the call
        torch_compile = self.compiler_name == "torch.compile"
        with backend.seeded_globally(key if torch_compile else None, xp=where.xp, device=where.device):
            (new_params, new_buffers, new_state), loss, extra = self.function()(
                params, self.model.named_buffers(), opt_state, x, y,
                backend.traced_scalar(rate, xp=where.xp, device=where.device, dtype=where.dtype),
                None if torch_compile else key)
        self.model.set_parameters(new_params)
        self.model.set_buffers(new_buffers)
        for _, module in self.model.named_modules():
            module.grads = {}
        self.model.clear_cache()
        return new_state, loss, extra


class CompiledStep(Runner):
    """``step(x, y, lr=None, key=None)``: one optimizer step of `model` on the batch (x, y),
    compiled: a `Runner` whose strategy is `Traced`.

    Returns the batch loss as a 0-D device array, or ``(loss, metrics(logits, y))`` when a
    `metrics` function was given (it runs inside the compiled function; e.g. the number of
    correct predictions). `lr` defaults to the optimizer's ``lr``; `key` to the key of the step's
    number (``next_step``). Build it with `compile_step`.

    Args:
        model, loss, optimizer: what each step trains, with which loss (built with
            ``validate=False``) and optimizer.
        metrics: ``metrics(logits, y)``, computed inside the compiled function, or None.
        donate: donate the state's buffers on JAX.
        fallback: None (a backend without a compiler is an error) or ``"eager"``.
        options: keyword arguments passed to ``jax.jit`` or ``torch.compile``.
        seed: seeds the steps' random draws (dropout).
        train_mode: switch the model to training mode before every step.
        compiler: what compiles the pure step (default: `Jit` with `options`).

    Raises:
        TypeError: `model`, `loss` or `optimizer` is not an arrayml one, or `seed` is not an
            integer.
        ValueError: as `Traced` raises (no compiler for the model's backend and no fallback,
            a loss that checks its labels), or `seed` is negative.

    Example:
        >>> import numpy as np
        >>> import arrayml as am
        >>> model = am.MLP(4, [8], 3, rng=0)
        >>> step = am.compile.compile_step(model, am.SoftmaxCrossEntropy(validate=False), am.SGD(0.1),
        ...                                fallback="eager")
        >>> step.compiler, step.compiled  # NumPy has no compiler: the same step, uncompiled
        (None, False)
        >>> loss = step(np.ones((5, 4), dtype=np.float32), np.array([0, 1, 2, 1, 0]))
        >>> loss.shape, step.next_step
        ((), 1)
    """

    def __init__(
        self, model: Module, loss: Loss, optimizer: Optimizer, *,
        metrics: Callable[[Array, Array], Any] | None = None, donate: bool = True, fallback: str | None = None,
        options: dict[str, Any] | None = None, seed: int = 0, train_mode: bool = False,
        compiler: Compiler | None = None,
    ) -> None:
        compiler = Jit(options) if compiler is None else compiler
        for value, kind, what in ((model, Module, "an arrayml Module"), (loss, Loss, "an arrayml Loss"),
                                  (optimizer, Optimizer, "an arrayml optimizer (arrayml.optim.Optimizer)")):
            if not isinstance(value, kind):
                raise TypeError(f"{compiler.what} needs {what}, got {type(value).__name__}")
        self.traced = Traced(model, loss, optimizer, compiler, metrics=metrics, donate=donate, fallback=fallback)
        super().__init__(model, optimizer, self.traced, seed=seed, train_mode=train_mode, what=compiler.what)
        self.loss, self.metrics = loss, metrics

    def __call__(self, x: Array, y: Array, lr: float | None = None, *, key: Any = None) -> Any:
        """One step on (x, y) (`Runner.step`).

        Args:
            x, y: the batch, where the model lives.
            lr: the learning rate (None: the optimizer's ``lr``).
            key: the step's random key (None: that of its number, ``next_step``).

        Returns:
            The batch loss, a 0-D device array (not read back); ``(loss, metrics)`` when the
            step was built with `metrics`.

        Raises:
            ValueError: the rate is not a finite number >= 0, or the batch is not where the
                model lives or does not fit it.
        """
        loss, extra = self.step(x, y, lr, key=key)
        return loss if self.metrics is None else (loss, extra)

    @property
    def placement(self) -> backend.Placement:
        """Where the model lived at the last step (or when the step was built)."""
        return self.traced.placement

    @property
    def compiler(self) -> str | None:
        """"jax.jit", "torch.compile" ("onnxruntime" when exported), or None when running
        uncompiled (``fallback="eager"``)."""
        return self.traced.compiler_name

    @property
    def compiled(self) -> bool:
        """Whether the step runs compiled (False only with ``fallback="eager"``)."""
        return self.compiler is not None

    @property
    def donate(self) -> bool:
        """Whether the state's buffers are donated (JAX only)."""
        return self.traced.donates

    @property
    def pure_step(self) -> Callable[..., Any]:
        """The function that is compiled (`Traced.pure_step`)."""
        return self.traced.pure_step

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
    train_mode: bool = False,
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
        seed: seeds the random draws (dropout): step n draws from
            ``arrayml.step.step_key(seed, n)``.
        train_mode: switch the model to training mode before every step (as a learner's step
            does); False (default) traces the model in the modes it has (``model.eval()``
            freezes batch norm's statistics and turns dropout off, in a function of its own).

    Returns:
        The step, a `CompiledStep`.

    Raises:
        TypeError: `model`, `loss` or `optimizer` is not an arrayml one.
        ValueError: the model's backend has no compiler and `fallback` is None, `fallback` is
            unknown, the model has no parameters, or the loss checks its labels
            (``validate=True``).
    """
    return CompiledStep(model, loss, optimizer, metrics=metrics, donate=donate, fallback=fallback, options=options,
                        seed=seed, train_mode=train_mode)
