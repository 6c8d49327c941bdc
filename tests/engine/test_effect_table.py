"""The effect table: every effect type the machine can emit has exactly one handler, declared for
that very type, and nothing else is in the table."""

from __future__ import annotations

import dataclasses
import inspect
import typing

from app.domain import effects
from app.domain.effects import EFFECT_TYPES, Effect
from app.engine.effects import HANDLERS, REPORTING


def test_the_effect_types_are_every_effect_class_the_machine_knows() -> None:
    classes = {
        cls
        for _, cls in inspect.getmembers(effects, inspect.isclass)
        if dataclasses.is_dataclass(cls) and issubclass(cls, effects._Effect)
    }
    assert set(typing.get_args(Effect)) == classes
    assert set(EFFECT_TYPES.values()) == classes
    assert all(name == cls.__name__ for name, cls in EFFECT_TYPES.items())


def test_every_effect_type_has_exactly_one_handler_and_the_table_nothing_else() -> None:
    assert set(HANDLERS) == set(EFFECT_TYPES.values())
    handlers = list(HANDLERS.values())
    assert len(handlers) == len(set(handlers))  # no handler serves two types
    assert REPORTING.issubset(HANDLERS)


def test_each_handler_is_declared_for_the_type_it_is_registered_under() -> None:
    for cls, handler in HANDLERS.items():
        hints = typing.get_type_hints(handler)
        assert hints["effect"] is cls, (cls.__name__, handler.__qualname__)
        assert handler.__module__.startswith("app.engine.effects."), handler.__module__
        assert list(inspect.signature(handler).parameters) == ["ctx", "env", "effect"]
