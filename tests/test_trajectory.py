from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from turnwise.trajectory import (
    SCHEMA_VERSION,
    Trajectory,
    TrajectoryFormatError,
    Turn,
    read_jsonl,
    read_parquet,
    write_jsonl,
    write_parquet,
)

HOSTILE = [
    "",
    "plain",
    "nul\x00inside",
    "\x1b[31mred\x1b[0m",
    "\u202eright-to-left\u202c",
    "emoji 🧭 and CJK 中文",
    "; rm -rf / #",
    "<script>alert(1)</script>",
    "line\nbreaks\r\n\ttabs",
]


def sample(n_turns: int = 3, **kw) -> Trajectory:
    turns = [
        Turn(
            index=i,
            observation=HOSTILE[i % len(HOSTILE)],
            action=HOSTILE[(i + 3) % len(HOSTILE)],
            reward=0.1 + 0.2 * i,  # floats that are not exactly representable in decimal
            reward_terms={"progress": 1 / 3, "valid": -1.0 if i % 2 else 0.0},
            reward_weights={"valid": 0.1},
            valid=i % 2 == 0,
            state_key=f"room={i}" if i else None,
            terminated=i == n_turns - 1,
            prompt_token_ids=[1, 2**40, 3] if i else None,
            token_ids=[7, 8] if i else None,
            logprobs=[-1e-300, -12.5] if i else None,
            env_seconds=1e-6,
            info={"raw_action": "<action>x</action>", "nested": {"a": [1, None, True]}},
        )
        for i in range(n_turns)
    ]
    defaults = dict(
        env_id="turnwise/KeyDoor-v0",
        task_id="medium-train-00001",
        seed=2**31 - 1,
        turns=turns,
        env_version="1.2.3",
        instruction="Find the coin.",
        policy="hf:/models/tiny",
        group_id="g0",
        success=True,
        terminated=True,
        final_observation="You win.",
        metadata={"split": "train", "weights": [0.5, 0.25]},
    )
    defaults.update(kw)
    return Trajectory(**defaults)


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_lossless_round_trip(tmp_path: Path, fmt: str) -> None:
    trajs = [sample(), sample(0, seed=None, group_id=None, success=False), sample(9)]
    if fmt == "jsonl":
        back = read_jsonl(write_jsonl(trajs, tmp_path / "t.jsonl"))
    else:
        back = read_parquet(write_parquet(trajs, tmp_path / "t.parquet"))
    assert back == trajs
    assert back[0].turns[1].reward == 0.1 + 0.2  # bit-exact, not approximately
    assert back[0].turns[2].logprobs == [-1e-300, -12.5]
    assert back[0].turns[1].prompt_token_ids == [1, 2**40, 3]
    assert list(back[0].turns[0].reward_terms) == ["progress", "valid"]  # order kept


def test_lone_surrogates_become_replacement_characters(tmp_path: Path) -> None:
    traj = sample(1)
    traj.turns[0] = Turn(index=0, observation="a\ud800b", action="\udfff", reward=0.0)
    assert traj.turns[0].observation == "a\ufffdb" and traj.turns[0].action == "\ufffd"
    assert read_parquet(write_parquet([traj], tmp_path / "s.parquet")) == [traj]


def test_totals_and_actions() -> None:
    traj = sample(3)
    assert traj.num_turns == 3
    assert traj.total_reward == pytest.approx(0.1 + 0.3 + 0.5)
    assert traj.actions() == [HOSTILE[3], HOSTILE[4], HOSTILE[5]]


def test_token_and_logprob_lengths_must_agree() -> None:
    with pytest.raises(ValueError, match="2 token ids but 1 log-probs"):
        Turn(index=0, observation="", action="", reward=0.0, token_ids=[1, 2], logprobs=[0.0])


def test_parquet_loads_with_datasets(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets", reason="needs the `datasets` package")
    path = write_parquet([sample(), sample(2)], tmp_path / "shard-0.parquet")
    ds = datasets.load_dataset("parquet", data_files=str(path), split="train")
    assert len(ds) == 2
    assert ds[0]["turns"][1]["action"] == HOSTILE[4]
    assert ds[0]["turns"][0]["reward_terms"][0] == {"name": "progress", "value": 1 / 3}


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    data = sample().to_dict() | {"schema_version": SCHEMA_VERSION + 1}
    path = tmp_path / "new.jsonl"
    path.write_text(json.dumps(data) + "\n")
    with pytest.raises(TrajectoryFormatError, match="upgrade turnwise"):
        read_jsonl(path)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("cut.jsonl", '{"env_id": "x", "task', "not valid JSON"),
        ("other.jsonl", '{"hello": 1}\n', "not a turnwise trajectory"),
        ("bad.parquet", "PAR1 this is not parquet", "not a readable Parquet file"),
    ],
)
def test_broken_files_get_clear_errors(
    tmp_path: Path, name: str, content: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(content)
    reader = read_jsonl if name.endswith(".jsonl") else read_parquet
    with pytest.raises(TrajectoryFormatError, match=message):
        reader(path)


def test_foreign_parquet_is_refused(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"a": [1, 2]}), tmp_path / "foreign.parquet")
    with pytest.raises(TrajectoryFormatError, match="not a turnwise trajectory"):
        read_parquet(tmp_path / "foreign.parquet")


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path: Path) -> None:
    good = tmp_path / "t.parquet"
    write_parquet([sample()], good)
    before = good.read_bytes()
    broken = sample()
    broken.turns[0].reward = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        write_parquet([broken], good)
    with pytest.raises(ValueError, match="non-finite"):
        write_jsonl([broken], tmp_path / "t.jsonl")
    broken.turns[0].reward = 0.0
    broken.metadata = {"not_json": object()}
    with pytest.raises(TypeError):
        write_jsonl([broken], tmp_path / "t.jsonl")
    assert good.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["t.parquet"]


def test_written_files_have_ordinary_permissions(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        for path in (
            write_parquet([sample()], tmp_path / "p.parquet"),
            write_jsonl([sample()], tmp_path / "j.jsonl"),
        ):
            assert path.stat().st_mode & 0o777 == 0o644
    finally:
        os.umask(old)
