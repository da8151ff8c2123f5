"""Every registered social env passes its conformance checker, made by id with its defaults."""

from __future__ import annotations

import pytest

import turnwise
from turnwise.testing import check_env, check_parallel_env

SOCIAL = [e for e in turnwise.list_envs("social")]


def test_the_family_has_its_envs() -> None:
    ids = {e.id for e in SOCIAL}
    assert {"turnwise/Dilemma-v0", "turnwise/Social-v0", "turnwise/TextArena-v0",
            "turnwise/SingleAgent-v0"} <= ids  # fmt: skip


@pytest.mark.parametrize("entry", SOCIAL, ids=lambda e: e.id)
def test_every_social_env_passes_its_checker(entry: turnwise.EnvEntry) -> None:
    if entry.missing():
        pytest.skip(f"{entry.id} needs {entry.missing()} (pip install 'turnwise[{entry.extra}]')")
    env = turnwise.make(entry.id)
    report = (check_parallel_env if entry.multi_agent else check_env)(env, n_tasks=1)
    assert report.ok
