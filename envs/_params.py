"""Constructor-argument helpers shared by the procedurally generated envs."""

from __future__ import annotations

__all__ = ["CountRange", "count_range"]

CountRange = int | tuple[int, int]
"""A count (`3`) or an inclusive range to draw it from (`(2, 4)`)."""


def count_range(name: str, value: object) -> tuple[int, int]:
    """`value` as an inclusive `(min, max)` pair; a clear `TypeError` for anything else.

    Example:
        >>> count_range("n_rooms", 3), count_range("n_rooms", (2, 4))
        ((3, 3), (2, 4))
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return (value, value)
    if (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        return (int(value[0]), int(value[1]))
    raise TypeError(f"{name} must be an int or a (min, max) pair of ints, got {value!r}")
