"""`turnwise demo`, the main job: every stage runs for real at a small scale (a tiny model, a few
tasks, one RL iteration); that the full-size run learns is measured by `make demo` and recorded
in docs/demo.md."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import turnwise
from turnwise.cli import main
from turnwise.cli.demo import DEMO_ENV, DEMO_ENV_KWARGS, TINY_RECIPE, DemoConfig
from turnwise.trainers.metrics import read_metrics
from turnwise.trajectory import read_jsonl

SMALL = [
    "--sft-tasks", "4", "--sft-epochs", "1", "--iterations", "2", "--tasks-per-iteration", "2",
    "--group-size", "2", "--eval-tasks", "3", "--curve-every", "1", "--workers", "1",
]  # fmt: skip


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("demo") / "run"
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert main(["demo", "--out", str(out), *SMALL]) == 0
    return out, buffer.getvalue()


def test_demo_runs_every_stage_and_writes_its_files(demo_run: tuple[Path, str]) -> None:
    out, printed = demo_run
    for stage in ("[1/5] model", "[2/5] SFT", "[3/5] LOOP", "[4/5] evaluating"):
        assert stage in printed
    for label in ("expert", "random", "SFT", "SFT + LOOP"):
        assert label in printed
    assert "RL − SFT" in printed and "95% CI" in printed
    assert (out / "sft" / "sft.json").is_file()
    assert len(read_jsonl(out / "sft" / "demonstrations.jsonl")) == 4
    assert (out / "rl" / "checkpoints" / "iter-00002" / "model.safetensors").is_file()
    evals = [m for m in read_metrics(out / "rl") if "eval/success_rate" in m]
    assert [m["step"] for m in evals] == [0, 1, 2]  # the curve's held-out points
    assert (out / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (out / "leaderboard" / "index.html").read_text(encoding="utf-8")
    assert all(label in page for label in ("expert", "random", "SFT + LOOP"))
    summary = json.loads((out / "summary.json").read_text())
    assert [r["name"] for r in summary["rows"]] == ["expert", "random", "sft", "rl"]
    assert set(summary["rl_minus_sft"]) == {"mean", "ci_low", "ci_high"}
    assert summary["env_kwargs"] == DEMO_ENV_KWARGS


def test_every_policy_plays_the_same_held_out_episodes(demo_run: tuple[Path, str]) -> None:
    out, _ = demo_run
    kwargs = {k: v for k, v in DEMO_ENV_KWARGS.items() if k != "max_turns"}
    test_tasks = list(turnwise.make(DEMO_ENV, **kwargs).unwrapped.tasks("test"))[:3]
    played = {}
    for name in ("expert", "random", "sft", "rl"):
        episodes = read_jsonl(out / "eval" / name / "episodes.jsonl")
        played[name] = [(t.task_id, t.seed) for t in episodes]
        assert [task for task, _ in played[name]] == test_tasks
    assert len({tuple(p) for p in played.values()}) == 1
    expert = json.loads((out / "eval" / "expert" / "summary.json").read_text())
    assert expert["overall"]["success_rate"] == 1.0


def test_demo_run_again_reuses_the_finished_stages(
    demo_run: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    out, _ = demo_run
    before = json.loads((out / "summary.json").read_text())
    finished = {
        path: path.stat().st_mtime_ns
        for path in (out / "sft" / "sft.json", out / "rl" / "metrics.jsonl")
    }
    assert main(["demo", "--out", str(out), *SMALL]) == 0
    after = json.loads((out / "summary.json").read_text())
    assert after["rows"] == before["rows"]
    # Neither fine-tuned nor trained again: their files were not touched.
    assert {path: path.stat().st_mtime_ns for path in finished} == finished
    assert main(["demo", "--out", str(out), *SMALL, "--iterations", "3"]) == 2
    assert "iterations" in capsys.readouterr().err


def test_demo_refuses_a_folder_it_did_not_write(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    assert main(["demo", "--out", str(tmp_path), *SMALL]) == 2
    assert "not empty" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sft-tasks", "0"], "--sft-tasks must be at least 1"),
        (["--model", "/no/such/model"], "neither a tiny preset"),
        (["--env-kwargs", '{"no_such_option": 1}'], "no_such_option"),
    ],
)
def test_demo_rejects_bad_settings(
    tmp_path: Path, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--out", str(tmp_path / "run"), *args]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_demo_kwargs_default_only_for_the_demo_env() -> None:
    assert DemoConfig().kwargs() == DEMO_ENV_KWARGS
    assert DemoConfig(env="turnwise/FactQA-v0").kwargs() == {}
    assert DemoConfig(env_kwargs='{"n_rooms": 3}').kwargs() == {"n_rooms": 3}


def test_rl_options_reach_the_trainer_over_the_tiny_recipe() -> None:
    assert DemoConfig().rl_settings() == TINY_RECIPE
    assert DemoConfig(rl_options='{"kl_coef": 0.01}').rl_settings()["kl_coef"] == 0.01
    with pytest.raises(ValueError, match="iterations is not a trainer setting"):
        DemoConfig(rl_options='{"iterations": 3}')
    with pytest.raises(ValueError, match="not valid JSON"):
        DemoConfig(rl_options="{kl")


@pytest.mark.slow
def test_demo_on_alfworld_format_tasks(tmp_path: Path) -> None:
    """The text-world path end to end (docs/demo.md): ALFWorldGen's one-room tasks, with the
    model answering by number."""
    kwargs = {
        "scene": "small",
        "n_receptacles": 3,
        "task_types": ["pick_and_place_simple"],
        "max_turns": 12,
    }
    out = tmp_path / "alfworld"
    args = ["--env", "turnwise/ALFWorldGen-v0", "--env-kwargs", json.dumps(kwargs)]
    smaller = [*SMALL, "--curve-every", "0", "--max-tokens", "16", "--choices", "number"]
    assert main(["demo", "--out", str(out), *args, *smaller]) == 0
    summary = json.loads((out / "summary.json").read_text())
    rows = {r["name"]: r for r in summary["rows"]}
    assert rows["expert"]["success_rate"] == 1.0 and rows["expert"]["episodes"] == 3
    assert (out / "rl" / "checkpoints" / "iter-00002" / "model.safetensors").is_file()
    # SFT taught numbers: each demonstrated reply names the expert's command by its number.
    demos = read_jsonl(out / "sft" / "demonstrations.jsonl")
    turns = [turn for demo in demos for turn in demo.turns]
    assert turns and all(re.fullmatch(r"<action>\d+</action>", t.action) for t in turns)
    assert all(t.valid and not t.info["env_action"].isdigit() for t in turns)
    assert json.loads((out / "demo.json").read_text())["choices"] == "number"
    assert json.loads((out / "rl" / "config.json").read_text())["choices"] == "number"
