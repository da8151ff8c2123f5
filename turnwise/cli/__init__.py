"""The `turnwise` command.

Every subcommand is a config dataclass (one docstring per field, checks in `__post_init__`) and a
function that takes it and returns the exit code; tyro turns the dataclasses into the parser and
the `--help` pages. Adding a subcommand means adding one row to `COMMANDS`:

    "collect": Command(CollectConfig, collect),

Command modules import only the core and tyro/rich at module level; whatever is heavy (the
checker, pyarrow, later torch and vLLM) is imported inside the function that needs it, so
`turnwise --help` stays fast whatever the commands can do.

Exit codes: 0 success; 1 the command ran and found a failure (a failing check); 2 a usage error
(bad flags, unknown env or task id), reported in one line without a traceback; 130 Ctrl-C.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import tyro

from turnwise._version import __version__
from turnwise.cli._common import CLIError
from turnwise.cli.check import CheckConfig, check
from turnwise.cli.collect import CollectConfig, collect_command
from turnwise.cli.demo import DemoConfig, demo
from turnwise.cli.envs import EnvsConfig, envs
from turnwise.cli.eval import EvalConfig, eval_command
from turnwise.cli.leaderboard import LeaderboardConfig, leaderboard
from turnwise.cli.match import MatchConfig, match_command
from turnwise.cli.play import PlayConfig, play
from turnwise.cli.rollouts import RolloutsConfig, rollouts
from turnwise.cli.serve import ServeConfig, serve
from turnwise.cli.swe import SWEConfig, swe
from turnwise.cli.train import TrainConfig, train_command

__all__ = ["COMMANDS", "CLIError", "Command", "main"]

ConfigT = TypeVar("ConfigT")


@dataclass(frozen=True)
class Command(Generic[ConfigT]):
    """A subcommand: the dataclass its flags come from and the function that runs it."""

    config: type[ConfigT]
    run: Callable[[ConfigT], int]


#: The subcommands, in the order `turnwise --help` lists them.
COMMANDS: dict[str, Command[Any]] = {
    "envs": Command(EnvsConfig, envs),
    "check": Command(CheckConfig, check),
    "play": Command(PlayConfig, play),
    "demo": Command(DemoConfig, demo),
    "serve": Command(ServeConfig, serve),
    "collect": Command(CollectConfig, collect_command),
    "rollouts": Command(RolloutsConfig, rollouts),
    "train": Command(TrainConfig, train_command),
    "eval": Command(EvalConfig, eval_command),
    "match": Command(MatchConfig, match_command),
    "leaderboard": Command(LeaderboardConfig, leaderboard),
    "swe": Command(SWEConfig, swe),
}

DESCRIPTION = (
    "turnwise: a gym for LLM agents that act over many turns. "
    "`turnwise COMMAND --help` explains a command; `turnwise --version` prints the version."
)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse `argv` (default: the process's arguments), run the subcommand, return its exit code.

    Example:
        >>> main(["--version"])  # doctest: +ELLIPSIS
        turnwise ...
        0
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] in (["--version"], ["-V"]):
        # tyro builds no top-level flags of its own beside --help, so this one is answered first.
        print(f"turnwise {__version__}")
        return 0
    if not args:
        args = ["--help"]
    try:
        config = tyro.extras.subcommand_cli_from_dict(
            {name: command.config for name, command in COMMANDS.items()},
            prog="turnwise",
            description=DESCRIPTION,
            args=args,
            # Booleans get one flag, the one that changes the default (`--no-expert`).
            config=(tyro.conf.FlagCreatePairsOff,),
        )
    except SystemExit as exc:  # --help (0) or a parse error tyro has already explained (2)
        return _exit_code(exc.code)
    command = next(c for c in COMMANDS.values() if isinstance(config, c.config))
    try:
        return command.run(config)
    except CLIError as exc:
        print(f"turnwise: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("turnwise: interrupted", file=sys.stderr)
        return 130


def _exit_code(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1
