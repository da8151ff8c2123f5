"""Suites, `turnwise eval` and `turnwise leaderboard verify`, end to end on real envs.

A small suite of KeyDoor and FactQA test tasks keeps the runs short: the expert (every episode
a success), the random agent (long episodes, so there are middle turns to tamper with) and the
nano model (raw replies parsed into env actions) each play it once per module.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from turnwise.cli import main
from turnwise.eval.run import EvalConfig, evaluate
from turnwise.eval.suites import SuiteError, list_suites, load_suite
from turnwise.eval.verify import verify
from turnwise.trajectory import read_jsonl, write_jsonl

SUITE = {
    "name": "test-small",
    "version": 0,
    "engines": {},
    "entries": [
        {
            "env": "turnwise/KeyDoor-v0", "env_kwargs": {"difficulty": "easy"}, "split": "test",
            "task_ids": ["easy-test-00000", "easy-test-00001", "easy-test-00002"],
            "seeds": [0, 1], "max_turns": 8,
        },
        {
            "env": "turnwise/FactQA-v0", "env_kwargs": {"difficulty": "easy"}, "split": "test",
            "task_ids": ["easy-test-00000", "easy-test-00001"], "seeds": [0], "max_turns": 6,
        },
    ],
}  # fmt: skip


def write_suite(folder: Path, suite: dict[str, Any] = SUITE) -> Path:
    path = folder / f"{suite['name']}.json"
    path.write_text(json.dumps(suite), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def suite_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_suite(tmp_path_factory.mktemp("suite"))


@pytest.fixture(scope="module")
def runs(suite_file: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each baseline's evaluation folder (played once for the module)."""
    out = {}
    for policy in ("expert", "random"):
        folder = tmp_path_factory.mktemp(policy)
        evaluate(EvalConfig(suite=str(suite_file), policy=policy, out=folder, workers=2))
        out[policy] = folder
    return out


def copy_of(run: Path, tmp_path: Path) -> Path:
    """A copy of a submission to tamper with."""
    folder = tmp_path / "submission"
    folder.mkdir()
    for name in ("summary.json", "episodes.jsonl", "suite.json"):
        (folder / name).write_bytes((run / name).read_bytes())
    return folder


# ---------------------------------------------------------------------------------- suites
def test_builtin_suites_load_with_every_family_they_name() -> None:
    assert {"turnwise-text-v0", "turnwise-web-v0", "turnwise-bench-v0"} <= set(list_suites())
    text, web, bench = (
        load_suite(s) for s in ("turnwise-text-v0", "turnwise-web-v0", "turnwise-bench-v0")
    )
    assert text.families == ("text",) and web.families == ("web",)
    assert bench.families == ("text", "web")
    assert bench.entries == text.entries + web.entries  # `include`d, in order
    gui = load_suite("turnwise-gui-v0")
    assert gui.families == ("gui",) and len(gui.episodes()) == 16
    assert dict(bench.engines) == {**text.engines, **web.engines}
    assert len({text.digest, web.digest, bench.digest}) == 3


def test_the_digest_names_the_episodes(tmp_path: Path) -> None:
    base = load_suite(write_suite(tmp_path))
    assert base.digest == load_suite(write_suite(tmp_path)).digest  # stable
    changed = json.loads(json.dumps(SUITE))
    changed["entries"][0]["seeds"] = [0, 2]
    (tmp_path / "b").mkdir()
    assert load_suite(write_suite(tmp_path / "b", changed)).digest != base.digest
    assert len(base.episodes()) == 3 * 2 + 2


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s["entries"][0].update(env="turnwise/Nope-v0"), "Nope-v0"),
        (lambda s: s["entries"][0].update(task_ids=[]), "'task_ids' is a non-empty list"),
        (lambda s: s["entries"][0].update(task_ids=["a", "a"]), "lists a task twice"),
        (lambda s: s["entries"][0].update(seeds=[0, "1"]), "'seeds' is a non-empty list"),
        (lambda s: s["entries"][0].update(max_turns=0), "'max_turns' is a positive integer"),
        (lambda s: s.update(version="0"), "'version' must be a int"),
        (lambda s: s.update(entries=[]), "has no entries"),
        (lambda s: s.update(engines={"textworld": 1}), "version strings"),
    ],
)
def test_malformed_suites_are_refused_with_the_reason(
    edit: Any, message: str, tmp_path: Path
) -> None:
    broken = json.loads(json.dumps(SUITE))
    edit(broken)
    with pytest.raises(SuiteError, match=message):
        load_suite(write_suite(tmp_path, broken))


def test_unknown_and_unreadable_suites(tmp_path: Path) -> None:
    with pytest.raises(SuiteError, match=r"no suite 'nope-v9'.*turnwise-text-v0"):
        load_suite("nope-v9")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(SuiteError, match="not a readable JSON suite"):
        load_suite(bad)


