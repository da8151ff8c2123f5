"""Spaces for text-in, text-out environments.

Gymnasium's `spaces.Text` only admits a fixed character set (alphanumerics by default), so
"hello world" is not in it. Agents speak arbitrary Unicode, so turnwise uses `String`, which
admits any `str` up to a maximum length.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.spaces.utils import flatdim, flatten, flatten_space, unflatten

__all__ = ["DEFAULT_MAX_LENGTH", "String", "image_space", "text_observation_space"]

#: Default upper bound on the length of an action or observation string, in characters.
DEFAULT_MAX_LENGTH = 1 << 20

# Characters `String.sample` draws from: ASCII letters and space plus a few non-ASCII letters,
# so that sampled actions exercise Unicode handling without being mostly unprintable.
_SAMPLE_ALPHABET = "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789éßøλжא中"


class String(spaces.Space[str]):
    """Any Python `str` of at most `max_length` characters.

    Example:
        >>> from turnwise.spaces import String
        >>> space = String(max_length=32)
        >>> space.contains("hello world — ünïcödé ✓")
        True
        >>> space.contains("x" * 33), space.contains(b"bytes")
        (False, False)
    """

    def __init__(
        self, max_length: int = DEFAULT_MAX_LENGTH, *, min_length: int = 0, seed: int | None = None
    ) -> None:
        if not 0 <= min_length <= max_length:
            raise ValueError(f"need 0 <= min_length <= max_length, got {min_length}, {max_length}")
        self.max_length = int(max_length)
        self.min_length = int(min_length)
        super().__init__(dtype=None, seed=seed)

    @property
    def is_np_flattenable(self) -> bool:
        return False

    def sample(self, mask: Any = None, probability: Any = None) -> str:
        """A random string of up to 16 characters (or `max_length`, if smaller)."""
        if mask is not None or probability is not None:
            raise NotImplementedError("String.sample does not support masks")
        high = max(self.min_length, min(self.max_length, 16))
        length = int(self.np_random.integers(self.min_length, high + 1))
        idx = self.np_random.integers(0, len(_SAMPLE_ALPHABET), size=length)
        return "".join(_SAMPLE_ALPHABET[i] for i in idx)

    def contains(self, x: Any) -> bool:
        return isinstance(x, str) and self.min_length <= len(x) <= self.max_length

    def to_jsonable(self, sample_n: Any) -> list[str]:
        return list(sample_n)

    def from_jsonable(self, sample_n: list[str]) -> list[str]:
        return list(sample_n)

    def __repr__(self) -> str:
        return f"String(max_length={self.max_length}, min_length={self.min_length})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, String)
            and other.max_length == self.max_length
            and other.min_length == self.min_length
        )

    __hash__ = None  # type: ignore[assignment]


def image_space(height: int, width: int) -> spaces.Box:
    """An RGB screenshot: uint8, shape (height, width, 3)."""
    return spaces.Box(0, 255, shape=(height, width, 3), dtype=np.uint8)


def text_observation_space(
    max_length: int = DEFAULT_MAX_LENGTH, *, image: tuple[int, int] | None = None
) -> spaces.Dict:
    """The observation space of a turnwise env: `{"text": String}` (+ `"image"` when visual)."""
    parts: dict[str, spaces.Space[Any]] = {"text": String(max_length)}
    if image is not None:
        parts["image"] = image_space(*image)
    return spaces.Dict(parts)


# Flattening a String is meaningless; tell Gymnasium so instead of failing obscurely.
@flatdim.register(String)
def _flatdim_string(space: String) -> int:
    raise ValueError("String spaces cannot be flattened: they hold free text")


@flatten.register(String)
def _flatten_string(space: String, x: str) -> str:  # type: ignore[misc]
    return x


@unflatten.register(String)
def _unflatten_string(space: String, x: str) -> str:  # type: ignore[misc]
    return x


@flatten_space.register(String)
def _flatten_space_string(space: String) -> String:
    return space
