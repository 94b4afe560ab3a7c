"""An optimizer's settings, checked whenever they are assigned: in the constructor and after
(``opt.betas = (1.0, 0.999)`` is refused at once, naming the setting, and the old value stays).
Each is a `Setting` descriptor on the optimizer's class with the check of its values."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import validate


class Setting:
    """A setting of an optimizer, checked whenever it is assigned, in the constructor and after:
    the checked value is kept, a refused one raises (naming the setting) and the old value stays.

    Args:
        check: ``check(optimizer, value, what)`` returns the value to keep or raises; `what`
            names the setting in the error.
        label: the setting's name in errors (default: the attribute's name).
    """

    def __init__(self, check: Callable[[Any, Any, str], Any], label: str | None = None) -> None:
        self.check, self.label = check, label

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name
        self.label = self.label or name

    def __get__(self, obj: Any, objtype: type | None = None) -> Any:
        if obj is None:
            return self
        try:
            return obj.__dict__[self.name]
        except KeyError:
            raise AttributeError(f"{type(obj).__name__} has no {self.name} yet") from None

    def __set__(self, obj: Any, value: Any) -> None:
        obj.__dict__[self.name] = self.check(obj, value, f"{type(obj).__name__} {self.label}")


def number(**bounds: Any) -> Setting:
    """A setting that is a finite real number within `bounds` (`validate.real_number`'s)."""
    return Setting(lambda opt, value, what: validate.real_number(value, what, **bounds))


def flag() -> Setting:
    """A setting that is True or False."""
    return Setting(lambda opt, value, what: validate.boolean(value, what))


def rate() -> Setting:
    """A learning rate: a positive finite number."""
    return Setting(lambda opt, value, what: validate.learning_rate(value, what), "learning rate")


def positive_or_none() -> Setting:
    """None, or a finite number > 0 (a clipping norm)."""
    return Setting(lambda opt, value, what: None if value is None else validate.real_number(
        value, what, low=0.0, low_open=True))
