"""Containers: `Sequential`, `Residual` and the `MLP` built from them.

Sequential backward runs the children's backward in reverse order (the chain rule);
Residual adds the skip path's gradient: for ``y = x + f(x)``, ``dx = dy + f'(x)ᵀ dy``
(docs/derivations.md, "Residual connection").
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from .. import backend, validate
from ..backend import Array, Seed
from .activations import Activation, activation_by_name, activation_config, activation_from_config
from .architecture import build
from .base import Module
from .batchnorm import BatchNorm1d
from .checks import check_grad, namespace_of
from .dropout import Dropout
from .flatten import explain_after_flatten
from .init import check_init
from .layernorm import LayerNorm
from .linear import Linear


class Sequential(Module):
    """Modules applied one after the other; named ``"0"``, ``"1"``, ... in `parameters`.

    Args:
        *modules: the layers, in the order the input goes through them.

    Raises:
        TypeError: an item is not an arrayml `Module`.

    Example:
        >>> import numpy as np
        >>> import arrayml as am
        >>> model = am.Sequential(am.Linear(4, 8), am.ReLU(), am.Linear(8, 3))
        >>> model(np.ones((2, 4), dtype=np.float32)).shape
        (2, 3)
        >>> list(model.parameters())
        ['0.weight', '0.bias', '2.weight', '2.bias']
    """

    def __init__(self, *modules: Module) -> None:
        super().__init__()
        for i, m in enumerate(modules):
            if not isinstance(m, Module):
                raise TypeError(f"Sequential item {i} is a {type(m).__name__}, not an arrayml Module")
        self.layers: list[Module] = list(modules)

    def children(self) -> list[tuple[str, Module]]:
        return [(str(i), m) for i, m in enumerate(self.layers)]

    def forward(self, x: Array) -> Array:
        for i, layer in enumerate(self.layers):
            try:
                x = layer.forward(x)
            except ValueError as exc:  # a Linear that does not fit the Flatten before it: say what does
                clearer = explain_after_flatten(self.layers[i - 1], layer, exc) if i else None
                if clearer is None:
                    raise
                raise clearer from exc
        return x

    def backward(self, dy: Array, *, input_grad: bool = True) -> Array | None:
        """Chain rule, last layer first. Each layer's gradients are reported to the gradient hook as
        soon as they are computed (`Module.child_backward`): data-parallel training starts that
        layer's all-reduce there, while the layers before it still compute.

        Args:
            dy: dL/d(output) of the last forward.
            input_grad: whether the first layer computes its input gradient (the others always do).

        Returns:
            dL/d(input), or None when ``input_grad=False``.
        """
        for i in range(len(self.layers) - 1, -1, -1):
            dy = self.child_backward(str(i), self.layers[i], dy, input_grad=input_grad or i > 0)
        return dy

    def _set_children(self, children: list[Module]) -> None:
        self.layers = list(children)

    def config(self) -> dict[str, Any]:
        return {"type": self.config_type(), "layers": [m.config() for m in self.layers]}

    @classmethod
    def from_config(cls, config: Mapping[str, Any], **placement: Any) -> Module:
        return cls(*[build(c, **placement) for c in config["layers"]])

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, i: int) -> Module:
        return self.layers[i]

    @property
    def in_features(self) -> int | None:
        """The input features of the first layer that has them (None if none does)."""
        return _features(self.layers, "in_features")

    @property
    def out_features(self) -> int | None:
        """The output features of the last layer that has them (None if none does)."""
        return _features(self.layers[::-1], "out_features")

    @property
    def input_shape(self) -> tuple[int, ...] | None:
        """One sample's shape, as the first layer that knows it says: ``(in_features,)`` for
        rows, ``(C, H, W)`` for images (`CNN`); None when the first layer that takes images does
        not fix their size (`Conv2d`), or no layer says."""
        for m in self.layers:
            shape = getattr(m, "input_shape", None)
            if shape is not None:
                return tuple(shape)
            if hasattr(m, "input_shape"):
                return None
            features = getattr(m, "in_features", None)
            if features is not None:
                return (features,)
        return None


def _features(layers: Sequence[Module], attr: str) -> int | None:
    for m in layers:
        value = getattr(m, attr, None)
        if value is not None:
            return value
    return None


class Residual(Module):
    """``y = x + block(x)``: the block must map its input shape to the same shape.

    Args:
        block: the module (a layer or a `Sequential`) whose output is added to its input.

    Raises:
        TypeError: `block` is not an arrayml `Module`.
        ValueError: the block says it maps one number of features to another.
    """

    def __init__(self, block: Module) -> None:
        super().__init__()
        if not isinstance(block, Module):
            raise TypeError(f"Residual needs an arrayml Module, got {type(block).__name__}")
        fin, fout = getattr(block, "in_features", None), getattr(block, "out_features", None)
        if fin is not None and fout is not None and fin != fout:
            raise ValueError(
                f"Residual block must keep the shape of its input, but it maps {fin} features "
                f"to {fout}"
            )
        self.block = block

    def children(self) -> list[tuple[str, Module]]:
        return [("block", self.block)]

    def _set_children(self, children: list[Module]) -> None:
        (self.block,) = children

    def config(self) -> dict[str, Any]:
        return {"type": self.config_type(), "block": self.block.config()}

    @classmethod
    def from_config(cls, config: Mapping[str, Any], **placement: Any) -> Module:
        return cls(build(config["block"], **placement))

    def forward(self, x: Array) -> Array:
        y = self.block.forward(x)
        if tuple(y.shape) != tuple(x.shape) and not backend.shapes_match(y.shape, x.shape):
            raise ValueError(
                f"Residual block must keep the shape of its input: got input shape "
                f"{tuple(x.shape)} and block output shape {tuple(y.shape)}"
            )
        self._cache = (tuple(x.shape), y.dtype)
        return x + y

    def backward(self, dy: Array, *, input_grad: bool = True) -> Array | None:
        shape, dtype = self._saved()
        namespace_of("Residual.backward", ("dy",), dy)
        check_grad(dy, shape, module="Residual", dtype=dtype)
        block_dx = self.child_backward("block", self.block, dy, input_grad=input_grad)
        return dy + block_dx if input_grad else None

    @property
    def in_features(self) -> int | None:
        """The block's input features (the same as its output features), or None."""
        return getattr(self.block, "in_features", None)

    out_features = in_features