def test_engine_versions_other_than_the_suites_are_warned() -> None:
    suite = load_suite("turnwise-text-v0")
    pinned = dict(suite.engines)
    assert suite.engine_warnings(pinned) == []
    [warning] = suite.engine_warnings({**pinned, "textworld": "9.9"})
    assert "textworld==" in warning and "textworld==9.9 is installed" in warning
    assert "not installed" in suite.engine_warnings({})[0]


# ---------------------------------------------------------------------------------- eval
def test_eval_writes_every_episode_and_a_summary(runs: dict[str, Path], suite_file: Path) -> None:
    summary = json.loads((runs["expert"] / "summary.json").read_text(encoding="utf-8"))
    episodes = read_jsonl(runs["expert"] / "episodes.jsonl")
    assert [(t.env_id, t.task_id, t.metadata["suite_seed"]) for t in episodes] == [
        (e["env"], task, seed)
        for e in SUITE["entries"]
        for seed in e["seeds"]
        for task in e["task_ids"]
    ]  # suite order, one record each, with the full trajectory
    assert all(t.turns and t.metadata["family"] == "text" for t in episodes)
    assert summary["schema"] == "turnwise-eval/1" and summary["label"] == "expert"
    assert summary["suite"]["id"] == "test-small-v0"
    assert summary["suite"]["digest"] == load_suite(suite_file).digest
    overall = summary["overall"]
    assert overall["episodes"] == 8 and overall["success_rate"] == 1.0
    assert (overall["ci_low"], overall["ci_high"]) == (1.0, 1.0)
    assert summary["envs"]["turnwise/KeyDoor-v0"]["episodes"] == 6
    assert summary["families"]["text"]["episodes"] == 8
    assert not (runs["expert"] / "collect").exists()  # the episodes file holds everything


def test_random_play_gives_an_interval_and_repeats_exactly(
    runs: dict[str, Path], suite_file: Path, tmp_path: Path
) -> None:
    first = json.loads((runs["random"] / "summary.json").read_text(encoding="utf-8"))
    again = evaluate(EvalConfig(suite=str(suite_file), policy="random", out=tmp_path, workers=2))
    o = first["overall"]
    assert o["ci_low"] <= o["success_rate"] <= o["ci_high"] and o["success_rate"] < 1.0

    def env_side(summary: dict[str, Any]) -> Any:
        return {
            part: {k: {s: v[s] for s in v if s != "wall_seconds"} for k, v in summary[part].items()}
            for part in ("families", "envs")
        } | {"overall": {s: v for s, v in summary["overall"].items() if s != "wall_seconds"}}

    assert env_side(again) == env_side(first)


def test_a_finished_evaluation_is_not_overwritten(runs: dict[str, Path], suite_file: Path) -> None:
    config = EvalConfig(suite=str(suite_file), policy="expert", out=runs["expert"])
    with pytest.raises(FileExistsError, match="--resume"):
        evaluate(config)
    config.resume = True
    assert evaluate(config)["overall"]["episodes"] == 8  # already done: read back


# ---------------------------------------------------------------------------------- verify
def test_honest_submissions_verify(runs: dict[str, Path]) -> None:
    for folder in runs.values():
        report = verify(folder)
        assert report.ok, [str(r) for r in report.rejections]
        assert report.episodes == 8


def longest(folder: Path) -> tuple[list[Any], int]:
    episodes = read_jsonl(folder / "episodes.jsonl")
    k = max(range(len(episodes)), key=lambda i: len(episodes[i].turns))
    assert len(episodes[k].turns) >= 4
    return episodes, k


def test_a_tampered_reward_is_caught_at_its_turn(runs: dict[str, Path], tmp_path: Path) -> None:
    folder = copy_of(runs["random"], tmp_path)
    episodes, k = longest(folder)
    episodes[k].turns[2].reward += 1.0
    write_jsonl(episodes, folder / "episodes.jsonl")
    report = verify(folder)
    assert not report.ok
    [rejection] = [r for r in report.rejections if r.episode]
    assert rejection.turn == 2 and "reward" in rejection.reason
    assert episodes[k].task_id in str(rejection)


def test_a_skipped_turn_is_caught(runs: dict[str, Path], tmp_path: Path) -> None:
    folder = copy_of(runs["random"], tmp_path)
    episodes, k = longest(folder)
    del episodes[k].turns[1]
    write_jsonl(episodes, folder / "episodes.jsonl")
    [rejection] = verify(folder).rejections
    # Turn 1 now holds turn 2's record: it acts from the observation turn 2 saw.
    assert rejection.turn in (0, 1) and "differs" in rejection.reason


