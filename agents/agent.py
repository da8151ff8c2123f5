"""`LLMAgent`: a policy, a prompt template and a parser, playing one episode at a time.

It implements the `turnwise.episode.Agent` protocol (`reset`, `act`, `parser`, `turn_record`),
so `run_episode(env, agent)` plays it, and the split form `begin(obs, info) -> request` /
`finish(generation) -> reply` that lets the rollout collector answer many agents' requests in
one batched `policy.generate` call (`act` is exactly `finish(generate([begin(...)])[0])`).

Two ways to build the prompt:

* **token-exact** (the default when the policy has a tokenizer with a chat template, e.g. `hf`
  and `vllm`): the context is token ids grown by appending (`turnwise.agents.tokens`); each
  turn records the appended delta as `prompt_token_ids` and the sampled ids as `token_ids`, so
  `trajectory_tensors(traj)` gives the trainer exactly what was sampled.
* **messages** (policies without a tokenizer, e.g. `openai`, or `token_exact=False`): each turn
  sends the chat messages, re-rendered from the history. When the backend reports the prompt
  ids it tokenized, the turn records them whole, marked `context_reset` (each turn is then its
  own training sequence).
* **with images** (a template with `images=True`, for vision models): messages mode, with the
  observation's screenshot attached to the current user message as an OpenAI-style image part.
  The token budget counts the text only.

History (`history="full"` or the last k exchanges) and `token_budget` (the most tokens a prompt
may hold; generation's `max_tokens` comes on top) are applied the same way in both modes: the
oldest exchanges go first, the system prompt and the current observation stay, and the prompt
says how many turns were omitted. In token-exact mode the context cannot shrink in place, so
when the next turn would break the limit the agent starts a fresh context from the system
prompt, the most recent exchanges that fit (their replies rendered as text through the chat
template) and the current observation; that turn's `prompt_token_ids` is the whole new context,
and its `info` says `context_reset: true` and `omitted_turns: n`. With `history=k` this happens
on every turn after the k-th.

Sampling seeds: each turn's seed is derived from the agent's `sampling.seed` and the episode's
reset seed, so the same agent, env seed and backend replay the same episode. Agents collected as
one group (same task and env seed) need different `sampling.seed`s, or they sample alike.

Example:
    >>> import turnwise
    >>> from turnwise.agents.policy import Generation
    >>> from turnwise.episode import run_episode
    >>> class Echo:  # a stand-in policy that always answers "look"
    ...     name, tokenizer = "echo", None
    ...     def generate(self, requests):
    ...         return [Generation("<action>look</action>", [], None, "stop") for _ in requests]
    >>> env = turnwise.make("turnwise/KeyDoor-v0", max_turns=2)
    >>> traj = run_episode(env, LLMAgent(Echo()), seed=0)
    >>> traj.actions(), traj.turns[0].info["format_ok"]
    (['<action>look</action>', '<action>look</action>'], True)
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from typing import Any, Literal

import numpy as np

from turnwise.parsing import ByNumber, ParseResult, parse_tagged

from .policy import Generation, GenerationRequest, Policy, Sampling, with_image
from .prompting import Exchange, PromptTemplate, build_messages, message_counter, parse_plain
from .tokens import CONTEXT_RESET, TokenContext, has_chat_template

__all__ = ["LLMAgent"]

History = Literal["full"] | int


class LLMAgent:
    """An LLM agent: `policy` + `template` (observation → messages) + `parser` (reply → action).

    Args:
        policy: any `Policy` (`hf`, `vllm`, `openai`, or your own).
        template: renders observations (default: the generic template, in the reply format of
            `parser`); `turnwise.agents.template_for(env)` picks the one for an env's family.
        parser: reply text → `ParseResult`; `run_episode` wraps the env in `ParseAction` with it.
            With a `choices="number"` template it is wrapped in `ByNumber`.
        sampling: temperature, top-p, max tokens, stop strings and the base seed.
        history: `"full"`, or keep only the last k exchanges (k >= 0).
        token_budget: the most tokens a prompt may hold (measured with the policy's tokenizer
            when it has one, else characters / 4); oldest exchanges are dropped to fit.
        token_exact: grow the context by appending token ids (needs a tokenizer with a chat
            template). None means: whenever the policy has one.
    """

    def __init__(
        self,
        policy: Policy,
        *,
        template: PromptTemplate | None = None,
        parser: Callable[[str], ParseResult] = parse_tagged,
        sampling: Sampling | None = None,
        history: History = "full",
        token_budget: int | None = None,
        token_exact: bool | None = None,
    ) -> None:
        if history != "full" and not (isinstance(history, int) and history >= 0):
            raise ValueError(f"history must be 'full' or an int >= 0, got {history!r}")
        if token_budget is not None and token_budget < 1:
            raise ValueError(f"token_budget must be positive, got {token_budget}")
        tokenizer = getattr(policy, "tokenizer", None)
        usable = tokenizer is not None and has_chat_template(tokenizer)
        if template is not None and template.images:
            # Images travel in chat messages; a token context has no place for them.
            if token_exact:
                raise ValueError("a template with images=True needs token_exact=False")
            usable = False
        if token_exact and not usable:
            raise ValueError(
                f"token_exact=True needs a policy whose tokenizer has a chat template; "
                f"{getattr(policy, 'name', policy)!r} has none"
            )
        self.policy = policy
        base = parser.parser if isinstance(parser, ByNumber) else parser
        self.template = template or PromptTemplate(
            reply_format="plain" if base is parse_plain else "react",
            choices="number" if isinstance(parser, ByNumber) else "text",
        )
        # A template that numbers the admissible actions needs a parser that reads numbers.
        by_number = self.template.choices == "number" and not isinstance(parser, ByNumber)
        self.parser: Callable[[str], ParseResult] = ByNumber(parser) if by_number else parser
        self.sampling = sampling or Sampling()
        self.max_turns = None if history == "full" else int(history)
        self.token_budget = token_budget
        self.token_exact = usable if token_exact is None else token_exact
        self.tokenizer = tokenizer
        self._count = message_counter(tokenizer)
        self.reset()

    # ------------------------------------------------------------------ episode state
    def reset(self, seed: int | None = None) -> None:
        """Forget the last episode; `seed` (the env's reset seed) seeds this episode's sampling."""
        entropy = [s for s in (self.sampling.seed, seed) if s is not None]
        self._entropy: list[int] | None = entropy or None
        self._system: str | None = None
        self._history: list[Exchange] = []
        self._context: TokenContext | None = None
        self._pending: tuple[str, float] | None = None
        self._record: dict[str, Any] = {}
        self._turn_info: dict[str, Any] = {}
        self._prompt_delta: list[int] | None = None

    def turn_seed(self, turn: int) -> int | None:
        """The sampling seed of turn `turn` of this episode (None when unseeded)."""
        if self._entropy is None:
            return None
        return int(np.random.SeedSequence([*self._entropy, turn]).generate_state(1)[0])

    # ------------------------------------------------------------------ the split form
    def begin(
        self, observation: Mapping[str, Any] | str, info: Mapping[str, Any]
    ) -> GenerationRequest:
        """The request for this turn (answer it, then pass the generation to `finish`)."""
        if self._pending is not None:
            raise RuntimeError("begin() was called twice without finish()")
        if self._system is None:
            self._system = self.template.system_prompt(info)
        user = self.template.user_message(observation, info)
        turn = len(self._history)
        seed = self.turn_seed(turn)
        sampling = dataclasses.replace(self.sampling, seed=seed)
        self._turn_info = {} if seed is None else {"sampling_seed": seed}
        self._prompt_delta = None
        if self.token_exact:
            request = GenerationRequest(prompt_token_ids=self._grow(user), sampling=sampling)
        else:
            messages, omitted = self._messages(user)
            if omitted:
                self._turn_info["omitted_turns"] = omitted
            image = observation.get("image") if isinstance(observation, Mapping) else None
            if self.template.images and image is not None:
                messages[-1] = with_image(messages[-1], image)
            request = GenerationRequest(messages=messages, sampling=sampling)
        self._pending = (user, time.perf_counter())
        return request

    def finish(self, generation: Generation) -> str:
        """Take the policy's answer to `begin`'s request; returns the raw reply for the env."""
        if self._pending is None:
            raise RuntimeError("finish() needs a begin() first")
        user, started = self._pending
        self._pending = None
        reply = generation.text
        info = {**self._turn_info, "finish_reason": generation.finish_reason}
        prompt_ids = self._prompt_delta
        if self._context is not None:
            if not generation.token_ids:
                raise ValueError(
                    f"policy {self.policy.name!r} returned no token ids; token-exact turns need "
                    "them (pass token_exact=False)"
                )
            self._context.add_generated(generation.token_ids, reply)
        elif generation.prompt_token_ids:
            prompt_ids = list(generation.prompt_token_ids)
            if self._history:
                info[CONTEXT_RESET] = True
        self._history.append(Exchange(user, reply))
        self._record = {
            "prompt_token_ids": prompt_ids,
            "token_ids": list(generation.token_ids) if generation.token_ids else None,
            "logprobs": list(generation.logprobs) if generation.logprobs is not None else None,
            "policy_seconds": time.perf_counter() - started,
            "info": info,
        }
        if self._record["token_ids"] is None:
            self._record["logprobs"] = None
        return reply

    def act(self, observation: Mapping[str, Any] | str, info: Mapping[str, Any]) -> str:
        """Generate this turn's reply (raw: `run_episode` parses it with `parser`)."""
        request = self.begin(observation, info)
        (generation,) = self.policy.generate([request])
        return self.finish(generation)

    def turn_record(self) -> dict[str, Any]:
        """`Turn` fields for the turn just taken (token ids, log-probs, prompt delta, timing)."""
        return dict(self._record)

    # ------------------------------------------------------------------ prompts
    def _messages(self, user: str) -> tuple[list[dict[str, str]], int]:
        assert self._system is not None
        return build_messages(
            self._system,
            self._history,
            user,
            max_turns=self.max_turns,
            token_budget=self.token_budget,
            count=self._count,
            system_role=self.template.system_role,
        )

    def _grow(self, user: str) -> list[int]:
        """Append this turn to the token context, or start a fresh one when it would not fit."""
        ctx = self._context
        if ctx is not None:
            delta = ctx.delta(user)
            too_many = self.max_turns is not None and ctx.exchanges > self.max_turns
            too_long = self.token_budget is not None and len(ctx) + len(delta) > self.token_budget
            if not (too_many or too_long):
                ctx.append(delta, user)
                self._prompt_delta = delta
                return list(ctx.ids)
        fresh = TokenContext(self.tokenizer)
        messages, omitted = self._messages(user)
        self._prompt_delta = fresh.start(messages)
        if ctx is not None:
            self._turn_info[CONTEXT_RESET] = True
        if omitted:
            self._turn_info["omitted_turns"] = omitted
        self._context = fresh
        return list(fresh.ids)