def hidden_sizes(n_hidden: Iterable[int] | int, what: str) -> list[int]:
    """`n_hidden` as a list of positive ints: one size (an int, NumPy's too) or a sequence of
    them; anything else is a `TypeError` naming `what`."""
    if isinstance(n_hidden, numbers.Integral) and not isinstance(n_hidden, bool):
        return [validate.positive_int(n_hidden, f"{what} n_hidden")]
    if isinstance(n_hidden, (str, bytes)) or not isinstance(n_hidden, Iterable):
        raise TypeError(
            f"{what} n_hidden must be a list of positive integers (e.g. [128]) or one integer, "
            f"got {type(n_hidden).__name__} {n_hidden!r}"
        )
    return [validate.positive_int(h, f"{what} n_hidden[{i}]") for i, h in enumerate(n_hidden)]


def mlp_layers(
    sizes: Sequence[int], n_classes: int, *, linear: Callable[[int, int, bool], Module],
    activation: Callable[[], Module], norm: Callable[[int], Module] | None = None,
    dropout: Callable[[], Module] | None = None,
) -> list[Module]:
    """The layers of a multi-layer perceptron: for each pair of consecutive `sizes`,
    ``linear(fan_in, fan_out, input_layer)``, then ``norm(fan_out)`` if given, then
    ``activation()``, then ``dropout()`` if given; last a ``linear`` to `n_classes`. The first
    linear is the input layer."""
    layers: list[Module] = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(linear(fan_in, fan_out, i == 0))
        if norm is not None:
            layers.append(norm(fan_out))
        layers.append(activation())
        if dropout is not None:
            layers.append(dropout())
    layers.append(linear(sizes[-1], n_classes, len(sizes) == 1))
    return layers


def built_from_arguments(cls: type[Module], config: Mapping[str, Any], **placement: Any) -> Module:
    """A network that a builder's arguments describe (`MLP`, `CNN`: their config is
    ``Module.config``, the arguments alone), its activation back from its record.

    Args:
        config: the architecture, as `config` writes it.
        **placement: xp, device and dtype for the constructor.

    Returns:
        The new network, with fresh parameters.
    """
    args = {k: v for k, v in config.items() if k != "type"}
    args["activation"] = activation_from_config(args.get("activation", "relu"))
    return cls(**args, **placement)