def test_an_edited_observation_is_caught(runs: dict[str, Path], tmp_path: Path) -> None:
    folder = copy_of(runs["random"], tmp_path)
    episodes, k = longest(folder)
    episodes[k].turns[3].observation = episodes[k].turns[3].observation.replace(" ", "  ", 1)
    write_jsonl(episodes, folder / "episodes.jsonl")
    [rejection] = verify(folder).rejections
    assert rejection.turn == 2 and "observation after it differs" in rejection.reason


def test_dropped_final_turns_and_missing_episodes_are_caught(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    folder = copy_of(runs["random"], tmp_path)
    episodes, k = longest(folder)
    episodes[k].turns = episodes[k].turns[:2]
    episodes[k].final_observation = read_jsonl(folder / "episodes.jsonl")[k].turns[2].observation
    lost = episodes.pop(1 if k == 0 else 0)  # an episode left out
    write_jsonl(episodes, folder / "episodes.jsonl")
    reasons = [str(r) for r in verify(folder).rejections]
    assert any("turns are missing" in r for r in reasons), reasons
    assert any(f"missing: {lost.env_id} {lost.task_id} seed 0" in r for r in reasons), reasons


def test_a_summary_its_episodes_do_not_give_is_rejected(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    folder = copy_of(runs["random"], tmp_path)
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    summary["overall"]["success_rate"] = 0.99
    (folder / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    [rejection] = verify(folder).rejections
    assert rejection.episode is None and "overall success_rate = 0.99" in str(rejection)


def test_another_suite_version_or_a_foreign_seed_is_rejected(
    runs: dict[str, Path], suite_file: Path, tmp_path: Path
) -> None:
    folder = copy_of(runs["expert"], tmp_path)
    changed = json.loads(json.dumps(SUITE))
    changed["entries"][1]["max_turns"] = 7
    other = write_suite(tmp_path, changed)
    [rejection] = verify(folder, suite=other).rejections
    assert "not the same episodes" in rejection.reason
    episodes = read_jsonl(folder / "episodes.jsonl")
    episodes[0].seed = (episodes[0].seed or 0) + 1  # a reset seed of the player's choosing
    write_jsonl(episodes, folder / "episodes.jsonl")
    reasons = [str(r) for r in verify(folder, suite=suite_file).rejections]
    assert any("reset seed" in r for r in reasons) and any("missing" in r for r in reasons)


# ---------------------------------------------------------------------------------- an LLM
@pytest.mark.slow
def test_a_models_raw_replies_replay_through_their_parsed_actions(
    suite_file: Path, tmp_path: Path
) -> None:
    pytest.importorskip("torch", reason="needs torch (pip install 'turnwise[train]')")
    summary = evaluate(
        EvalConfig(suite=str(suite_file), policy="hf:nano", out=tmp_path, workers=4, max_tokens=8)
    )
    assert summary["overall"]["tokens"] > 0 and summary["policy"] == "hf:nano"
    episodes = read_jsonl(tmp_path / "episodes.jsonl")
    assert all("env_action" in turn.info for t in episodes for turn in t.turns)
    report = verify(tmp_path)
    assert report.ok, [str(r) for r in report.rejections]


# ---------------------------------------------------------------------------------- the CLI
def test_the_commands_a_new_user_runs(
    runs: dict[str, Path], suite_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "eval"
    assert main(["eval", "--suite", str(suite_file), "--policy", "expert", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "expert on test-small-v0" in printed and "1.00 [1.00, 1.00]" in printed
    assert main(["leaderboard", "verify", str(out)]) == 0
    assert "verified: 8 episodes" in capsys.readouterr().out
    site = tmp_path / "site"
    assert main(["leaderboard", "build", str(out), str(runs["random"]), "--out", str(site)]) == 0
    table = capsys.readouterr().out
    assert table.index("| expert") < table.index("| random")
    assert (site / "index.html").is_file() and (site / "leaderboard.md").is_file()

    tampered = copy_of(runs["random"], tmp_path)
    episodes, k = longest(tampered)
    episodes[k].turns[1].reward_terms["valid"] = 5.0
    write_jsonl(episodes, tampered / "episodes.jsonl")
    assert main(["leaderboard", "verify", str(tampered)]) == 1
    report = capsys.readouterr().out
    assert f"rejected: turnwise/KeyDoor-v0 {episodes[k].task_id}" in report or "rejected:" in report
    assert "turn 1: the reward terms are" in report, report


def test_cli_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "--suite", "nope-v9", "--out", str(tmp_path / "x")]) == 2
    assert "no suite 'nope-v9'" in capsys.readouterr().err
    assert main(["leaderboard", "verify", str(tmp_path / "missing")]) == 2
    assert "no evaluation summary" in capsys.readouterr().err
