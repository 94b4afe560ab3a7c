"""Batch normalisation over the batch axis of (S, C) inputs (`BatchNorm1d`), and over the batch
and pixels of NCHW images (`BatchNorm2d`: the same algebra, S counting N·H·W values per channel).

Training (docs/derivations.md, "Batch normalisation"), per feature c over the S samples:

    μ = (1/S) Σ x,   σ² = (1/S) Σ (x − μ)²,   x̂ = (x − μ)/√(σ² + ε),   y = γ x̂ + β

    dβ = Σ_s dy,     dγ = Σ_s dy ⊙ x̂
    dx = (γ / (S √(σ² + ε))) ⊙ (S dy − Σ_s dy − x̂ ⊙ Σ_s (dy ⊙ x̂))

The last line is the full gradient *through* μ and σ². Evaluation uses the running averages
(updated in training with ``running ← (1 − momentum)·running + momentum·batch``, the running
variance from the unbiased batch variance, as PyTorch does), and then x̂ is an affine function of x.

Synchronized mode (``sync=`` given at construction; docs/derivations.md,
"Synchronized batch normalisation"): in data-parallel training the batch is split over N
processes, and μ, σ² are those of the *whole* global batch of n samples. Forward sums
[Σ (x − K), Σ (x − K)², S] over the processes (K: the running mean, the same everywhere, a
shift that only improves rounding); backward sums the two reductions dx needs:

    dx = (γ / (n √(σ² + ε))) ⊙ (n dy − Σ_all dy − x̂ ⊙ Σ_all (dy ⊙ x̂))

The layer never communicates itself: ``sync`` is any callable that returns, for a list of
arrays, their element-wise sums over all processes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import backend, validate
from ..backend import Array
from .base import Module
from .checks import check_grad, check_images, check_input, namespace_of


class BatchNorm1d(Module):
    """Batch norm of (S, C) rows, as ``torch.nn.BatchNorm1d``: learnable ``gamma`` (scale, starts at
    1) and ``beta`` (shift, starts at 0), each of shape (num_features,), and running mean/variance
    buffers (used in evaluation mode).

    Args:
        num_features: C, the number of features (columns) of the input.
        eps: the positive constant added to the variance before its square root.
        momentum: the weight in [0, 1] of each batch in the running statistics.
        sync: None (statistics of this process's batch), or a callable that sums a list of arrays
            over all processes of data-parallel training
            (`arrayml.distributed.ProcessGroup.batch_norm_sync`); training mode then uses the
            statistics of the whole global batch (synchronized batch norm).
        xp, device, dtype: where the parameters live (default NumPy, CPU, float32).

    Raises:
        TypeError: `sync` is neither None nor callable, or a setting has the wrong type.
        ValueError: a setting is out of its range.
    """

    #: The axes the statistics are taken over: every axis but the features'. `BatchNorm2d`
    #: reduces over (0, 2, 3) of NCHW images; the algebra below is written once for both.
    axes: tuple[int, ...] = (0,)

    def __init__(
        self, num_features: int, *, eps: float = 1e-5, momentum: float = 0.1,
        sync: Callable[[list[Array]], list[Array]] | None = None,
        xp: Any = None, device: Any = None, dtype: Any = None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        if sync is not None and not callable(sync):
            raise TypeError(f"{name} sync must be None or a function that sums a list of arrays over the "
                            f"processes, got {type(sync).__name__}")
        #: Sums a list of arrays over the processes (synchronized mode), or None.
        self.sync = sync
        num_features = validate.positive_int(num_features, f"{name} num_features")
        self.num_features = num_features
        self.eps = validate.real_number(eps, f"{name} eps", low=0.0, low_open=True)
        self.momentum = validate.real_number(momentum, f"{name} momentum", low=0.0, high=1.0)
        w = backend.placement(xp, device, dtype)
        shape = (num_features,)
        self.params["gamma"] = w.xp.ones(shape, dtype=w.dtype, device=w.device)
        self.params["beta"] = w.xp.zeros(shape, dtype=w.dtype, device=w.device)
        self.buffers["running_mean"] = w.xp.zeros(shape, dtype=w.dtype, device=w.device)
        self.buffers["running_var"] = w.xp.ones(shape, dtype=w.dtype, device=w.device)

    # -- what differs between the 1-D and the 2-D layer ---------------------------------------
    def _check(self, x: Array, xp: Any) -> None:
        check_input(x, module="BatchNorm1d", ndim=2, features=self.num_features, dtype=self.params["gamma"].dtype, xp=xp)

    def _per_feature(self, xp: Any, v: Array) -> Array:
        """A (num_features,) vector shaped to broadcast against the input: as it is for (S, C)."""
        return v

    def _count(self, x: Array) -> Any:
        """The number of values each feature's statistics are taken over (None if unknown)."""
        n = 1
        for axis in self.axes:
            if x.shape[axis] is None:  # a dynamic dimension of a graph being built (ndonnx)
                return None
            n *= x.shape[axis]
        return n

    # -- forward and backward -----------------------------------------------------------------
    def forward(self, x: Array) -> Array:
        name = type(self).__name__
        gamma, beta = self.params["gamma"], self.params["beta"]
        xp = namespace_of(f"{name}.forward", ("input x", "gamma", "beta"), x, gamma, beta)
        self._check(x, xp)
        view = self._per_feature
        if not self.training:  # running statistics are constants: x̂ is affine in x
            inv_std = 1.0 / xp.sqrt(self.buffers["running_var"] + self.eps)
            xhat = (x - view(xp, self.buffers["running_mean"])) * view(xp, inv_std)
            self._cache = (False, xhat, gamma * inv_std)
            return view(xp, gamma) * xhat + view(xp, beta)
        S = self._count(x)
        if S is None:
            raise ValueError(
                f"{name} in training mode needs a fixed batch size (its running variance uses "
                "S/(S − 1)), but the input's batch dimension is dynamic; build the graph with a fixed "
                "batch (arrayml.export.train_step_to_onnx takes batch_size), or use eval() to "
                "normalise with the running statistics"
            )
        if self.sync is None and S < 2:
            raise ValueError(
                f"{name} in training mode needs at least 2 samples per batch to estimate a variance "
                f"(values per feature), got {S} (input shape {tuple(x.shape)}); use eval() for single samples"
            )
        # the statistics, the normalisation and the running averages: backend.batch_norm (the
        # algebra of the module docstring; PyTorch's fused kernel where it runs)
        y, self.buffers["running_mean"], self.buffers["running_var"], saved = backend.batch_norm(
            x, gamma, beta, self.buffers["running_mean"], self.buffers["running_var"], axes=self.axes,
            momentum=self.momentum, eps=self.eps, sync=self.sync, xp=xp)
        self._cache = (True, saved, (tuple(x.shape), x.dtype))  # saved: the backend's, for its backward
        return y

    def backward(self, dy: Array, *, input_grad: bool = True) -> Array | None:
        name = type(self).__name__
        training, saved, extra = self._saved()
        if training:  # the gradient through μ and σ²: backend.batch_norm_backward
            shape, dtype = extra
            xp = namespace_of(f"{name}.backward", ("dy", "gamma"), dy, self.params["gamma"])
            check_grad(dy, shape, module=name, dtype=dtype)
            dx, dgamma, dbeta = backend.batch_norm_backward(dy, saved, self.params["gamma"], axes=self.axes,
                                                            input_grad=input_grad, xp=xp)
        else:  # x̂ affine in x: dx = dy ⊙ γ/√(running σ² + ε)
            xhat, scale = saved, extra
            xp = namespace_of(f"{name}.backward", ("dy", "the forward input"), dy, xhat)
            check_grad(dy, tuple(xhat.shape), module=name, dtype=xhat.dtype)
            dbeta, dgamma = xp.sum(dy, axis=self.axes), xp.sum(dy * xhat, axis=self.axes)
            dx = dy * self._per_feature(xp, scale) if input_grad else None
        # this process's share; data-parallel training sums the parameter gradients afterwards
        self.grads["beta"], self.grads["gamma"] = dbeta, dgamma
        return dx

    def arguments(self) -> dict[str, Any]:
        return {"num_features": self.num_features, "eps": self.eps, "momentum": self.momentum}

    def extra_repr(self) -> str:
        sync = ", synchronized" if self.sync is not None else ""
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}{sync}"


