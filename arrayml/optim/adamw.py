"""AdamW (Loshchilov & Hutter, 2019): Adam with *decoupled* weight decay, as
``torch.optim.AdamW``: before the Adam step of `arrayml.optim.Adam` (on the undecayed gradient),

    p ← p · (1 − lr · weight_decay)

instead of adding ``weight_decay · p`` to the gradient, where Adam's division by √v̂ would
shrink the decay of the parameters with large gradients (docs/derivations.md, "AdamW").
PyTorch's default decay, 0.01. State: as Adam's.
"""

from __future__ import annotations

from .adam import Adam


class AdamW(Adam):
    """Adam with decoupled weight decay; ``torch.optim.AdamW``'s defaults.

    Args:
        lr: learning rate, a positive finite number (default 1e-3).
        betas: decay rates (β₁, β₂) of the first and second moments, each in [0, 1).
        eps: added to the denominator, a positive finite number.
        weight_decay: decoupled decay rate, a finite number >= 0 (default 0.01).
        amsgrad: divide by the running maximum of the second moment.
        clip_grad_norm: None, or clip the gradients to this global norm first (`Optimizer`).
    """

    decoupled_weight_decay = True

    def __init__(
        self, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
        weight_decay: float = 1e-2, amsgrad: bool = False, *, clip_grad_norm: float | None = None,
    ) -> None:
        super().__init__(lr, betas, eps, weight_decay, amsgrad, clip_grad_norm=clip_grad_norm)
