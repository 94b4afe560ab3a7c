"""PyTorch's native fast paths for `arrayml.backend.kernels`: one torch kernel where
array-api-compat's wrapper would run several (and several Python frames), with the same numbers
as the standard-only forms."""

from __future__ import annotations

from typing import Any

import torch

from .kernels import Kernels
from .namespaces import Array


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

    def adam_update(p: Array, g: Array, m: Array, v: Array, v_max: Array | None, beta1: float, beta2: float,
                    eps: float, step_size: Any, bc2_sqrt: Any) -> tuple[Array, Array, Array, Array | None]:
        # torch.optim.Adam's own kernels for the moments (lerp, addcmul), the standard form's
        # folded bias correction; in place only on the temporaries made here
        m = torch.lerp(m, g, 1.0 - beta1)
        v = torch.addcmul(torch.mul(v, beta2), g, g, value=1.0 - beta2)
        if v_max is not None:
            v_max = torch.maximum(v_max, v)
        denom = torch.sqrt(v if v_max is None else v_max).add_(eps * bc2_sqrt)
        return torch.sub(p, torch.mul(m, step_size * bc2_sqrt).div_(denom)), m, v, v_max

    return standard._replace(
        adam_update=adam_update,
        logsumexp=logsumexp, softmax_cross_entropy=softmax_cross_entropy, one_hot=one_hot, count_true=count_true,
        subtract_scaled=subtract_scaled, column_sums=column_sums, take_rows=take_rows, relu=torch.relu,
        relu_backward=relu_backward,
    )
