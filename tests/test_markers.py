"""Marked tests skip with a reason naming what is missing, and run where it is present."""

from __future__ import annotations

import pytest

from turnwise.testing.requirements import REQUIREMENTS, missing


def test_every_marker_has_a_requirement_and_unknown_markers_need_nothing() -> None:
    assert set(REQUIREMENTS) == {"gpu", "vllm", "docker", "browser", "gui", "ray", "sandbox"}
    assert missing("slow") is None


def test_reasons_name_what_is_missing() -> None:
    for marker in REQUIREMENTS:
        reason = missing(marker)
        assert reason is None or reason.startswith("needs "), (marker, reason)


@pytest.mark.docker
def test_docker_engine_answers() -> None:
    import docker

    assert docker.from_env().ping()


@pytest.mark.gpu
def test_cuda_device_computes() -> None:
    import torch

    x = torch.ones(4, device="cuda")
    assert float((x * 2).sum()) == 8.0