class MLP(Sequential):
    """Multi-layer perceptron returning logits (pair it with `SoftmaxCrossEntropy`).

    ``Linear → [BatchNorm1d | LayerNorm] → activation → [Dropout]`` for each hidden size, then a
    final ``Linear``; ``n_hidden=[]`` is multinomial logistic regression. With the default
    ``init="kaiming"`` the first Linear gets the input layer's initialisation N(0, 1/in), later
    ones N(0, 2/in).

    Args:
        n_inputs: input features (3072 for CIFAR-10).
        n_hidden: hidden layer sizes, e.g. ``[128]`` or ``[512, 256, 128]`` (or one int).
        n_classes: output size.
        activation: ``"relu"``, ``"elu"``, ``"leaky_relu"``, ``"tanh"``, ``"sigmoid"``, ``"gelu"``,
            ``"identity"`` (any name in `ACTIVATIONS`), or an `Activation` class.
        batch_norm: put a `BatchNorm1d` between each hidden Linear and its activation.
        batch_norm_sync: for data-parallel training, the function that sums a list of arrays
            over the processes (`arrayml.distributed.ProcessGroup.batch_norm_sync`): every
            batch norm then normalises with the statistics of the whole global batch.
        layer_norm: put a `LayerNorm` there instead (not with batch_norm).
        dropout: put a `Dropout` of this probability after each hidden activation (0: none).
        init: the Linear layers' initialiser, ``"kaiming"``, ``"xavier"`` or ``"torch"``
            (`arrayml.modules.init`).
        xp, device, dtype: where the parameters live (default NumPy, CPU, float32).
        rng: generator or int seed for the initial weights (default seed 0); the dropout layers'
            own streams are seeded from it without changing the weights.

    Raises:
        TypeError: a setting has the wrong type.
        ValueError: a setting is out of range or unknown, ``batch_norm_sync`` without
            ``batch_norm``, or both ``batch_norm`` and ``layer_norm``.

    Example:
        >>> import numpy as np
        >>> import arrayml as am
        >>> model = am.MLP(4, [16], 3, dropout=0.1, rng=0)
        >>> model
        MLP(
          (0): Linear(4, 16, input_layer=True)
          (1): ReLU()
          (2): Dropout(p=0.1)
          (3): Linear(16, 3)
        )
        >>> model.predict(np.ones((5, 4), dtype=np.float32)).shape
        (5,)
    """

    def __init__(
        self, n_inputs: int, n_hidden: Iterable[int] | int, n_classes: int, *,
        activation: str | type[Activation] = "relu", batch_norm: bool = False,
        batch_norm_sync: Callable[[list[Array]], list[Array]] | None = None, layer_norm: bool = False,
        dropout: float = 0.0, init: str = "kaiming",
        xp: Any = None, device: Any = None, dtype: Any = None, rng: Seed = None,
    ) -> None:
        n_inputs = validate.positive_int(n_inputs, "MLP n_inputs")
        n_classes = validate.positive_int(n_classes, "MLP n_classes")
        hidden = hidden_sizes(n_hidden, "MLP")
        activation_by_name(activation)  # an unknown name fails here, before any weight is drawn
        batch_norm = validate.boolean(batch_norm, "MLP batch_norm")
        layer_norm = validate.boolean(layer_norm, "MLP layer_norm")
        dropout = validate.real_number(dropout, "MLP dropout", low=0.0, high=1.0, high_open=True)
        init = check_init(init, "MLP init")
        if batch_norm_sync is not None and not batch_norm:
            raise ValueError("MLP batch_norm_sync synchronizes batch norm layers: it needs batch_norm=True")
        if batch_norm and layer_norm:
            raise ValueError("MLP takes batch_norm=True or layer_norm=True, not both: each hidden Linear is "
                             "followed by one normalisation")
        where = backend.placement(xp, device, dtype)
        gen = backend.as_generator(rng)
        put = {"xp": where.xp, "device": where.device, "dtype": where.dtype}
        norm: Callable[[int], Module] | None = None
        if batch_norm:
            norm = lambda n: BatchNorm1d(n, sync=batch_norm_sync, **put)  # noqa: E731
        elif layer_norm:
            norm = lambda n: LayerNorm(n, **put)  # noqa: E731
        super().__init__(*mlp_layers(
            [n_inputs, *hidden], n_classes,
            linear=lambda fan_in, fan_out, first: Linear(fan_in, fan_out, input_layer=first, init=init, rng=gen, **put),
            activation=lambda: activation_by_name(activation), norm=norm,
            dropout=(lambda: Dropout(dropout, rng=gen)) if dropout else None,
        ))
        self.n_inputs, self.n_hidden, self.n_classes = n_inputs, hidden, n_classes
        self.activation, self.batch_norm = activation, bool(batch_norm)
        self.layer_norm, self.dropout, self.init = layer_norm, dropout, init

    def arguments(self) -> dict[str, Any]:
        args = {"n_inputs": self.n_inputs, "n_hidden": list(self.n_hidden), "n_classes": self.n_classes,
                "activation": activation_config(self.activation), "batch_norm": self.batch_norm}
        # the later options only where they are not the defaults (earlier architectures stay as they were)
        for key, default in (("layer_norm", False), ("dropout", 0.0), ("init", "kaiming")):
            if getattr(self, key) != default:
                args[key] = getattr(self, key)
        return args

    config = Module.config  # the arguments rebuild the layers: no need to list them
    from_config = classmethod(built_from_arguments)
