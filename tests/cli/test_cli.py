"""The `turnwise` command: real runs of the installed script, plus in-process `main([...])` calls
where a subprocess would only add start-up time."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import io
import json
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import turnwise
from turnwise.cli import COMMANDS, main
from turnwise.cli.leaderboard import BuildConfig, VerifyConfig

KEYDOOR = "turnwise/KeyDoor-v0"


def turnwise_command() -> list[str]:
    """The `turnwise` script installed beside this interpreter (what a user types)."""
    beside = Path(sys.executable).parent / "turnwise"
    found = str(beside) if beside.exists() else shutil.which("turnwise")
    assert found, "the `turnwise` script is not installed: run `pip install -e .`"
    return [found]


def run(*args: str, stdin: str = "", timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*turnwise_command(), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        encoding="utf-8",
    )


def expert_actions(seed: int) -> list[str]:
    """The expert's actions for the episode that `reset(seed=seed)` starts."""
    env = turnwise.make(KEYDOOR)
    env.reset(seed=seed)
    actions: list[str] = []
    done = False
    while not done:
        action = env.unwrapped.expert_action()
        assert action is not None
        actions.append(action)
        *_, terminated, truncated, _ = env.step(action)
        done = terminated or truncated
    env.close()
    return actions


def play_in_process(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], args: list[str], stdin: str
) -> tuple[int, str]:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = main(["play", KEYDOOR, *args])
    return code, capsys.readouterr().out


# ----------------------------------------------------------------------------- the command
def test_version() -> None:
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"turnwise {turnwise.__version__}"


def test_python_dash_m_runs_the_same_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "turnwise", "--version"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"turnwise {turnwise.__version__}"


def test_help_lists_every_subcommand() -> None:
    result = run("--help")
    assert result.returncode == 0, result.stderr
    for name in COMMANDS:
        assert name in result.stdout


def test_help_imports_nothing_heavy() -> None:
    # `turnwise --help` must stay fast: the checker, envs, pyarrow and model code load only in
    # the command that uses them.
    probe = (
        "import contextlib, io, json, sys\n"
        "from turnwise.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    assert main(['--help']) == 0\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    loaded = set(json.loads(out.stdout.strip().splitlines()[-1]))
    heavy = {"pyarrow", "torch", "transformers", "turnwise.testing", "turnwise.envs.keydoor"}
    assert not heavy & loaded


def check_documented(config: Any, text: str) -> None:
    """Every field of `config` has a docstring (its --help text) and shows in `text`; a field
    that selects nested subcommands (`turnwise leaderboard build|verify`) shows their names."""
    assert dataclasses.is_dataclass(config) and config.__doc__
    # The --help text comes from the docstring under each field: every field needs one.
    body = ast.parse(textwrap.dedent(inspect.getsource(config))).body[0]
    assert isinstance(body, ast.ClassDef)
    documented = {
        stmt.target.id
        for stmt, after in zip(body.body, body.body[1:], strict=False)
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)
        if isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
    }
    for field in dataclasses.fields(config):
        assert field.name in documented, f"{config.__name__}.{field.name} has no docstring"
        subcommands = re.findall(r"subcommand\('([a-z-]+)'", str(field.type))
        if subcommands:
            assert "{" + ",".join(subcommands) + "}" in text
            continue
        flag = field.name.replace("_", "-")
        shown = (f"--{flag}", f"--no-{flag}", field.name.upper())
        assert any(s in text for s in shown), f"{config.__name__}: {field.name} is not in --help"


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_subcommand_has_help_and_documented_fields(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([name, "--help"]) == 0
    check_documented(COMMANDS[name].config, capsys.readouterr().out)


@pytest.mark.parametrize(
    ("args", "config"),
    [(["leaderboard", "build"], BuildConfig), (["leaderboard", "verify"], VerifyConfig)],
)
def test_nested_subcommands_have_help_and_documented_fields(
    args: list[str], config: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*args, "--help"]) == 0
    check_documented(config, capsys.readouterr().out)


def test_no_arguments_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    assert "envs" in capsys.readouterr().out


def test_bad_flag_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["envs", "--no-such-flag"]) == 2


# ----------------------------------------------------------------------------- envs
def test_envs_lists_keydoor_under_its_family(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["envs"]) == 0
    out = capsys.readouterr().out
    assert "yes" in next(line for line in out.splitlines() if KEYDOOR in line)
    # Rows are grouped by family, which is printed on the group's first row only.
    lines = out.splitlines()
    families = {"text", "social"}
    current = None
    for line in lines:
        cell = line.split("│")[1].strip() if line.count("│") > 2 else ""
        if cell in families:
            current = cell
        if KEYDOOR in line:
            assert current == "text"
    assert main(["envs", "--family", "social"]) == 0
    assert KEYDOOR not in capsys.readouterr().out
    assert main(["envs", "--family", "text"]) == 0
    assert KEYDOOR in capsys.readouterr().out


def test_envs_rejects_unknown_family(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["envs", "--family", "nope"]) == 2
    assert "--family must be one of" in capsys.readouterr().err.replace("\n", " ")


# ----------------------------------------------------------------------------- check
def test_check_keydoor_passes() -> None:
    result = run("check", KEYDOOR, "--tasks", "1")
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ("gymnasium", "determinism", "hostile_actions", "expert", "close"):
        assert name in result.stdout
    assert "PASS" in result.stdout


