"""`turnwise match`: agents by spec in every seat, a judge by spec, the table and the JSON lines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from turnwise.cli import main

pytest.importorskip("textarena", reason="needs textarena (pip install 'turnwise[social]')")

SCORES = {"goal": 9, "believability": 8, "knowledge": 3, "secret": 0, "relationship": 2,
          "social_rules": 0, "financial": 1}  # fmt: skip
NEGOTIATION = '{"game": "SimpleNegotiation-v0"}'


def test_two_scripted_negotiators_both_gain(tmp_path: Path, capsys: Any) -> None:
    out = tmp_path / "match.jsonl"
    args = ["match", "turnwise/TextArena-v0", "--env-kwargs", NEGOTIATION, "--seat",
            "player_0=negotiator", "player_1=negotiator", "--episodes", "3", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "3 episodes" in text and "negotiator" in text and "3/3" in text
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 3 and all(r["task_id"].startswith("test/") for r in rows)
    for row in rows:
        assert row["success"] == {"player_0": True, "player_1": True}
        assert all(value > 0 for value in row["returns"].values())


def test_a_model_can_take_a_seat() -> None:
    pytest.importorskip("transformers")
    from turnwise.agents.tiny import default_checkpoint

    spec = f"hf:{default_checkpoint()}"
    args = ["match", "turnwise/TextArena-v0", "--env-kwargs", NEGOTIATION, "--seat",
            f"player_0={spec}", "player_1=negotiator", "--task", "test/0000"]  # fmt: skip
    assert main(args) == 0


def test_bad_seats_and_specs_are_usage_errors(capsys: Any) -> None:
    assert main(["match", "turnwise/Dilemma-v0", "--seat", "player_9=random"]) == 2
    assert "has no seats ['player_9']" in capsys.readouterr().err
    assert main(["match", "turnwise/Dilemma-v0", "--seat", "player_0=negotiator"]) == 2
    err = capsys.readouterr().err
    assert "unknown agent spec 'negotiator'" in err and "tit-for-tat" in err
    assert main(["match", "turnwise/KeyDoor-v0"]) == 2
    assert "single-agent env" in capsys.readouterr().err


def test_a_judged_scenario_with_a_judge_by_spec(
    chat_server: Any, tmp_path: Path, capsys: Any
) -> None:
    chat_server.default = json.dumps({"agent_1": SCORES, "agent_2": {**SCORES, "goal": 2}})
    chat_server.usage = {"prompt_tokens": 500, "completion_tokens": 60, "total_tokens": 560}
    judge_url = chat_server.url
    out = tmp_path / "social.jsonl"
    args = ["match", "turnwise/Social-v0", "--judge", f"openai:{judge_url}/v1#judge",
            "--env-kwargs", '{"max_turns": 4}', "--episodes", "2", "--transcript",
            "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "9.00" in text and "2.00" in text  # the mean judged goal of each seat
    assert "judge: 2 calls, 0 cached, 0 retries, 0 missing; 1000 prompt + 120 completion" in text
    assert "Turn 4:" in text
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows[0]["judge"]["player_1"]["scores"]["goal"] == 2.0
    assert rows[0]["success"] == {"player_0": True, "player_1": False}
