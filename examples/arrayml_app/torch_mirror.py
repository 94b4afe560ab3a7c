"""Plain PyTorch mirrors of arrayml networks: the same layers as ``torch.nn`` modules holding the
very same weights, trained with autograd and ``torch.optim.SGD``. The one place the examples,
benchmarks and tests build the torch.nn reference.
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
        if isinstance(module, am.Linear):
            lin = nn.Linear(module.in_features, module.out_features, **put)
            with torch.no_grad():
                lin.weight.copy_(_tensor(module.params["weight"]))
                lin.bias.copy_(_tensor(module.params["bias"])[0])
            layers.append(lin)
        elif isinstance(module, am.BatchNorm1d):
            bn = nn.BatchNorm1d(module.num_features, eps=module.eps, momentum=module.momentum, **put)
            with torch.no_grad():
                bn.weight.copy_(_tensor(module.params["gamma"]))
                bn.bias.copy_(_tensor(module.params["beta"]))
                bn.running_mean.copy_(_tensor(module.buffers["running_mean"]))
                bn.running_var.copy_(_tensor(module.buffers["running_var"]))
            layers.append(bn)
        elif type(module) in TORCH_ACTIVATIONS:
            layers.append(TORCH_ACTIVATIONS[type(module)](module))
        else:
            raise TypeError(f"no torch.nn mirror for {type(module).__name__}")
    return nn.Sequential(*layers)


class TorchLearner:
    """The training-loop interface (`arrayml.training.Learner`) for a torch.nn model: autograd,
    ``nn.CrossEntropyLoss`` and a torch optimizer."""

    group = None  # one process: the reference does not train data-parallel

    def __init__(self, net: nn.Module, optimizer: torch.optim.Optimizer, where: backend.Placement) -> None:
        self.net, self.optimizer = net, optimizer
        self._lr = float(optimizer.param_groups[0]["lr"])
        self.loss = nn.CrossEntropyLoss()
        self.xp, self.device = where.xp, where.device

    @property
    def lr(self) -> float:
        """The rate the torch optimizer was built with (its first group's; each step sets its own)."""
        return self._lr

    def train_step(self, x: torch.Tensor, y: torch.Tensor, lr: float) -> tuple[torch.Tensor, torch.Tensor]:
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        logits = self.net(x)
        loss = self.loss(logits, y)
        loss.backward()
        self.optimizer.step()
        return loss.detach(), (logits.detach().argmax(dim=1) == y).sum()

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        self.net.eval()
        try:
            with torch.no_grad():
                return self.net(x)
        finally:
            self.net.train()

    def snapshot(self) -> dict[str, Any]:
        return {k: v.detach().clone() for k, v in self.net.state_dict().items()}  # torch updates in place

    def restore(self, state: dict[str, Any]) -> None:
        """Accepts torch tensors or host arrays (from a checkpoint); copies into the net."""
        self.net.load_state_dict({k: torch.as_tensor(backend.to_numpy(v)) for k, v in state.items()})

    def optimizer_state(self) -> dict[str, Any]:
        out = {}
        for i, p in enumerate(self.net.parameters()):
            buf = self.optimizer.state.get(p, {}).get("momentum_buffer")
            if buf is not None:
                out[str(i)] = buf.detach().clone()
        return out

    def load_optimizer_state(self, state: dict[str, Any]) -> None:
        for i, p in enumerate(self.net.parameters()):
            if str(i) in state:
                self.optimizer.state[p]["momentum_buffer"] = backend.convert(state[str(i)], self.xp, self.device, p.dtype)


def torch_learner(config: Any, where: backend.Placement) -> tuple[TorchLearner, dict[str, Any]]:
    """The learner factory of the torch.nn reference (`arrayml_app.run.run`'s ``make_learner``):
    torch.nn layers mirroring arrayml's MLP for `config`, initialised with the very same weights."""
    from .run import build_model

    template = build_model(config, backend.placement("numpy", None, "float64"))
    net = torch_mirror(template, device=where.device, dtype=getattr(torch, config.dtype))
    opt = torch.optim.SGD(net.parameters(), lr=config.lr, momentum=config.momentum, nesterov=config.nesterov,
                          weight_decay=config.weight_decay)
    info = {"implementation": "torch.nn reference", "parameters": sum(p.numel() for p in net.parameters()),
            "architecture": repr(net)}
    return TorchLearner(net, opt, where), info
