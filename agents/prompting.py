"""Prompt templates (observation → chat messages), history truncation, and reply parsers.

An agent is a policy, a template and a parser. A template writes the system prompt (the role,
the task instruction, the reply format) and one user message per turn (the observation, rendered
for its env family, plus the admissible actions when the env lists them). `build_messages` puts
the system prompt, the past exchanges and the current user message together, keeping the last
`max_turns` exchanges and dropping the oldest first until a token budget is met; the system
prompt and the current observation are never cut, and the prompt says how many turns were left
out. Parsers turn a reply into an env action and report format errors instead of raising.

One template class per family, chosen with `template_for(family | env id | env)`:

========== ============================================================================
family     renders
========== ============================================================================
``text``   the observation text (text worlds, ALFWorld, TextWorld)
``web``    page URL and title, the last action's error, and the accessibility tree
``gui``    the screen described in text (a screenshot in the observation is noted, not sent)
``swe``    tool output in a fenced block, with its exit code when given
``social`` the dialogue so far (or the latest messages)
``other``  the observation text
========== ============================================================================

Example:
    >>> t = template_for("text")
    >>> msgs, omitted = build_messages(
    ...     t.system_prompt({"instruction": "Take the coin."}),
    ...     [Exchange("You are in a hall.", "<think>go</think><action>go north</action>")],
    ...     t.user_message({"text": "You see a coin."}, {"admissible_actions": ["take coin"]}),
    ... )
    >>> [m["role"] for m in msgs], omitted
    (['system', 'user', 'assistant', 'user'], 0)
    >>> print(msgs[-1]["content"])
    You see a coin.
    <BLANKLINE>
    Admissible actions:
    - take coin
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from turnwise.parsing import Choices, ParseResult, check_choices, parse_tagged

from .policy import Message
from .tokens import encode, has_chat_template, render_chat

__all__ = [
    "Exchange",
    "GUITemplate",
    "PromptTemplate",
    "SWETemplate",
    "SocialTemplate",
    "TextTemplate",
    "WebTemplate",
    "build_messages",
    "message_counter",
    "omitted_note",
    "parse_plain",
    "parse_tagged",
    "template_for",
]

ReplyFormat = Literal["react", "plain"]
MessageCounter = Callable[[Sequence[Message]], int]

_REACT = (
    "Reply in exactly this format and nothing else:\n"
    "<think>your reasoning about what to do next</think><action>one action</action>"
)
_PLAIN = "Reply with exactly one action and nothing else: no explanation, no quotes."
_BY_NUMBER = "The admissible actions are numbered each turn: answer with the number of one."


@dataclass(frozen=True)
class Exchange:
    """One past turn as the model saw it: the user message and the model's raw reply."""

    user: str
    reply: str


