from __future__ import annotations

import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.spaces.utils import flatdim

from turnwise.spaces import String, image_space, text_observation_space


def test_string_accepts_any_unicode_up_to_max_length() -> None:
    space = String(max_length=10)
    assert space.contains("hello üñí")
    assert space.contains("")
    assert space.contains("\x00\x1b[31m")
    assert not space.contains("x" * 11)
    assert not space.contains(b"bytes")
    assert not space.contains(None)
    assert "hi world" in space  # gymnasium's spaces.Text(10) rejects the space character


def test_min_length_and_bad_bounds() -> None:
    assert not String(5, min_length=2).contains("a")
    with pytest.raises(ValueError, match="min_length"):
        String(3, min_length=4)


def test_sample_is_seeded_and_in_space() -> None:
    a, b = String(100, seed=3), String(100, seed=3)
    samples = [a.sample() for _ in range(20)]
    assert samples == [b.sample() for _ in range(20)]
    assert all(a.contains(s) for s in samples)
    assert len(set(samples)) > 1
    assert all(len(String(4, seed=i).sample()) <= 4 for i in range(20))


def test_equality_and_repr() -> None:
    assert String(5) == String(5)
    assert String(5) != String(6)
    assert "max_length=5" in repr(String(5))


def test_flattening_is_refused_clearly() -> None:
    with pytest.raises(ValueError, match="free text"):
        flatdim(String(5))


def test_observation_space_shapes() -> None:
    plain = text_observation_space()
    assert isinstance(plain, spaces.Dict) and set(plain.spaces) == {"text"}
    visual = text_observation_space(image=(4, 6))
    assert visual["image"] == image_space(4, 6)
    obs = {"text": "hi", "image": np.zeros((4, 6, 3), dtype=np.uint8)}
    assert visual.contains(obs)
    assert not visual.contains({"text": "hi", "image": np.zeros((4, 6), dtype=np.uint8)})
