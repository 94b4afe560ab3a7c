"""The checks every layer runs on its arguments, by attribute comparisons only (no device read):
the namespace and device of a call's arrays, with errors that name the call and its arguments;
a forward input's dtype, rank and feature count; an upstream gradient's shape and dtype."""

from __future__ import annotations

from typing import Any

from .. import backend
from ..backend import Array, Namespace


def namespace_of(where: str, names: tuple[str, ...], *arrays: Array) -> Namespace:
    """The namespace of a call's arrays, with errors that name the call (``"Linear.forward"``)
    and the arguments (`names`, one per array: ``("input x", "weight", "bias")``). The first
    array is the caller's and may not be None."""
    if arrays[0] is None:
        raise TypeError(f"{where} expects {names[0]} as an array, got None")
    return backend.get_namespace(*arrays, names=names, what=where)


def check_input(
    x: Array, *, module: str, ndim: int | None = None, features: int | None = None,
    dtype: Any = None, xp: Any = None,
) -> None:
    """Validate a layer's input: floating dtype, number of dimensions, feature count, dtype equal
    to the parameters' (no silent promotion). Raises with expected vs got in the message."""
    backend.check_floating(x, module, xp=xp)
    shape = tuple(x.shape)
    if ndim is not None and len(shape) != ndim:
        raise ValueError(
            f"{module} expects a {ndim}-D input of shape (batch, features), got a "
            f"{len(shape)}-D array of shape {shape}"
        )
    if features is not None and shape[-1] != features and shape[-1] is not None:  # None: a graph's unknown size
        raise ValueError(
            f"{module} expects {features} input features, i.e. shape (batch, {features}), "
            f"got shape {shape}"
        )
    if dtype is not None and x.dtype != dtype:
        raise TypeError(
            f"{module} has {backend.dtype_name(dtype)} parameters but got a "
            f"{backend.dtype_name(x.dtype)} input; convert the input (xp.astype) or the model "
            f"(model.to(dtype=...)) so they match"
        )


def check_grad(dy: Array, like_shape: tuple[int, ...], *, module: str, dtype: Any = None) -> None:
    """Validate an upstream gradient: it must have the shape and (if given) the dtype of the
    forward output. A float64 `dy` into float32 layers would otherwise turn every gradient, and
    after the next SGD step every parameter, into float64."""
    if tuple(dy.shape) != tuple(like_shape) and not backend.shapes_match(dy.shape, like_shape):
        raise ValueError(
            f"{module}.backward expects a gradient of the forward output's shape "
            f"{tuple(like_shape)}, got shape {tuple(dy.shape)}"
        )
    if dtype is not None and dy.dtype != dtype:
        raise TypeError(
            f"{module}.backward expects a gradient of the forward output's dtype "
            f"{backend.dtype_name(dtype)}, got {backend.dtype_name(dy.dtype)}; convert it first "
            f"(xp.astype(dy, {backend.dtype_name(dtype)}))"
        )


def check_images(x: Array, *, module: str, channels: int | None = None, dtype: Any = None, xp: Any = None) -> None:
    """Validate a batch of images in PyTorch's layout, NCHW: floating, 4-D, `channels` along
    axis 1, of the parameters' `dtype`. A batch whose last axis has the expected channels is
    named NHWC (channels last, as image files store them), with the transpose that fixes it."""
    backend.check_floating(x, module, xp=xp)
    shape = tuple(x.shape)
    if len(shape) != 4:
        hint = ""
        if len(shape) == 2:
            hint = ("; rows of flattened images must be reshaped first, e.g. xp.reshape(x, (-1, "
                    f"{channels if channels is not None else 'channels'}, height, width))")
        raise ValueError(f"{module} expects a 4-D batch of images of shape (batch, channels, height, width), "
                         f"got a {len(shape)}-D array of shape {shape}{hint}")
    if channels is not None and shape[1] != channels:
        hint = ""
        if shape[3] == channels:
            hint = ("; the batch looks channels-last (NHWC, as image files store them): transpose it to NCHW "
                    "first, xp.permute_dims(x, (0, 3, 1, 2))")
        raise ValueError(f"{module} expects {channels} input channels, i.e. shape (batch, {channels}, height, width), "
                         f"got {shape[1]} channels in shape {shape}{hint}")
    check_input(x, module=module, dtype=dtype, xp=xp)
