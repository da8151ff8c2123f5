"""`turnwise play ENV_ID`: a person plays an env in the terminal and sees every turn's reward.

The session reads one action per line, so it works the same typed by hand or piped in (tests and
scripted demos pipe the expert's actions). Lines starting with `:` are commands for the session,
not actions for the env; `:help` lists them.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import tyro
from rich.console import Console
from rich.markup import escape
from rich.rule import Rule
from rich.text import Text

from turnwise.cli._common import (
    CLIError,
    EnvKwargs,
    console,
    env_entry,
    make_env,
    parse_env_kwargs,
)

__all__ = ["PlayConfig", "play"]

HELP = """\
Type an action and press Enter to take a turn. Commands:
  :help             this help
  :actions          list the actions that are valid now (when the env knows them)
  :N                take action number N of that list
  :expert           show the expert's suggested next action
  :multi            type an action of several lines (SWE's create, str_replace); a line
                    holding just `.` ends it
  :reset [TASK_ID]  start over (the same task and seed, or TASK_ID)
  :next             start a new task drawn from the split
  :quit             leave (so does Ctrl-C or the end of input)"""


@dataclass
class PlayConfig:
    """Play an env yourself: see the instruction, the observation and the valid actions, type an
    action per line, and see the reward of every turn broken into its named terms."""

    env_id: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="ENV_ID")]
    """The env to play, e.g. turnwise/KeyDoor-v0 (`turnwise envs` lists them)."""
    seed: Annotated[int | None, tyro.conf.arg(metavar="SEED")] = None
    """Reset seed; without --task-id it also picks the task (same seed, same episode)."""
    task_id: Annotated[str | None, tyro.conf.arg(metavar="TASK_ID")] = None
    """Play this task (any split) instead of one drawn by the seed."""
    split: Annotated[str | None, tyro.conf.arg(metavar="SPLIT")] = None
    """Draw the task from this split (train, test, ...) instead of the env's default."""
    env_kwargs: EnvKwargs = ""
    """Constructor keyword arguments, as a JSON object."""
    screenshots: Annotated[Path | None, tyro.conf.arg(metavar="DIR")] = None
    """Save every image observation (GUI and pixel envs) as a PNG in this folder, to watch."""

    def __post_init__(self) -> None:
        parse_env_kwargs(self.env_kwargs)


def play(config: PlayConfig) -> int:
    """Run the interactive session until `:quit`, Ctrl-C or the end of input; exit code 0."""
    import turnwise

    env_entry(config.env_id, single_agent_for="play")
    env = make_env(config.env_id, parse_env_kwargs(config.env_kwargs))
    try:
        session = _Session(env, console(), seed=config.seed, screenshots=config.screenshots)
        splits = getattr(env.unwrapped, "splits", ())
        if config.split is not None and splits and config.split not in splits:
            raise CLIError(
                f"{config.env_id} has no split {config.split!r}; it has {', '.join(splits)}"
            )
        try:
            session.start(task_id=config.task_id, split=config.split, seed=config.seed)
        except turnwise.UnknownTaskError as exc:
            raise CLIError(str(exc)) from None
        session.loop()
    finally:
        env.close()
    return 0


@dataclass
class _Episode:
    """Running totals of the episode in progress."""

    turns: int = 0
    reward: float = 0.0
    terms: dict[str, float] = field(default_factory=dict)
    weights: dict[str, float] = field(default_factory=dict)
    over: bool = False


class _Session:
    """One terminal session: the env, the current episode and the I/O around them."""

    def __init__(
        self, env: Any, out: Console, *, seed: int | None, screenshots: Path | None = None
    ) -> None:
        self.env = env
        self.out = out
        self.seed = seed
        self.screenshots = screenshots
        self.shots = 0
        self.split: str | None = None
        self.info: Mapping[str, Any] = {}
        self.max_turns: Any = "?"
        self.episode = _Episode()
        # A closed stdin (`<&-`) leaves sys.stdin None: treat it as an immediate end of input.
        self.interactive = sys.stdin is not None and sys.stdin.isatty()

    # ------------------------------------------------------------------ episodes
    def start(self, *, task_id: str | None, seed: int | None, split: str | None = None) -> None:
        """Reset the env and show the opening screen; `split` sticks for later resets."""
        options: dict[str, Any] = {}
        if task_id is not None:
            options["task_id"] = task_id
        if split is not None:
            self.split = split
        if self.split is not None and task_id is None:
            options["split"] = self.split
        obs, info = self.env.reset(seed=seed, options=options or None)
        self.info = info
        self.max_turns = info.get("max_turns", "?")
        self.episode = _Episode()
        seeded = f" | seed {seed}" if seed is not None else ""
        title = (
            f"{self.env_id} | {info.get('task_id', '?')} ({info.get('split', '?')}){seeded} | "
            f"{self.max_turns} turns max"
        )
        self.out.print(Rule(Text(title), style="blue"))
        self.out.print(Text.assemble(("Instruction: ", "bold"), str(info.get("instruction", ""))))
        self._show_observation(obs)
        self.out.print(Text("Type an action, or :help for commands.", style="dim"))

    def step(self, action: str) -> None:
        if self.episode.over:
            self.out.print(
                "The episode is over: :reset to replay it, :next for a new task, :quit to leave."
            )
            return
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.info = info
        ep = self.episode
        ep.turns += 1
        ep.reward += float(reward)
        terms: Mapping[str, float] = info.get("reward_terms", {})
        weights: Mapping[str, float] = info.get("reward_weights", {})
        for name, value in terms.items():
            ep.terms[name] = ep.terms.get(name, 0.0) + float(value)
        ep.weights.update(weights)
        valid = info.get("valid_action", True)
        line = Text.assemble(
            (f"turn {info.get('turn', ep.turns)}/{self.max_turns}", "bold"),
            " | valid ",
            ("yes", "green") if valid else ("NO", "bold red"),
            " | reward ",
            (f"{float(reward):+.3f}", "bold"),
            " = ",
            _terms_text(terms, weights),
        )
        self.out.print(line)
        self._show_observation(obs)
        if terminated or truncated:
            ep.over = True
            self._show_summary(info, terminated=terminated)

    # ------------------------------------------------------------------ the loop
    def loop(self) -> None:
        """Read lines until the person leaves."""
        while True:
            line = self._read_line()
            if line is None:
                return
            line = line.strip()
            if not line:
                continue
            if line.startswith(":"):
                if not self._command(line[1:].strip()):
                    return
            else:
                self.step(line)

    def _read_line(self) -> str | None:
        """The next line of input, or None (said so) at end of input or Ctrl-C."""
        try:
            if self.interactive:
                return self.out.input("[bold]> [/bold]")
            # Piped input is not echoed by the terminal: echo it, so the transcript reads as a
            # conversation rather than a stream of observations.
            raw = sys.stdin.readline() if sys.stdin is not None else ""
            if raw:
                self.out.print(Text("> " + raw.rstrip("\r\n"), style="bold"))
                return raw
        except KeyboardInterrupt:
            self.out.print(Text("\n(interrupted)", style="dim"))
            return None
        except EOFError:
            pass
        self.out.print(Text("(end of input)", style="dim"))
        return None

    def _read_block(self) -> str | None:
        """Lines up to one holding just `.`, joined: one multi-line action (None: input ended)."""
        self.out.print(Text("(several lines; end with a line holding just '.')", style="dim"))
        lines: list[str] = []
        while True:
            line = self._read_line()
            if line is None:
                return None
            line = line.rstrip("\r\n")
            if line.strip() == ".":
                return "\n".join(lines)
            lines.append(line)

    def _command(self, command: str) -> bool:
        """Run a `:command`; False means leave the session."""
        name, _, arg = command.partition(" ")
        name, arg = name.lower(), arg.strip()
        if name in ("quit", "q", "exit"):
            return False
        if name in ("help", "h", "?"):
            self.out.print(Text(HELP))
        elif name in ("actions", "a"):
            self._show_actions(numbered=True)
        elif name == "expert":
            self._show_expert()
        elif name == "multi":
            action = self._read_block()
            if action is None:
                return False
            self.step(action)
        elif name == "reset":
            self._restart(
                task_id=arg or str(self.info.get("task_id") or "") or None, seed=self.seed
            )
        elif name == "next":
            # A new draw from the split's task stream, not the seed's first pick again.
            self._restart(task_id=None, seed=None)
        elif name.isdigit():
            self._numbered_action(int(name))
        else:
            self.out.print(f"Unknown command :{escape(name)}; :help lists the commands.")
        return True

    # ------------------------------------------------------------------ helpers
    @property
    def env_id(self) -> str:
        spec = getattr(self.env, "spec", None)
        return spec.id if spec is not None else type(self.env.unwrapped).__name__

    def _restart(self, *, task_id: str | None, seed: int | None) -> None:
        import turnwise

        try:
            self.start(task_id=task_id, seed=seed)
        except turnwise.UnknownTaskError as exc:
            self.out.print(Text(str(exc), style="red"))

    def _admissible(self) -> list[str] | None:
        actions = self.info.get("admissible_actions")
        return [str(a) for a in actions] if isinstance(actions, list) else None

    def _show_observation(self, obs: Any) -> None:
        text = str(obs.get("text", "")) if isinstance(obs, Mapping) else str(obs)
        self.out.print(Text(text))
        if isinstance(obs, Mapping) and "image" in obs:
            self._show_image(obs["image"])
        if not self.episode.over:
            self._show_actions(numbered=False)

    def _show_image(self, image: Any) -> None:
        shape = getattr(image, "shape", None)
        if self.screenshots is None:
            self.out.print(
                Text(f"(an image observation {shape}: --screenshots DIR saves them)", style="dim")
            )
            return
        from PIL import Image

        self.screenshots.mkdir(parents=True, exist_ok=True)
        path = self.screenshots / f"{self.shots:04d}.png"
        self.shots += 1
        Image.fromarray(image).save(path)
        self.out.print(Text(f"(screenshot: {path})", style="dim"))

    def _show_actions(self, *, numbered: bool) -> None:
        actions = self._admissible()
        if actions is None:
            if numbered:
                self.out.print("This env does not list its valid actions; any text is an action.")
            return
        if not actions:
            if numbered:
                self.out.print("No actions are valid now.")
            return
        if numbered:
            for i, action in enumerate(actions, 1):
                self.out.print(Text(f"  {i:>2}. {action}"))
        else:
            self.out.print(Text.assemble(("Actions: ", "dim"), " | ".join(actions)))

    def _show_expert(self) -> None:
        expert = getattr(self.env.unwrapped, "expert_action", None)
        if self.episode.over:
            self.out.print("The episode is over; the expert has nothing to add.")
            return
        suggestion = expert() if callable(expert) else None
        if suggestion is None:
            self.out.print("This env has no expert for the current state.")
        else:
            self.out.print(Text.assemble("The expert would do: ", (str(suggestion), "bold cyan")))

    def _numbered_action(self, number: int) -> None:
        actions = self._admissible()
        if not actions or not 1 <= number <= len(actions):
            self.out.print("No such action number; :actions lists them.")
            return
        self.out.print(Text(f"> {actions[number - 1]}", style="bold"))
        self.step(actions[number - 1])

    def _show_summary(self, info: Mapping[str, Any], *, terminated: bool) -> None:
        ep = self.episode
        success = bool(info.get("success", False))
        how = (
            "terminated" if terminated else f"truncated ({info.get('truncation_reason', 'limit')})"
        )
        verdict = ("SUCCESS", "bold green") if success else ("FAILURE", "bold red")
        self.out.print(Rule(style="blue"))
        self.out.print(
            Text.assemble(
                "Episode over: ",
                verdict,
                f" after {ep.turns} turn{'s' if ep.turns != 1 else ''} ({how}); ",
                ("total reward ", "bold"),
                f"{ep.reward:+.3f}",
            )
        )
        self.out.print(Text.assemble("Sum of the terms: ", _terms_text(ep.terms, ep.weights)))
        self.out.print(
            Text(":reset replays this task, :next draws another, :quit leaves.", style="dim")
        )


def _terms_text(terms: Mapping[str, float], weights: Mapping[str, float]) -> Text:
    """`outcome +1.000×1 + progress +0.200×0.5`: each raw term times its weight, so the line
    reads as the sum that the reward is (a term without a weight counts once)."""
    parts = Text()
    for i, (name, value) in enumerate(terms.items()):
        if i:
            parts.append(" + ")
        parts.append(name, style="cyan")
        parts.append(f" {float(value):+.3f}×{float(weights.get(name, 1.0)):g}")
    return parts if terms else Text("(no reward terms)")