@dataclass
class PromptTemplate:
    """Observation → messages for any env; the family subclasses change how observations read.

    Args:
        reply_format: `react` (`<think>…</think><action>…</action>`, parsed by `parse_tagged`)
            or `plain` (the bare action, parsed by `parse_plain`).
        max_admissible: list at most this many admissible actions (and say how many more).
        system_role: put the system prompt in a `system` message; when False (for chat templates
            without a system role) it is prepended to the first user message instead.
        choices: `text` (the agent writes the action) or `number` (the admissible actions are
            listed `1: …`, `2: …` and the agent answers with a number, which `ByNumber`
            parsing turns back into the command; `LLMAgent` sets that parser up). Numbers
            spare a small model from spelling long commands; the env still receives commands.
        images: attach the observation's `image` (a screenshot) to each turn's user message,
            for vision models. `LLMAgent` then sends chat messages (not token ids), so the
            policy must read images: an OpenAI-compatible vision server (`openai:URL#MODEL`).
            Only the current turn's image is sent; earlier turns keep their text.

    Example:
        >>> t = PromptTemplate(reply_format="plain")
        >>> "exactly one action" in t.system_prompt({"instruction": "Count to 3."})
        True
    """

    reply_format: ReplyFormat = "react"
    max_admissible: int = 50
    system_role: bool = True
    choices: Choices = "text"
    images: bool = False

    family: ClassVar[str] = "other"
    role: ClassVar[str] = "You are an agent acting in an environment over many turns."
    action_hint: ClassVar[str] = "An action is a short command in the environment's own words."
    observation_label: ClassVar[str] = ""

    def __post_init__(self) -> None:
        if self.reply_format not in ("react", "plain"):
            raise ValueError(f"reply_format must be 'react' or 'plain', got {self.reply_format!r}")
        if self.max_admissible < 0:
            raise ValueError(f"max_admissible must be >= 0, got {self.max_admissible}")
        check_choices(self.choices)
        if self.choices == "number" and self.max_admissible == 0:
            raise ValueError(
                "choices='number' needs the admissible actions listed (max_admissible > 0)"
            )

    # ------------------------------------------------------------------ system prompt
    def system_prompt(self, info: Mapping[str, Any]) -> str:
        """The role, the reply format, and the task instruction from the reset `info`."""
        hint = _BY_NUMBER if self.choices == "number" else self.action_hint
        parts = [self.role, hint, _REACT if self.reply_format == "react" else _PLAIN]
        instruction = str(info.get("instruction", "")).strip()
        if instruction:
            parts.append(f"Your task: {instruction}")
        return "\n\n".join(parts)

    # ------------------------------------------------------------------ one turn
    def render_observation(self, observation: Mapping[str, Any] | str) -> str:
        """The observation as text (override per family)."""
        text = _text(observation)
        return f"{self.observation_label}:\n{text}" if self.observation_label else text

    def user_message(self, observation: Mapping[str, Any] | str, info: Mapping[str, Any]) -> str:
        """This turn's user message: format feedback, the observation, the admissible actions."""
        parts = []
        if info.get("format_ok") is False:
            # The previous reply was malformed; saying so is the cheapest fix a model can get.
            error = info.get("format_error") or "it did not follow the format"
            expected = (
                "<think>…</think><action>…</action>"
                if self.reply_format == "react"
                else ("one bare action")
            )
            parts.append(f"(Your last reply could not be used: {error}. Answer with {expected}.)")
        parts.append(self.render_observation(observation))
        actions = info.get("admissible_actions")
        if actions and self.max_admissible > 0:
            shown = [str(a) for a in actions[: self.max_admissible]]
            if self.choices == "number":
                listing = "\n".join(f"{i}: {a}" for i, a in enumerate(shown, 1))
            else:
                listing = "\n".join(f"- {a}" for a in shown)
            more = len(actions) - len(shown)
            tail = f"\n(and {more} more)" if more > 0 else ""
            parts.append(f"Admissible actions:\n{listing}{tail}")
        return "\n\n".join(parts)


class TextTemplate(PromptTemplate):
    """Text worlds: rooms, objects and commands (KeyDoor, TextWorld, ALFWorld)."""

    family = "text"
    role = "You are playing a text-based game. Each turn you read what you observe and act."
    action_hint = "An action is one game command, such as `go north` or `take key`."


class WebTemplate(PromptTemplate):
    """Web pages: URL, title, the last action's error, and the accessibility tree."""

    family = "web"
    role = "You are a web agent operating a browser to complete a task."
    action_hint = (
        "An action is one browser command in the environment's action syntax, "
        "referring to elements by the ids shown in the accessibility tree."
    )
    fields: ClassVar[tuple[tuple[str, str], ...]] = (
        ("url", "URL"),
        ("title", "Title"),
        ("last_action_error", "Last action error"),
    )

    def render_observation(self, observation: Mapping[str, Any] | str) -> str:
        lines = [f"{label}: {value}" for label, value in _fields(observation, self.fields)]
        tree = _field(observation, "axtree") or _text(observation)
        lines.append(f"Accessibility tree:\n{tree}")
        return "\n".join(lines)


