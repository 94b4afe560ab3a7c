"""PyTorch autograd as an independent oracle: the same network, written with torch ops.

`torch_forward(module, x, params)` evaluates an arrayml module tree with torch functions on torch
tensors (``params`` maps arrayml's dotted parameter names to tensors), so that
``torch.autograd.grad`` gives reference gradients for the same inputs and the same parameters.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

import arrayml as am
from arrayml import backend


def to_torch(a: Any, requires_grad: bool = False) -> torch.Tensor:
    t = torch.from_numpy(np.array(backend.to_numpy(a), dtype=np.float64))
    return t.requires_grad_(requires_grad)


def torch_forward(module: am.Module, x: torch.Tensor, params: dict[str, torch.Tensor], prefix: str = "",
                  buffers: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
    """`module` evaluated with torch functions. With `buffers` (batch norm's running statistics as
    torch tensors, by dotted name), batch norm uses and, in training mode, updates them as
    ``torch.nn.BatchNorm1d`` does (unbiased variance, the module's momentum)."""
    def p(key: str) -> torch.Tensor:
        return params[f"{prefix}{key}"]

    if isinstance(module, am.Linear):
        return x @ p("weight").T + p("bias")
    if isinstance(module, am.BatchNorm1d):
        if buffers is not None:
            return F.batch_norm(x, buffers[f"{prefix}running_mean"], buffers[f"{prefix}running_var"], p("gamma"), p("beta"),
                                training=module.training, momentum=module.momentum, eps=module.eps)
        if module.training:
            return F.batch_norm(x, None, None, p("gamma"), p("beta"), training=True, eps=module.eps)
        rm = to_torch(module.buffers["running_mean"])
        rv = to_torch(module.buffers["running_var"])
        return F.batch_norm(x, rm, rv, p("gamma"), p("beta"), training=False, eps=module.eps)
    if isinstance(module, am.LayerNorm):
        return F.layer_norm(x, (module.features,), p("gamma"), p("beta"), eps=module.eps)
    if isinstance(module, am.Dropout):  # the mask of the module's own last forward: a fixed mask
        return x if module.mask is None else x * to_torch(module.mask)
    if isinstance(module, am.RandomFlip):  # the flips of the module's own last forward
        flipped = module._saved()[0]
        if flipped is None:
            return x
        images = x if x.ndim == 4 else x.reshape(x.shape[0], *module.image_shape)
        chosen = torch.from_numpy(np.array(backend.to_numpy(flipped))).reshape(-1, 1, 1, 1)
        return torch.where(chosen, images.flip(3), images).reshape(x.shape)
    if isinstance(module, am.RandomCrop):  # the windows of the module's own last forward
        (ph, pw), (th, tw) = module.padding, module.size
        padded = F.pad(x, (pw, pw, ph, ph))
        offsets = module.last_offsets()
        if offsets is None:  # evaluation: the centred window
            a, b = (padded.shape[2] - th) // 2, (padded.shape[3] - tw) // 2
            return padded[:, :, a:a + th, b:b + tw]
        return torch.stack([padded[s, :, a:a + th, b:b + tw] for s, (a, b) in enumerate(offsets.tolist())])
    if isinstance(module, am.Conv2d):
        return F.conv2d(x, p("weight"), params.get(f"{prefix}bias"), module.stride, module.padding, module.dilation)
    if isinstance(module, am.MaxPool2d):
        return F.max_pool2d(x, module.kernel_size, module.stride)
    if isinstance(module, am.AvgPool2d):
        return F.avg_pool2d(x, module.kernel_size, module.stride)
    if isinstance(module, am.GlobalAvgPool2d):
        return torch.mean(x, dim=(2, 3))
    if isinstance(module, am.Flatten):
        return torch.flatten(x, 1)
    if isinstance(module, am.Residual):
        return x + torch_forward(module.block, x, params, f"{prefix}block.", buffers)
    if isinstance(module, am.Sequential):
        for name, child in module.children():
            x = torch_forward(child, x, params, f"{prefix}{name}.", buffers)
        return x
    simple = {
        am.ReLU: torch.relu,
        am.Tanh: torch.tanh,
        am.Sigmoid: torch.sigmoid,
        am.Identity: lambda t: t,
        am.Softmax: lambda t: torch.softmax(t, dim=1),
        am.GELU: lambda t: F.gelu(t, approximate="tanh"),
    }
    for cls, fn in simple.items():
        if isinstance(module, cls):
            return fn(x)
    if isinstance(module, am.ELU):
        return F.elu(x, alpha=module.alpha)
    if isinstance(module, am.LeakyReLU):
        return F.leaky_relu(x, negative_slope=module.negative_slope)
    raise NotImplementedError(f"no torch oracle for {type(module).__name__}")


def torch_copy(module: am.Module) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """`module`'s parameters as float64 torch leaves that require a gradient (for torch.optim), and
    its buffers (batch norm's running statistics) as float64 tensors, by dotted name."""
    params = {k: to_torch(v, requires_grad=True) for k, v in module.parameters().items()}
    buffers = {k: to_torch(v) for k, v in module.state().items() if k not in params}
    return params, buffers


def torch_module_gradients(module: am.Module, x: Any, dy: Any) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """Torch output, parameter gradients and input gradient of ``Σ module(x) ⊙ dy``."""
    xt = to_torch(x, requires_grad=True)
    params = {k: to_torch(v, requires_grad=True) for k, v in module.parameters().items()}
    y = torch_forward(module, xt, params)
    names = list(params)
    grads = torch.autograd.grad((y * to_torch(dy)).sum(), [xt, *[params[k] for k in names]], allow_unused=True)
    out = {}
    for name, g in zip(names, grads[1:]):
        out[name] = np.zeros(tuple(params[name].shape)) if g is None else g.numpy()
    return y.detach().numpy(), out, grads[0].numpy()


def assert_matches_torch(module: am.Module, x: Any, dy: Any, y: Any, dx: Any, grads: dict[str, Any], *,
                         rtol: float = 1e-9, atol: float = 1e-11) -> None:
    """`module`'s output `y`, input gradient `dx` and parameter gradients `grads` (host arrays,
    for the input `x` and upstream gradient `dy`) against torch autograd's."""
    y_t, grads_t, dx_t = torch_module_gradients(module, x, dy)
    np.testing.assert_allclose(y, y_t, rtol=rtol, atol=atol)
    np.testing.assert_allclose(dx, dx_t, rtol=rtol, atol=atol)
    assert set(grads_t) == set(grads)
    for name, g in grads_t.items():
        np.testing.assert_allclose(grads[name], g, rtol=rtol, atol=atol, err_msg=name)


def torch_loss_gradient(kind: str, x: Any, t: Any) -> tuple[float, np.ndarray]:
    """Loss and dL/dx from torch for ``"softmax_ce"`` (logits), ``"ce"`` (probabilities) or
    ``"squared_error"`` (real outputs: half the summed squared error, averaged over samples)."""
    xt = to_torch(x, requires_grad=True)
    t_host = backend.to_numpy(t)
    S, C = xt.shape
    if kind == "squared_error":
        loss = F.mse_loss(xt, torch.from_numpy(t_host.astype(np.float64)), reduction="sum") / (2 * S)
        (g,) = torch.autograd.grad(loss, [xt])
        return float(loss.detach()), g.numpy()
    if np.issubdtype(t_host.dtype, np.integer):
        T = F.one_hot(torch.from_numpy(t_host.astype(np.int64)), C).double()
    else:
        T = torch.from_numpy(t_host.astype(np.float64))
    if kind == "softmax_ce":
        loss = -(T * torch.log_softmax(xt, dim=1)).sum() / S
    else:
        loss = -(torch.where(T > 0, T * torch.log(xt), torch.zeros_like(xt))).sum() / S
    (g,) = torch.autograd.grad(loss, [xt])
    return float(loss.detach()), g.numpy()
