"""PyTorch's native fast paths for `arrayml.backend.kernels`: one torch kernel where
array-api-compat's wrapper would run several (and several Python frames), with the same numbers
as the standard-only forms."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch

from ._standard import AdamLists, Kernels
from .namespaces import Array

#: Whether this PyTorch has the fused Adam kernel (``torch.optim.Adam(fused=True)``'s; on CPU
#: since PyTorch 2.4), and the dtypes it takes.
FUSED_ADAM = hasattr(torch, "_fused_adam_")
_FUSED_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


def torch_kernels(standard: Kernels) -> Kernels:
    """`standard` with PyTorch's fast paths put in."""

    def logsumexp(x: Array, axis: int = -1, keepdims: bool = False) -> Array:
        return torch.logsumexp(x, dim=axis, keepdim=keepdims)

    def softmax_cross_entropy(x: Array, t: Array, hot: Array | None) -> tuple[Array, Array]:
        logy = x - torch.logsumexp(x, dim=1, keepdim=True)
        picked = torch.where(hot, logy, 0.0) if hot is not None else t * torch.where(t == 0, 0.0, logy)
        return torch.sum(picked) / -x.shape[0], torch.exp(logy)  # = −(Σ)/S exactly

    def one_hot(labels: Array, n_classes: int, dtype: Any) -> tuple[Array, Array]:
        # the standard form, with the tensor's own device (array_api_compat.device would first
        # ask which of six libraries the array belongs to: Dynamo warns about each question)
        hot = labels[:, None] == torch.arange(n_classes, dtype=labels.dtype, device=labels.device)
        return hot.to(dtype), hot

    def count_true(mask: Array) -> Array:
        return torch.sum(mask, dtype=torch.int64)  # booleans summed natively

    def subtract_scaled(p: Array, g: Array, scale: Any) -> Array:
        if type(scale) is not float:  # a compiled step's 0-D rate: alpha takes numbers only
            return standard.subtract_scaled(p, g, scale)
        return torch.sub(p, g, alpha=scale)

    def column_sums(x: Array) -> Array:
        return torch.sum(x, dim=0, keepdim=True)

    def take_rows(x: Array, idx: Array) -> Array:
        # array-api-compat's take first maps negative indices (three kernels a batch) that a
        # permutation never has
        return torch.index_select(x, 0, idx)

    def relu_backward(x: Array, dy: Array) -> Array:
        return torch.ops.aten.threshold_backward(dy, x, 0)  # where(x <= 0, 0, dy), one kernel

    def adam_update(params: list[Array], grads: list[Array], exp_avgs: list[Array], exp_avg_sqs: list[Array],
                    max_exp_avg_sqs: list[Array] | None, beta1: float, beta2: float, eps: float, lr: Any,
                    step: Array) -> AdamLists:
        # a compiled step keeps the standard form, which Inductor fuses (the fused kernel has no
        # implementation for tracing); so do mixed dtypes or devices
        first = params[0]
        if (not FUSED_ADAM or torch.compiler.is_compiling() or first.dtype not in _FUSED_DTYPES
                or any(a.dtype != first.dtype or a.device != first.device
                       for a in (*params, *grads, *exp_avgs, *exp_avg_sqs, *(max_exp_avg_sqs or ())))):
            return standard.adam_update(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs,
                                        beta1, beta2, eps, lr, step)
        # torch.optim.Adam(fused=True)'s kernel: one pass over each parameter instead of about
        # twelve, on copies (it writes in place); it computes the bias corrections from a float32
        # step count, t itself (torch.optim.Adam counts its steps up just before)
        with torch.no_grad():
            new_p = [torch.clone(p) for p in params]
            new_m = [torch.clone(m) for m in exp_avgs]
            new_v = [torch.clone(v) for v in exp_avg_sqs]
            new_max = None if max_exp_avg_sqs is None else [torch.clone(v) for v in max_exp_avg_sqs]
            t = step.to(dtype=torch.float32)
            torch._fused_adam_(
                new_p, list(grads), new_m, new_v, [] if new_max is None else new_max, [t] * len(params),
                lr=lr, beta1=beta1, beta2=beta2, weight_decay=0.0, eps=eps, amsgrad=new_max is not None,
                maximize=False)
        return new_p, new_m, new_v, new_max

    # the sliding-window operations: torch's own kernels (oneDNN on the CPU, cuDNN on CUDA) and
    # the gradient functions its autograd calls, so that a step computes what torch.nn's does
    def conv2d(x: Array, weight: Array, bias: Array | None, stride: Any, padding: Any, dilation: Any) -> Array:
        return torch.nn.functional.conv2d(x, weight, bias, stride, padding, dilation)

    def conv2d_backward(dy: Array, x: Array, weight: Array, stride: Any, padding: Any, dilation: Any,
                        input_grad: bool, bias_grad: bool) -> tuple[Array | None, Array, Array | None]:
        return torch.ops.aten.convolution_backward(
            dy, x, weight, [weight.shape[0]] if bias_grad else None, list(stride), list(padding), list(dilation),
            False, [0, 0], 1, [input_grad, True, bias_grad])

    def max_pool2d(x: Array, kernel: Any, stride: Any) -> tuple[Array, Any]:
        y, where = torch.ops.aten.max_pool2d_with_indices(x, list(kernel), list(stride))
        return y, (x, where)  # the input and the flat position of each window's maximum

    def max_pool2d_backward(dy: Array, saved: Any, kernel: Any, stride: Any) -> Array:
        x, where = saved
        return torch.ops.aten.max_pool2d_with_indices_backward(dy, x, list(kernel), list(stride), [0, 0], [1, 1],
                                                               False, where)

    def avg_pool2d(x: Array, kernel: Any, stride: Any) -> Array:
        return torch.ops.aten.avg_pool2d(x, list(kernel), list(stride))

    def avg_pool2d_backward(dy: Array, x: Array, kernel: Any, stride: Any) -> Array:
        return torch.ops.aten.avg_pool2d_backward(dy, x, list(kernel), list(stride), [0, 0], False, True, None)

    def batch_norm(x: Array, gamma: Array, beta: Array, running_mean: Array, running_var: Array, axes: tuple[int, ...],
                   momentum: float, eps: float, sync: Any) -> tuple[Array, Array, Array, Any]:
        # torch.nn's own kernel, which updates the running statistics in place: on copies
        if sync is not None or axes != _BN_AXES.get(x.ndim):
            return standard.batch_norm(x, gamma, beta, running_mean, running_var, axes, momentum, eps, sync)
        new_mean, new_var = torch.clone(running_mean), torch.clone(running_var)
        y, mean, inv_std = torch.ops.aten.native_batch_norm(x, gamma, beta, new_mean, new_var, True, momentum, eps)
        return y, new_mean, new_var, _TorchBatchNorm(x, mean, inv_std, eps)

    def batch_norm_backward(dy: Array, saved: Any, gamma: Array, axes: tuple[int, ...],
                            input_grad: bool) -> tuple[Array | None, Array, Array]:
        if not isinstance(saved, _TorchBatchNorm):
            return standard.batch_norm_backward(dy, saved, gamma, axes, input_grad)
        dx, dgamma, dbeta = torch.ops.aten.native_batch_norm_backward(
            dy, saved.x, gamma, None, None, saved.mean, saved.inv_std, True, saved.eps, [input_grad, True, True])
        return dx, dgamma, dbeta

    return standard._replace(
        batch_norm=batch_norm, batch_norm_backward=batch_norm_backward,
        conv2d=conv2d, conv2d_backward=conv2d_backward, max_pool2d=max_pool2d, max_pool2d_backward=max_pool2d_backward,
        avg_pool2d=avg_pool2d, avg_pool2d_backward=avg_pool2d_backward,
        adam_update=adam_update,
        logsumexp=logsumexp, softmax_cross_entropy=softmax_cross_entropy, one_hot=one_hot, count_true=count_true,
        subtract_scaled=subtract_scaled, column_sums=column_sums, take_rows=take_rows, relu=torch.relu,
        relu_backward=relu_backward,
    )


#: The axes batch norm's statistics are taken over, by the input's number of dimensions: where
#: torch's kernel (features on axis 1) computes what the standard form does.
_BN_AXES = {2: (0,), 4: (0, 2, 3)}


class _TorchBatchNorm(NamedTuple):
    """What torch's batch norm backward needs: the input, the batch mean and 1/√(σ² + ε)."""

    x: Any
    mean: Any
    inv_std: Any
    eps: float