class GUITemplate(PromptTemplate):
    """Desktop GUIs: the screen described in text; the screenshot is attached with `images=True`
    (for vision models) and otherwise only noted.

    The system prompt includes the env's action syntax when the reset info gives it
    (`info["action_syntax"]`, as the GUI envs do)."""

    family = "gui"
    role = "You are a computer-use agent operating a graphical desktop through mouse and keyboard."
    action_hint = "An action is one input command (click, type, key, scroll) in the env's syntax."

    def system_prompt(self, info: Mapping[str, Any]) -> str:
        prompt = super().system_prompt(info)
        syntax = str(info.get("action_syntax", "")).strip()
        return f"{prompt}\n\n{syntax}" if syntax else prompt

    def render_observation(self, observation: Mapping[str, Any] | str) -> str:
        text = f"Screen:\n{_text(observation)}"
        image = observation.get("image") if isinstance(observation, Mapping) else None
        shape = getattr(image, "shape", None)
        if shape is not None and len(shape) >= 2:
            if self.images:
                text += f"\n(The {shape[1]}x{shape[0]} screenshot is attached.)"
            else:
                # Text only: say so, rather than let the model assume it saw pixels.
                text += f"\n(A {shape[1]}x{shape[0]} screenshot was taken; it is not shown here.)"
        return text


class SWETemplate(PromptTemplate):
    """Software engineering: tool and shell output from a sandboxed repository."""

    family = "swe"
    role = "You are a software engineer fixing an issue in a repository through a sandboxed shell."
    action_hint = "An action is one tool call or shell command in the environment's syntax."

    def render_observation(self, observation: Mapping[str, Any] | str) -> str:
        code = _field(observation, "exit_code")
        head = f"Output (exit code {code}):" if code else "Output:"
        return f"{head}\n```\n{_text(observation)}\n```"


class SocialTemplate(PromptTemplate):
    """Dialogue and games with other agents: the conversation so far."""

    family = "social"
    role = "You are one participant in a conversation or game with other agents."
    action_hint = "An action is your next message or move, in the game's own words."
    observation_label = "Conversation"


_TEMPLATES: dict[str, type[PromptTemplate]] = {
    "text": TextTemplate,
    "web": WebTemplate,
    "gui": GUITemplate,
    "swe": SWETemplate,
    "social": SocialTemplate,
    "other": PromptTemplate,
}


def template_for(target: Any, **kwargs: Any) -> PromptTemplate:
    """The template for a family name, a registered env id, or an env.

    Example:
        >>> type(template_for("turnwise/KeyDoor-v0")).__name__
        'TextTemplate'
        >>> template_for("web", reply_format="plain").reply_format
        'plain'
    """
    family = _family_of(target)
    if family not in _TEMPLATES:
        raise ValueError(f"no template for family {family!r}; known: {', '.join(_TEMPLATES)}")
    return _TEMPLATES[family](**kwargs)


def _family_of(target: Any) -> str:
    if isinstance(target, str):
        if target.startswith("turnwise/"):
            from turnwise.registry import entry

            return entry(target).family
        return target
    unwrapped = getattr(target, "unwrapped", target)
    family = getattr(unwrapped, "family", None)
    if isinstance(family, str):
        return family
    spec = getattr(target, "spec", None)
    if spec is not None and isinstance(getattr(spec, "id", None), str):
        return _family_of(spec.id)
    return "other"


# ---------------------------------------------------------------------- history
def omitted_note(omitted: int, total: int) -> str:
    """The line that tells the model how many earlier turns it is not shown."""
    shown = total - omitted
    return f"[The first {omitted} of {total} earlier turns are omitted; the last {shown} follow.]"


def message_counter(tokenizer: Any = None) -> MessageCounter:
    """How to measure a prompt: exact tokens through the chat template, else characters / 4.

    Without a tokenizer a message counts `ceil(len(content) / 4) + 4` (the 4 stands for the
    role markers a chat template adds).

    Example:
        >>> message_counter()([{"role": "user", "content": "x" * 40}])
        14
    """
    if tokenizer is not None and has_chat_template(tokenizer):

        def exact(messages: Sequence[Message]) -> int:
            return len(encode(tokenizer, render_chat(tokenizer, messages, True)))

        return exact
    if tokenizer is not None:

        def by_tokens(messages: Sequence[Message]) -> int:
            return sum(len(encode(tokenizer, m["content"])) + 4 for m in messages)

        return by_tokens

    def by_chars(messages: Sequence[Message]) -> int:
        return sum(math.ceil(len(m["content"]) / 4) + 4 for m in messages)

    return by_chars