class BatchNorm2d(BatchNorm1d):
    """Batch norm of NCHW images, as ``torch.nn.BatchNorm2d``: one mean and variance per channel,
    over the batch and every pixel (axes 0, 2, 3: n = N·H·W values), ``gamma`` and ``beta`` of
    shape (num_features,) = (channels,). The algebra is `BatchNorm1d`'s, with the sums over
    those three axes and the per-channel vectors broadcast as (C, 1, 1) (docs/derivations.md,
    "Batch normalisation of images").

    Args:
        num_features: C, the number of channels of the input.
        eps: the positive constant added to the variance before its square root.
        momentum: the weight in [0, 1] of each batch in the running statistics.
        sync: None, or the callable that sums a list of arrays over the processes (as `BatchNorm1d`).
        xp, device, dtype: where the parameters live (default NumPy, CPU, float32).

    Raises:
        TypeError: `sync` is neither None nor callable, or a setting has the wrong type.
        ValueError: a setting is out of its range.
    """

    #: Takes images of any size: `Sequential.input_shape` stops here (None).
    input_shape: tuple[int, ...] | None = None

    axes = (0, 2, 3)

    def _check(self, x: Array, xp: Any) -> None:
        check_images(x, module="BatchNorm2d", channels=self.num_features, dtype=self.params["gamma"].dtype, xp=xp)

    def _per_feature(self, xp: Any, v: Array) -> Array:
        return xp.reshape(v, (-1, 1, 1))