def test_check_exit_code_1_when_a_check_fails(capsys: pytest.CaptureFixture[str]) -> None:
    # Two turns are too few for the expert, so the expert check must fail.
    code = main(["check", KEYDOOR, "--tasks", "1", "--env-kwargs", '{"max_turns": 2}'])
    out = capsys.readouterr().out
    assert code == 1
    assert "FAIL" in out and "expert" in out


# ----------------------------------------------------------------------------- play
def test_play_reaches_success_with_the_experts_actions() -> None:
    actions = expert_actions(seed=3)
    script = "\n".join([":help", ":actions", ":expert", "dance a jig", *actions]) + "\n"
    result = run("play", KEYDOOR, "--seed", "3", stdin=script)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "Traceback" not in out + result.stderr
    assert "Instruction:" in out and "Actions:" in out
    assert ":expert" in out and f"The expert would do: {actions[0]}" in out  # :help, :expert
    assert "valid NO" in out  # the nonsense action was rejected, and said so
    for term in ("outcome", "progress", "valid"):
        assert term in out
    assert "×0.5" in out or "×0.1" in out  # weights are shown beside the terms
    assert f"turn {len(actions) + 1}/" in out
    assert "SUCCESS" in out
    assert "(end of input)" in out


def test_play_meta_commands(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    actions = expert_actions(seed=5)
    script = "\n".join([":1", ":reset", ":nonsense", ":next", ":quit", *actions]) + "\n"
    code, out = play_in_process(monkeypatch, capsys, ["--seed", "5"], script)
    assert code == 0
    assert out.count("Instruction:") == 3  # start, :reset, :next
    assert "turn 1/" in out  # :1 took the first listed action
    assert "Unknown command :nonsense" in out
    assert "SUCCESS" not in out  # :quit left before the expert's actions were read
    assert "(end of input)" not in out


def test_play_multi_line_action(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The lines up to "." are one action: "look\nlook" is no KeyDoor command, so the turn is
    # invalid, and the following "look" is a turn of its own.
    script = ":multi\nlook\nlook\n.\nlook\n:multi\nlook\n"
    code, out = play_in_process(monkeypatch, capsys, ["--seed", "5"], script)
    assert code == 0
    assert "turn 1/" in out and "valid NO" in out and "turn 2/" in out
    assert "turn 3/" not in out  # the unfinished block is dropped at the end of input
    assert out.rstrip().endswith("(end of input)")


def test_play_reset_replays_the_same_task(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    actions = expert_actions(seed=7)
    script = "\n".join(["look", ":reset", *actions]) + "\n"
    code, out = play_in_process(monkeypatch, capsys, ["--seed", "7"], script)
    assert code == 0 and "SUCCESS" in out


def test_play_task_id_and_split(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    task = turnwise.make(KEYDOOR).unwrapped.tasks("test")[0]
    code, out = play_in_process(monkeypatch, capsys, ["--task-id", task], "")
    assert code == 0 and task in out
    code, out = play_in_process(monkeypatch, capsys, ["--split", "valid", "--seed", "1"], "")
    assert code == 0 and "(valid)" in out


def test_play_end_of_input_at_once(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = play_in_process(monkeypatch, capsys, ["--seed", "0"], "")
    assert code == 0
    assert out.rstrip().endswith("(end of input)")


def test_play_after_the_episode_ended(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    actions = expert_actions(seed=2)
    code, out = play_in_process(monkeypatch, capsys, ["--seed", "2"], "\n".join([*actions, "look"]))
    assert code == 0
    assert "Episode over" in out and "The episode is over" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--task-id", "no-such-task"], "has no task 'no-such-task'"),
        (["--split", "nowhere"], "has no split 'nowhere'"),
    ],
)
def test_play_unknown_task_or_split_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    assert main(["play", KEYDOOR, *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


# ----------------------------------------------------------------------------- errors
def test_unknown_env_id_suggests_close_matches() -> None:
    result = run("check", "turnwise/KeyDor-v0")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr + result.stdout
    assert "Did you mean" in result.stderr and KEYDOOR in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("command", ["play", "check"])
def test_unknown_env_id_in_process(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([command, "keydoor"]) == 2
    assert KEYDOOR in capsys.readouterr().err


@pytest.mark.parametrize(
    ("env_kwargs", "message"),
    [("{not json", "not valid JSON"), ("[1, 2]", "must be a JSON object")],
)
def test_bad_env_kwargs_json(
    env_kwargs: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", KEYDOOR, "--env-kwargs", env_kwargs]) == 2
    assert message in capsys.readouterr().err.replace("\n", " ")


def test_env_kwargs_the_env_rejects(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--env-kwargs", '{"no_such_option": 1}']) == 2
    err = capsys.readouterr().err
    assert "no_such_option" in err and "Traceback" not in err


@pytest.mark.parametrize("command", ["play", "demo"])
def test_single_agent_commands_refuse_multi_agent_envs(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    multi = [e.id for e in turnwise.list_envs() if e.multi_agent]
    if not multi:
        pytest.skip("no multi-agent env is registered")
    args = [command, multi[0]] if command == "play" else [command, "--env", multi[0]]
    assert main(args) == 2
    assert "multi-agent" in capsys.readouterr().err