def build_messages(
    system: str,
    history: Sequence[Exchange],
    user: str,
    *,
    max_turns: int | None = None,
    token_budget: int | None = None,
    count: MessageCounter | None = None,
    system_role: bool = True,
) -> tuple[list[Message], int]:
    """The prompt for this turn and how many past exchanges it leaves out.

    Keeps at most the last `max_turns` exchanges, then drops the oldest until the prompt fits
    `token_budget` (as measured by `count`). The system prompt and the current `user` message are
    never cut, so a prompt may still exceed the budget when those alone do.
    """
    count = count or message_counter()
    limit = len(history) if max_turns is None else min(max_turns, len(history))

    def assemble(keep: int) -> list[Message]:
        kept = history[len(history) - keep :] if keep else []
        omitted = len(history) - keep
        users = [ex.user for ex in kept] + [user]
        if omitted:
            users[0] = omitted_note(omitted, len(history)) + "\n\n" + users[0]
        if not system_role:
            users[0] = system + "\n\n" + users[0]
        msgs: list[Message] = [{"role": "system", "content": system}] if system_role else []
        for ex, content in zip(kept, users, strict=False):
            msgs += [
                {"role": "user", "content": content},
                {"role": "assistant", "content": ex.reply},
            ]
        msgs.append({"role": "user", "content": users[-1]})
        return msgs

    keep = limit
    if token_budget is not None and count(assemble(keep)) > token_budget:
        # Binary search for the most exchanges that fit: a prompt grows with every turn kept.
        lo, hi = 0, keep - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if count(assemble(mid)) <= token_budget:
                lo = mid
            else:
                hi = mid - 1
        keep = lo
    return assemble(keep), len(history) - keep


# ---------------------------------------------------------------------- parsers
_THINK = re.compile(r"^\s*<think>.*?</think>", re.DOTALL)
_LABEL = re.compile(r"^(?:action|command|answer)\s*:\s*", re.IGNORECASE)


def parse_plain(text: str) -> ParseResult:
    """Parse a bare-action reply: one line, optionally after a `<think>…</think>` block.

    Quotes, backticks and an `Action:` label around the action are removed. A reply of several
    lines yields its first line and a format error; an empty reply yields '' and an error.

    Example:
        >>> parse_plain("  `go north`\\n")
        ParseResult(action='go north', ok=True, error=None)
        >>> parse_plain("Action: take key\\nbecause it opens the door")
        ParseResult(action='take key', ok=False, error='2 lines; expected one action')
    """
    body = _THINK.sub("", text, count=1)
    lines = [line.strip() for line in body.splitlines() if line.strip()]
    if not lines:
        return ParseResult("", False, "the reply holds no action")
    action = _LABEL.sub("", lines[0]).strip().strip("`\"'").strip()
    if not action:
        return ParseResult("", False, "the reply holds no action")
    if len(lines) > 1:
        return ParseResult(action, False, f"{len(lines)} lines; expected one action")
    return ParseResult(action, True)


# ---------------------------------------------------------------------- helpers
def _text(observation: Mapping[str, Any] | str) -> str:
    if isinstance(observation, str):
        return observation
    return str(observation.get("text", ""))


def _field(observation: Mapping[str, Any] | str, key: str) -> str:
    if not isinstance(observation, Mapping):
        return ""
    value = observation.get(key)
    return "" if value is None else str(value)


def _fields(
    observation: Mapping[str, Any] | str, names: Sequence[tuple[str, str]]
) -> list[tuple[str, str]]:
    return [(label, v) for key, label in names if (v := _field(observation, key))]
