"""What the subcommands share: the error type `main` turns into exit code 2, env construction
with JSON keyword arguments, and the console.

Nothing here imports more than the core: every subcommand module imports it at `--help` time.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated, Any

import tyro
from rich.console import Console

if TYPE_CHECKING:
    from turnwise.registry import EnvEntry

__all__ = [
    "DEFAULT_ENV",
    "CLIError",
    "EnvKwargs",
    "console",
    "env_entry",
    "make_env",
    "parse_env_kwargs",
]

#: The built-in env that `demo` uses and the docs point at.
DEFAULT_ENV = "turnwise/KeyDoor-v0"

#: The type of every subcommand's `--env-kwargs` field: one help text and metavar for all of them.
EnvKwargs = Annotated[
    str,
    tyro.conf.arg(
        metavar="JSON",
        help="Keyword arguments for the env constructor, as a JSON object, e.g. '{\"max_turns\": 20}'.",
    ),
]


class CLIError(Exception):
    """A mistake in what the user asked for: printed as one line, exit code 2, no traceback."""


def console(*, stderr: bool = False) -> Console:
    """A console that writes to the current `sys.stdout` (or stderr).

    Made per call rather than once at import, so `main([...])` called in-process writes where the
    caller (a test's capture, a notebook) has pointed `sys.stdout` in the meantime. Piped output
    gets no colours and a fixed width, so transcripts stay readable.
    """
    file = sys.stderr if stderr else sys.stdout
    interactive = file.isatty()
    return Console(
        file=file,
        stderr=stderr,
        highlight=False,
        # Env text is data: `:name:` in an observation or a command must not become an emoji.
        emoji=False,
        # Piped text is not wrapped (a transcript keeps one line per line); tables still get a
        # fixed width so they stay aligned in logs.
        width=None if interactive else 100,
        soft_wrap=not interactive,
    )


def parse_env_kwargs(text: str) -> dict[str, Any]:
    """Parse `--env-kwargs`: a JSON object (or nothing) into constructor keyword arguments.

    Example:
        >>> parse_env_kwargs('{"max_turns": 20}')
        {'max_turns': 20}
        >>> parse_env_kwargs("")
        {}
    """
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"--env-kwargs is not valid JSON ({exc.msg}): {text!r}") from None
    if not isinstance(value, dict):
        raise ValueError(
            f"--env-kwargs must be a JSON object like '{{\"max_turns\": 20}}', got {text!r}"
        )
    return value


def env_entry(env_id: str, *, single_agent_for: str | None = None) -> EnvEntry:
    """The registry entry of `env_id`, or a `CLIError` carrying the registry's close matches.

    Args:
        env_id: the id the user typed.
        single_agent_for: the subcommand's name, if it cannot drive a multi-agent env.
    """
    from turnwise.registry import UnknownEnvError, entry

    try:
        record = entry(env_id)
    except UnknownEnvError as exc:
        raise CLIError(str(exc)) from None
    if single_agent_for and record.multi_agent:
        raise CLIError(
            f"`turnwise {single_agent_for}` needs a single-agent env and {env_id} is multi-agent; "
            "play one seat of it through turnwise/SingleAgent-v0, e.g. --env turnwise/SingleAgent-v0 "
            f'--env-kwargs \'{{"env": "{env_id}", "partners": "random"}}\' '
            "(docs/multi-agent.md)"
        )
    return record


def make_env(env_id: str, env_kwargs: dict[str, Any] | None = None) -> Any:
    """`turnwise.make(env_id, **env_kwargs)`, with the user's mistakes turned into `CLIError`s.

    An unknown id keeps the registry's message (it lists close matches); a missing optional
    dependency names the extra to install; constructor arguments the env rejects name the env.
    """
    import turnwise

    try:
        return turnwise.make(env_id, **(env_kwargs or {}))
    except turnwise.UnknownEnvError as exc:
        raise CLIError(str(exc)) from None
    except ModuleNotFoundError as exc:
        raise CLIError(str(exc)) from None
    except (TypeError, ValueError) as exc:
        # Bad keyword arguments surface as TypeError (unexpected keyword) or ValueError (a value
        # the env validates); either way the fix is in the command line, not in the code.
        if not env_kwargs:
            raise
        raise CLIError(f"{env_id} rejected --env-kwargs {json.dumps(env_kwargs)}: {exc}") from None
