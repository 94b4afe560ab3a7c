"""Checks of settings (sizes, rates, flags) shared by every constructor: each returns the value
in its plain Python type, or raises a `TypeError` or `ValueError` that names the setting, what
it must be and what came. Not array questions: those are `arrayml.backend`'s."""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np


def positive_int(value: Any, what: str) -> int:
    """`value` as a Python int if it is a positive integer (NumPy integers too, not bools, not
    floats); otherwise a `TypeError` or `ValueError` naming `what`, the value and its type.

    Args:
        value: the setting.
        what: its name in the error (``"Linear in_features"``).

    Returns:
        `value` as an int.

    Raises:
        TypeError: `value` is not an integer (a bool, a float, a string).
        ValueError: `value` is < 1.

    Example:
        >>> from arrayml import validate
        >>> validate.positive_int(3, "hidden size")
        3
        >>> validate.positive_int(0, "hidden size")
        Traceback (most recent call last):
        ...
        ValueError: hidden size must be a positive integer, got 0
    """
    return _int_at_least(value, what, 1, "positive")


def _int_at_least(value: Any, what: str, low: int, kind: str) -> int:
    """`value` as a Python int if it is an integer (not a bool) >= `low`; errors say it must be
    a `kind` integer."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{what} must be a {kind} integer, got {type(value).__name__} {value!r}")
    if value < low:
        raise ValueError(f"{what} must be a {kind} integer, got {value!r}")
    return int(value)


def real_number(
    value: Any, what: str, *, low: float | None = None, high: float | None = None,
    low_open: bool = False, high_open: bool = False,
) -> float:
    """`value` as a Python float if it is a finite real number (Python's or NumPy's; not a bool,
    not a string, not an array) within ``[low, high]`` (open ends where `low_open` /
    `high_open`); otherwise a `TypeError` or `ValueError` naming `what`, the value and the range.

    Args:
        value: the setting.
        what: its name in the error.
        low, high: the bounds of the range (None: unbounded on that side).
        low_open, high_open: whether that bound is excluded.

    Returns:
        `value` as a float.

    Raises:
        TypeError: `value` is not a real number (a bool, a string, an array).
        ValueError: `value` is NaN, infinite or outside the range.

    Example:
        >>> from arrayml import validate
        >>> validate.real_number(0.9, "momentum", low=0.0, high=1.0, high_open=True)
        0.9
        >>> validate.real_number(1, "momentum", low=0.0, high=1.0, high_open=True)
        Traceback (most recent call last):
        ...
        ValueError: momentum must be a finite number in [0, 1), got 1
    """
    lo = "" if low is None else ("(" if low_open else "[") + f"{low:g}, "
    hi = "" if high is None else f"{high:g}" + (")" if high_open else "]")
    if low is not None and high is None:
        hi = "inf)"
    if high is not None and low is None:
        lo = "(-inf, "
    wanted = f"a finite number in {lo}{hi}" if lo or hi else "a finite number"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{what} must be {wanted}, got {type(value).__name__} {value!r}")
    v = float(value)
    if not math.isfinite(v) or (low is not None and (v <= low if low_open else v < low)) or (
        high is not None and (v >= high if high_open else v > high)
    ):
        raise ValueError(f"{what} must be {wanted}, got {value!r}")
    return v


def boolean(value: Any, what: str) -> bool:
    """`value` if it is a bool (NumPy's too); otherwise a `TypeError` naming `what` (so that
    ``batch_norm="no"`` is not read as True).

    Args:
        value: the flag.
        what: its name in the error.

    Returns:
        `value` as a bool.

    Raises:
        TypeError: `value` is not a bool.
    """
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{what} must be True or False, got {type(value).__name__} {value!r}")
    return bool(value)


def learning_rate(lr: Any, what: str = "learning rate", *, zero_ok: bool = False) -> float:
    """A learning rate: a finite real number (not a bool, not a string, not an array), positive,
    or non-negative where `zero_ok` (a schedule's warm-up starts at 0).

    Args:
        lr: the rate.
        what: its name in the error.
        zero_ok: whether 0 is allowed.

    Returns:
        `lr` as a float.

    Raises:
        ValueError: `lr` is not a real number, or is NaN, infinite, negative, or 0 without
            `zero_ok`.
    """
    if type(lr) is float and math.isfinite(lr) and (lr >= 0 if zero_ok else lr > 0):
        return lr  # the usual case, checked per step: no further questions
    if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not (
        math.isfinite(float(lr)) and (float(lr) >= 0 if zero_ok else float(lr) > 0)
    ):
        kind = "non-negative" if zero_ok else "positive"
        raise ValueError(f"{what} must be a {kind} finite number, got {type(lr).__name__} {lr!r}")
    return float(lr)


def non_negative_int(value: Any, what: str) -> int:
    """`value` as a Python int if it is an integer ≥ 0 (NumPy integers too, not bools, not
    floats); otherwise a `TypeError` or `ValueError` naming `what`.

    Args:
        value: the setting.
        what: its name in the error.

    Returns:
        `value` as an int.

    Raises:
        TypeError: `value` is not an integer.
        ValueError: `value` is negative.
    """
    return _int_at_least(value, what, 0, "non-negative")


#: A random seed: a non-negative integer (NumPy integers too, not bools), as `non_negative_int` checks it.
seed = non_negative_int


def int_pair(value: Any, what: str, *, positive: bool = True) -> tuple[int, int]:
    """A setting of a 2-D sliding window (kernel size, stride, padding, dilation), as PyTorch
    takes it: one integer for both axes or a pair ``(height, width)``; returned as a pair of
    Python ints, each positive (or, with ``positive=False``, non-negative: padding). Anything
    else is a `TypeError` or `ValueError` naming `what`.

    Args:
        value: one integer, or a pair of them.
        what: the setting's name in the error.
        positive: whether each must be >= 1 (True) or >= 0 (False).

    Returns:
        ``(height, width)``, Python ints.

    Raises:
        TypeError: `value` or an entry is not an integer.
        ValueError: a sequence of other than two values, or an entry out of range.

    Example:
        >>> from arrayml import validate
        >>> validate.int_pair(3, "kernel_size"), validate.int_pair((1, 0), "padding", positive=False)
        ((3, 3), (1, 0))
    """
    check = positive_int if positive else non_negative_int
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{what} must be one integer or a pair (height, width), got {len(value)} values {value!r}")
        return check(value[0], f"{what}[0]"), check(value[1], f"{what}[1]")
    one = check(value, what)
    return one, one
