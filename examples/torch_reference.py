#!/usr/bin/env python
"""The assignment's PyTorch MLP (torch.nn + autograd + torch.optim.SGD), as a reference for arrayml.

Same flags, same data, split, batches (same order), same initial weights (copied from the arrayml
MLP built with the same seed), same evaluation and the same results.json format as
examples/train.py, so that the two can be compared point by point:

    python examples/torch_reference.py --data-dir ../shared/data/cifar10
    python examples/torch_reference.py --data-dir ../shared/data/cifar10 --batch-norm --device cuda

Only the model and its gradients differ: here they come from torch.nn.Linear, nn.BatchNorm1d,
nn.CrossEntropyLoss and loss.backward().
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from arrayml import backend  # noqa: E402
from arrayml.cli import main  # noqa: E402
from arrayml.experiment import RunConfig  # noqa: E402
from arrayml.modules import MLP, BatchNorm1d, Linear  # noqa: E402

TORCH_ACTIVATIONS = {
    "relu": nn.ReLU, "elu": nn.ELU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid,
    "leaky_relu": nn.LeakyReLU, "gelu": lambda: nn.GELU(approximate="tanh"), "identity": nn.Identity,
}


def build_torch_mlp(config: RunConfig, where: backend.Placement) -> nn.Sequential:
    """torch.nn layers mirroring arrayml's MLP, initialised with the very same weights."""
    template = MLP(3072, config.hidden_dims, 10, activation=config.activation, batch_norm=config.batch_norm,
                   dtype="float64", rng=np.random.default_rng(config.seed))
    layers: list[nn.Module] = []
    for module in template.layers:
        if isinstance(module, Linear):
            lin = nn.Linear(module.in_features, module.out_features)
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(np.asarray(module.params["weight"])))
                lin.bias.copy_(torch.from_numpy(np.asarray(module.params["bias"]))[0])
            layers.append(lin)
        elif isinstance(module, BatchNorm1d):
            layers.append(nn.BatchNorm1d(module.num_features, eps=module.eps, momentum=module.momentum))
        else:
            layers.append(TORCH_ACTIVATIONS[config.activation]())
    torch_dtype = getattr(torch, config.dtype)
    return nn.Sequential(*layers).to(device=where.device, dtype=torch_dtype)


class TorchLearner:
    """The training-loop interface (arrayml.training.Learner) for a torch.nn model."""

    def __init__(self, net: nn.Module, optimizer: torch.optim.Optimizer, where: backend.Placement) -> None:
        self.net, self.optimizer = net, optimizer
        self.loss = nn.CrossEntropyLoss()
        self.xp, self.device = where.xp, where.device

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


def torch_learner(config: RunConfig, where: backend.Placement) -> tuple[TorchLearner, dict[str, Any]]:
    net = build_torch_mlp(config, where)
    opt = torch.optim.SGD(net.parameters(), lr=config.lr, momentum=config.momentum, nesterov=config.nesterov,
                          weight_decay=config.weight_decay)
    info = {"implementation": "torch.nn reference", "parameters": sum(p.numel() for p in net.parameters()),
            "architecture": repr(net)}
    return TorchLearner(net, opt, where), info


if __name__ == "__main__":
    sys.exit(main(prog="torch_reference.py", description=__doc__.split("\n\n")[0], make_learner=torch_learner,
                  fixed={"xp": "torch", "reference": True}))
