"""Plain PyTorch mirrors of arrayml networks: the same layers as ``torch.nn`` modules holding the
very same weights, trained with autograd and the same ``torch.optim`` optimizer. The one place
the examples, benchmarks and tests build the torch.nn reference.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

import arrayml as am
from arrayml import backend

#: arrayml activation class -> a factory of the torch.nn module computing the same function.
TORCH_ACTIVATIONS: dict[type, Any] = {
    am.ReLU: lambda m: nn.ReLU(),
    am.ELU: lambda m: nn.ELU(alpha=m.alpha),
    am.LeakyReLU: lambda m: nn.LeakyReLU(m.negative_slope),
    am.Tanh: lambda m: nn.Tanh(),
    am.Sigmoid: lambda m: nn.Sigmoid(),
    am.GELU: lambda m: nn.GELU(approximate="tanh"),
    am.Identity: lambda m: nn.Identity(),
}


def _tensor(a: Any) -> torch.Tensor:
    return torch.from_numpy(np.array(backend.to_numpy(a)))  # copy_ then converts dtype and device


class TorchRandomFlip(nn.Module):
    """`arrayml.RandomFlip` in torch.nn: each image of a training batch mirrored left-right with
    probability 1/2 (torch's own random numbers); the identity in evaluation mode. Takes rows of
    flattened `image_shape` images, or NCHW batches (`image_shape` None)."""

    def __init__(self, image_shape: tuple[int, ...] | None) -> None:
        super().__init__()
        self.image_shape = image_shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        images = x.reshape(x.shape[0], *self.image_shape) if self.image_shape is not None else x
        flipped = torch.rand(x.shape[0], 1, 1, 1, device=x.device) < 0.5
        return torch.where(flipped, images.flip(3), images).reshape(x.shape)


class TorchRandomCrop(nn.Module):
    """`arrayml.RandomCrop` in torch.nn (torchvision's ``RandomCrop(size, padding)`` on a batch):
    each NCHW training image padded with zeros and a random window of `size` cut out of it, at
    offsets from torch's own random numbers; the centred window in evaluation mode."""

    def __init__(self, size: tuple[int, int], padding: tuple[int, int]) -> None:
        super().__init__()
        self.size, self.padding = size, padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (ph, pw), (th, tw) = self.padding, self.size
        padded = nn.functional.pad(x, (pw, pw, ph, ph))
        rows, cols = padded.shape[2] - th + 1, padded.shape[3] - tw + 1
        if not self.training:
            return padded[:, :, (rows - 1) // 2:(rows - 1) // 2 + th, (cols - 1) // 2:(cols - 1) // 2 + tw]
        n = x.shape[0]
        top = torch.randint(0, rows, (n, 1, 1), device=x.device) + torch.arange(th, device=x.device)[None, :, None]
        left = torch.randint(0, cols, (n, 1, 1), device=x.device) + torch.arange(tw, device=x.device)[None, None, :]
        batch = torch.arange(n, device=x.device)[:, None, None]
        return padded.permute(0, 2, 3, 1)[batch, top, left].permute(0, 3, 1, 2)  # (n, th, tw, C) -> NCHW


def _conv(module: am.Conv2d, put: dict[str, Any]) -> nn.Conv2d:
    conv = nn.Conv2d(module.in_channels, module.out_channels, module.kernel_size, module.stride, module.padding,
                     module.dilation, bias=module.bias, **put)
    with torch.no_grad():
        conv.weight.copy_(_tensor(module.params["weight"]))
        if module.bias:
            conv.bias.copy_(_tensor(module.params["bias"]))
    return conv


def _batch_norm(module: am.BatchNorm1d | am.BatchNorm2d, put: dict[str, Any]) -> nn.Module:
    kind = nn.BatchNorm2d if isinstance(module, am.BatchNorm2d) else nn.BatchNorm1d
    bn = kind(module.num_features, eps=module.eps, momentum=module.momentum, **put)
    with torch.no_grad():
        bn.weight.copy_(_tensor(module.params["gamma"]))
        bn.bias.copy_(_tensor(module.params["beta"]))
        bn.running_mean.copy_(_tensor(module.buffers["running_mean"]))
        bn.running_var.copy_(_tensor(module.buffers["running_var"]))
    return bn


def torch_mirror(model: am.Sequential, *, device: Any = "cpu", dtype: torch.dtype | None = None) -> nn.Sequential:
    """A ``torch.nn.Sequential`` computing what `model` computes, from its current parameters and
    batch-norm statistics (copied, so the two then train independently). `dtype` defaults to the
    model's."""
    if dtype is None:
        where = model.placement()
        dtype = getattr(torch, backend.dtype_name(where.dtype)) if where is not None else torch.float32
    put = {"device": device, "dtype": dtype}  # built in `dtype`: float64 weights copied without rounding
    layers: list[nn.Module] = []
    for module in model.layers:
        if isinstance(module, am.Sequential):
            layers.append(torch_mirror(module, device=device, dtype=dtype))
        elif isinstance(module, am.RandomFlip):
            layers.append(TorchRandomFlip(module.image_shape))
        elif isinstance(module, am.RandomCrop):
            layers.append(TorchRandomCrop(module.size, module.padding))
        elif isinstance(module, am.Conv2d):
            layers.append(_conv(module, put))
        elif isinstance(module, (am.BatchNorm1d, am.BatchNorm2d)):
            layers.append(_batch_norm(module, put))
        elif isinstance(module, am.MaxPool2d):
            layers.append(nn.MaxPool2d(module.kernel_size, module.stride))
        elif isinstance(module, am.AvgPool2d):
            layers.append(nn.AvgPool2d(module.kernel_size, module.stride))
        elif isinstance(module, am.GlobalAvgPool2d):
            layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        elif isinstance(module, am.Flatten):
            layers.append(nn.Flatten())
        elif isinstance(module, am.Linear):
            lin = nn.Linear(module.in_features, module.out_features, **put)
            with torch.no_grad():
                lin.weight.copy_(_tensor(module.params["weight"]))
                lin.bias.copy_(_tensor(module.params["bias"])[0])
            layers.append(lin)
        elif isinstance(module, am.LayerNorm):
            ln = nn.LayerNorm(module.features, eps=module.eps, **put)
            with torch.no_grad():
                ln.weight.copy_(_tensor(module.params["gamma"]))
                ln.bias.copy_(_tensor(module.params["beta"]))
            layers.append(ln)
        elif isinstance(module, am.Dropout):
            layers.append(nn.Dropout(module.p))  # its own masks, from torch's generator
        elif type(module) in TORCH_ACTIVATIONS:
            layers.append(TORCH_ACTIVATIONS[type(module)](module))
        else:
            raise TypeError(f"no torch.nn mirror for {type(module).__name__}")
    return nn.Sequential(*layers)


class TorchLearner:
    """The training-loop interface (`arrayml.training.Learner`) for a torch.nn model: autograd,
    ``nn.CrossEntropyLoss`` and a torch optimizer."""

    group = None  # one process: the reference does not train data-parallel

    def __init__(self, net: nn.Module, optimizer: torch.optim.Optimizer, where: backend.Placement, *,
                 clip_grad_norm: float | None = None) -> None:
        self.net, self.optimizer, self.clip_grad_norm = net, optimizer, clip_grad_norm
        self._lr = float(optimizer.param_groups[0]["lr"])
        self.loss = nn.CrossEntropyLoss()
        self.xp, self.device = where.xp, where.device

    @property
    def model(self) -> nn.Module:
        """The torch.nn model (the training loop switches its mode: training while it trains,
        evaluation after)."""
        return self.net

    @property
    def lr(self) -> float:
        """The rate the torch optimizer was built with (its first group's; each step sets its own)."""
        return self._lr

    def train_step(self, x: torch.Tensor, y: torch.Tensor, lr: float, step: int | None = None,
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """(`step` is for arrayml's random keys: torch.nn's dropout draws from torch's generator.)"""
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        if not self.net.training:  # a step trains: dropout and batch statistics, as arrayml's step
            self.net.train()
        self.optimizer.zero_grad(set_to_none=True)
        logits = self.net(x)
        loss = self.loss(logits, y)
        loss.backward()
        if self.clip_grad_norm is not None:
            nn.utils.clip_grad_norm_(self.net.parameters(), self.clip_grad_norm)
        self.optimizer.step()
        return loss.detach(), (logits.detach().argmax(dim=1) == y).sum()

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        was_training = self.net.training
        self.net.eval()
        try:
            with torch.no_grad():
                return self.net(x)
        finally:
            self.net.train(was_training)

    def snapshot(self) -> dict[str, Any]:
        return {k: v.detach().clone() for k, v in self.net.state_dict().items()}  # torch updates in place

    def restore(self, state: dict[str, Any]) -> None:
        """Accepts torch tensors or host arrays (from a checkpoint); copies into the net."""
        self.net.load_state_dict({k: torch.as_tensor(backend.to_numpy(v)) for k, v in state.items()})

    def optimizer_state(self) -> dict[str, Any]:
        """Every tensor of the optimizer's per-parameter state (momentum buffers, Adam's moments
        and step counts), flat: ``"<entry>/<parameter index>"``."""
        out = {}
        for i, p in enumerate(self.net.parameters()):
            for key, value in self.optimizer.state.get(p, {}).items():
                if isinstance(value, torch.Tensor):
                    out[f"{key}/{i}"] = value.detach().clone()
        return out

    def load_optimizer_state(self, state: dict[str, Any]) -> None:
        params = list(self.net.parameters())
        for name, value in state.items():
            key, _, index = name.rpartition("/")
            if not key:  # a checkpoint of the earlier layout: SGD's momentum buffer by index alone
                key, index = "momentum_buffer", name
            p = params[int(index)]
            dtype = p.dtype if value.ndim else getattr(torch, backend.dtype_name(value.dtype))
            self.optimizer.state[p][key] = backend.convert(value, self.xp, "cpu" if not value.ndim else self.device, dtype)


#: ``--optimizer`` -> its torch.optim class.
TORCH_OPTIMIZERS = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW,
                    "rmsprop": torch.optim.RMSprop}


def torch_optimizer(config: Any, params: Any) -> torch.optim.Optimizer:
    """The ``torch.optim`` optimizer of `config`, with the very settings of arrayml's; gradient
    clipping is `TorchLearner`'s (``clip_grad_norm_``), as PyTorch does it."""
    settings = dict(config.optimizer_settings())
    settings.pop("clip_grad_norm")
    return TORCH_OPTIMIZERS[config.optimizer](params, **settings)


def torch_learner(config: Any, where: backend.Placement) -> tuple[TorchLearner, dict[str, Any]]:
    """The learner factory of the torch.nn reference (`arrayml_app.run.run`'s ``make_learner``):
    torch.nn layers mirroring arrayml's MLP or CNN for `config`, initialised with the very same weights."""
    from .models import build_model

    template = build_model(config, backend.placement("numpy", None, "float64"))
    net = torch_mirror(template, device=where.device, dtype=getattr(torch, config.dtype))
    opt = torch_optimizer(config, net.parameters())
    info = {"implementation": "torch.nn reference", "parameters": sum(p.numel() for p in net.parameters()),
            "architecture": repr(net)}
    return TorchLearner(net, opt, where, clip_grad_norm=config.clip_grad_norm), info
