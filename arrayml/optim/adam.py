"""Adam (Kingma & Ba, 2015), with PyTorch's conventions, so that a trajectory compares point by
point with ``torch.optim.Adam``.

For each parameter p with gradient g, at step t = 1, 2, ... (docs/derivations.md, "Adam"):

    g ← g + weight_decay · p                              (L2, coupled: Adam; AdamW decays p instead)
    m ← m + (1 − β₁)(g − m)                               (= β₁ m + (1 − β₁) g, written as torch's lerp)
    v ← β₂ v + (1 − β₂) g²
    v̂ ← max(v̂, v) with amsgrad, else v̂ = v
    p ← p − (lr / (1 − β₁ᵗ)) · m / (√v̂ / √(1 − β₂ᵗ) + ε)

m, v (and v̂) start at 0. ε is added to √v̂ after the bias correction, as PyTorch places it (not
inside the root, not before the correction). The step count t is a 0-D array in the state, so a
compiled step traces it rather than baking in a constant; `backend.adam_update` computes the bias
corrections from it on the device, in the widest float the namespace has (PyTorch computes them
in Python's float64), and updates all parameters in one call (on PyTorch, eager: its fused kernel).

State: ``{"step": t (0-D), "exp_avg": {name: m}, "exp_avg_sq": {name: v}}`` and, with amsgrad,
``"max_exp_avg_sq": {name: v̂}`` (PyTorch's names).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .. import backend, validate
from ..backend import Array
from .base import Optimizer, State, zero_slot
from .settings import Setting, flag, number


def check_betas(betas: Any, what: str) -> tuple[float, float]:
    """`betas` as two floats in [0, 1), or a `TypeError`/`ValueError` naming `what`."""
    if isinstance(betas, (str, bytes)) or not isinstance(betas, Sequence) or len(betas) != 2:
        raise TypeError(f"{what} must be a pair of numbers in [0, 1) such as (0.9, 0.999), got "
                        f"{type(betas).__name__} {betas!r}")
    return (validate.real_number(betas[0], f"{what}[0] (beta1)", low=0.0, high=1.0, high_open=True),
            validate.real_number(betas[1], f"{what}[1] (beta2)", low=0.0, high=1.0, high_open=True))


class Adam(Optimizer):
    """Adam with optional L2 weight decay and AMSGrad; ``torch.optim.Adam``'s defaults.

    Args:
        lr: learning rate, a positive finite number (default 1e-3).
        betas: decay rates (β₁, β₂) of the first and second moments, each in [0, 1).
        eps: added to the denominator, a positive finite number.
        weight_decay: L2 penalty added to the gradient, a finite number >= 0.
        amsgrad: divide by the running maximum of the second moment (Reddi et al., 2018).
        clip_grad_norm: None, or clip the gradients to this global norm first (`Optimizer`).

    Every setting is checked again when reassigned.

    Raises:
        TypeError: a setting has the wrong type.
        ValueError: a setting is out of its range.

    Example:
        The pure interface, on a dict of arrays (a model's ``parameters()``):

        >>> import numpy as np
        >>> import arrayml as am
        >>> opt = am.Adam(lr=0.1)
        >>> params = {"w": np.array([1.0, -1.0])}
        >>> state = opt.init(params)
        >>> sorted(state)
        ['exp_avg', 'exp_avg_sq', 'step']
        >>> params, state = opt.update({"w": np.array([0.5, -2.0])}, state, params, opt.lr)
        >>> params["w"]  # the first step moves each weight by lr against its gradient's sign
        array([ 0.9, -0.9])
    """

    #: AdamW sets this: the decay multiplies the parameters instead of adding to the gradient.
    decoupled_weight_decay = False
    betas = Setting(lambda opt, value, what: check_betas(value, what))
    eps = number(low=0.0, low_open=True)
    weight_decay = number(low=0.0)
    amsgrad = flag()
    step_counts = ("step",)
    second_moments = ("exp_avg_sq", "max_exp_avg_sq")

    def __init__(
        self, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
        weight_decay: float = 0.0, amsgrad: bool = False, *, clip_grad_norm: float | None = None,
    ) -> None:
        super().__init__(lr, clip_grad_norm=clip_grad_norm)
        self.betas, self.eps, self.weight_decay, self.amsgrad = betas, eps, weight_decay, amsgrad

    def init(self, params: Mapping[str, Array]) -> State:
        """The state before the first step: zero moments for every parameter and a step count of 0.

        Args:
            params: the parameters, by name.

        Returns:
            ``{"step": 0-D array, "exp_avg": {...}, "exp_avg_sq": {...}}`` (and ``"max_exp_avg_sq"``
            with AMSGrad).

        Raises:
            ValueError: `params` is empty.
        """
        first = next(iter(params.values()), None)
        if first is None:
            raise ValueError(f"{type(self).__name__}.init needs at least one parameter")
        xp, dev = backend.get_namespace_and_device(first)
        state: State = {
            "step": xp.zeros((), dtype=backend.widest_float(xp), device=dev),
            "exp_avg": zero_slot(params),
            "exp_avg_sq": zero_slot(params),
        }
        if self.amsgrad:
            state["max_exp_avg_sq"] = zero_slot(params)
        return state

    def apply_gradients(
        self, grads: Mapping[str, Array], state: State, params: Mapping[str, Array], lr: Any,
    ) -> tuple[dict[str, Array], State]:
        wd = self.weight_decay
        xp = backend.get_namespace(state["step"])
        t = xp.asarray(state["step"] + 1.0)  # a 0-D array again where NumPy returns a scalar
        names = list(params)
        ps, gs = [], []
        for name in names:
            p, g = params[name], grads[name]
            if wd:
                if self.decoupled_weight_decay:
                    p = p * (1.0 - lr * wd)  # AdamW: p ← p(1 − lr·λ), before the Adam step
                else:
                    g = g + wd * p
            ps.append(p)
            gs.append(g)
        max_sq = state.get("max_exp_avg_sq") if self.amsgrad else None
        new_p, new_m, new_v, new_max = backend.adam_update(
            ps, gs, [state["exp_avg"][n] for n in names], [state["exp_avg_sq"][n] for n in names],
            None if max_sq is None else [max_sq[n] for n in names],
            beta1=self.betas[0], beta2=self.betas[1], eps=self.eps, lr=lr, step=t, xp=xp)
        out: State = {"step": t, "exp_avg": dict(zip(names, new_m)), "exp_avg_sq": dict(zip(names, new_v))}
        if new_max is not None:
            out["max_exp_avg_sq"] = dict(zip(names, new_max))
        return dict(zip(names, new_p)), out

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "betas": self.betas, "eps": self.eps, "weight_decay": self.weight_decay,
                "amsgrad": self.amsgrad}
