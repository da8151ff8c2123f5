"""`LLMJudge`: any policy as a judge, with versioned prompts, a cache, counted calls and retries.

A judge turns a *rubric* (`JudgePrompt`: a named, versioned pair of system and user templates
and a parser for the reply) and the fields to fill in into a verdict, by asking a policy
(`hf:PATH`, `vllm:PATH`, `openai:URL#MODEL`, or any `turnwise.agents.Policy` object).

* **Versioned prompts.** A verdict records the prompt's `name` and `version`; changing a prompt's
  text is a new version, and cached verdicts of the old one are never reused for it.
* **Cache.** Verdicts are keyed by (policy, prompt name and version, the rendered messages, the
  sampling); a repeated question costs nothing. Pass `cache=PATH` to keep them in a JSON-lines
  file across runs (appended as they come; a broken line is skipped with a warning).
* **Counted calls.** `stats` counts questions, policy calls, cache hits, retries, missing
  verdicts, prompt and completion tokens, and the cost at `price_per_mtok` (USD per million
  prompt and completion tokens; zero for local models).
* **Malformed replies** are answered with the parser's complaint and asked again, up to
  `retries` times; if no reply parses, the verdict is *missing* (`Verdict.value is None`, its
  `error` says why). A missing verdict is never turned into a zero score: callers record it.

Example:
    >>> from turnwise.agents.policy import Generation
    >>> class Echo:  # a stand-in policy that always answers "7"
    ...     name = "echo"
    ...     tokenizer = None
    ...     def generate(self, requests):
    ...         return [Generation("7", [1], None, "stop", [1, 2, 3]) for _ in requests]
    >>> def as_int(text):
    ...     if not text.strip().isdigit():
    ...         raise ValueError("reply with a number")
    ...     return int(text)
    >>> rubric = JudgePrompt("digit", 1, "You grade.", "Grade: {answer}", as_int)
    >>> judge = LLMJudge(Echo())
    >>> judge.ask(rubric, answer="42").value, judge.ask(rubric, answer="42").cached
    (7, True)
    >>> judge.stats.calls, judge.stats.cache_hits, judge.stats.prompt_tokens
    (1, 1, 3)
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["JudgePrompt", "JudgeStats", "LLMJudge", "Verdict", "extract_json"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JudgePrompt:
    """A rubric: a named, versioned prompt and the parser of its replies.

    `system` and `user` are `str.format` templates over the fields passed to `LLMJudge.ask`.
    `parse(reply_text)` returns the verdict's value, or raises `ValueError` with a message the
    judge model is shown when it is asked again.
    """

    name: str
    version: int
    system: str
    user: str
    parse: Callable[[str], Any]

    @property
    def id(self) -> str:
        """`name@vVERSION`, as recorded with every verdict."""
        return f"{self.name}@v{self.version}"

    def messages(self, fields: Mapping[str, Any]) -> list[dict[str, str]]:
        """The chat messages for `fields`."""
        return [
            {"role": "system", "content": self.system.format(**fields)},
            {"role": "user", "content": self.user.format(**fields)},
        ]


@dataclass
class Verdict:
    """The judge's answer to one question."""

    value: Any
    """What the prompt's parser made of the reply; None when the verdict is missing."""
    prompt: str
    """The prompt's id (`name@vN`)."""
    replies: list[str] = field(default_factory=list)
    """Every reply the judge model gave, the last one first parsed (or not)."""
    error: str | None = None
    """Why the verdict is missing (the last parse error, or the policy's failure)."""
    cached: bool = False

    @property
    def missing(self) -> bool:
        return self.value is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "prompt": self.prompt,
            "replies": list(self.replies),
            "error": self.error,
            "cached": self.cached,
        }


@dataclass
class JudgeStats:
    """What a judge has cost so far."""

    questions: int = 0
    """`ask` calls."""
    calls: int = 0
    """Policy generations (first tries and retries; cache hits excluded)."""
    cache_hits: int = 0
    retries: int = 0
    missing: int = 0
    """Questions whose every reply was malformed (or whose policy failed)."""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def extract_json(text: str) -> Any:
    """The first JSON object in `text` (bare, or in a ```json fence); `ValueError` if none."""
    decoder = json.JSONDecoder()
    start = text.find("{")
    while start != -1:
        try:
            value, _ = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            start = text.find("{", start + 1)
            continue
        return value
    raise ValueError("the reply holds no JSON object; reply with one JSON object only")


class LLMJudge:
    """Ask a policy to judge, through versioned rubrics; cache, count and retry.

    Args:
        policy: a policy spec (`hf:PATH`, `vllm:PATH`, `openai:URL#MODEL`) or a `Policy` object.
        sampling: how the judge samples (default: greedy, up to 768 tokens).
        retries: how often a malformed reply is answered and asked again before the verdict is
            recorded as missing.
        cache: None (in memory only) or a JSON-lines file that keeps verdicts across runs.
        price_per_mtok: (prompt, completion) USD per million tokens, for `stats.cost_usd`.
    """

    def __init__(
        self,
        policy: Any,
        *,
        sampling: Any = None,
        retries: int = 2,
        cache: str | Path | None = None,
        price_per_mtok: tuple[float, float] = (0.0, 0.0),
    ) -> None:
        from turnwise.agents.policy import Sampling

        if isinstance(policy, str):
            from turnwise.agents.specs import load_policy

            policy = load_policy(policy)
        if not callable(getattr(policy, "generate", None)):
            raise TypeError(f"a judge needs a policy spec or a Policy object, got {policy!r}")
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        self.policy = policy
        self.sampling = sampling if sampling is not None else Sampling(0.0, max_tokens=768)
        self.retries = int(retries)
        self.price_per_mtok = (float(price_per_mtok[0]), float(price_per_mtok[1]))
        self.stats = JudgeStats()
        self._lock = threading.Lock()
        self._memory: dict[str, dict[str, Any]] = {}
        self._cache_path = Path(cache) if cache is not None else None
        if self._cache_path is not None and self._cache_path.exists():
            self._load_cache(self._cache_path)

    @property
    def name(self) -> str:
        return str(getattr(self.policy, "name", type(self.policy).__name__))

    # ------------------------------------------------------------------ asking
    def ask(self, prompt: JudgePrompt, **fields: Any) -> Verdict:
        """Judge one question: `prompt` filled with `fields`."""
        return self.ask_many(prompt, [fields])[0]

    def ask_many(
        self, prompt: JudgePrompt, questions: Sequence[Mapping[str, Any]]
    ) -> list[Verdict]:
        """Judge many questions with one rubric; the policy sees them as one batch per round."""
        verdicts: list[Verdict | None] = [None] * len(questions)
        pending: dict[int, list[dict[str, str]]] = {}
        keys: dict[int, str] = {}
        with self._lock:
            self.stats.questions += len(questions)
            for i, fields in enumerate(questions):
                messages = prompt.messages(fields)
                keys[i] = self._key(prompt, messages)
                hit = self._cached(keys[i], prompt)
                if hit is not None:
                    self.stats.cache_hits += 1
                    verdicts[i] = hit
                else:
                    pending[i] = messages
        replies: dict[int, list[str]] = {i: [] for i in pending}
        errors: dict[int, str] = {}
        for attempt in range(self.retries + 1):
            if not pending:
                break
            order = sorted(pending)
            texts = self._generate([pending[i] for i in order], attempt)
            if isinstance(texts, str):  # the policy failed: every pending verdict is missing
                errors.update(dict.fromkeys(order, texts))
                break
            for i, text in zip(order, texts, strict=True):
                replies[i].append(text)
                try:
                    value = prompt.parse(text)
                except (ValueError, TypeError, KeyError) as exc:
                    errors[i] = str(exc) or type(exc).__name__
                    pending[i] = [
                        *pending[i],
                        {"role": "assistant", "content": text},
                        {"role": "user", "content": _retry_message(errors[i])},
                    ]
                    continue
                errors.pop(i, None)
                verdicts[i] = Verdict(value, prompt.id, replies[i])
                del pending[i]
                self._remember(keys[i], prompt, replies[i])
            if pending and attempt < self.retries:
                with self._lock:
                    self.stats.retries += len(pending)
        for i in range(len(questions)):
            if verdicts[i] is None:
                with self._lock:
                    self.stats.missing += 1
                verdicts[i] = Verdict(None, prompt.id, replies.get(i, []), errors.get(i))
        return [v for v in verdicts if v is not None]

    def _generate(self, conversations: list[list[dict[str, str]]], attempt: int) -> list[str] | str:
        from dataclasses import replace

        from turnwise.agents.policy import GenerationRequest

        # A retry samples afresh: a greedy judge would otherwise repeat itself exactly.
        sampling = self.sampling
        if attempt and sampling.seed is not None:
            sampling = replace(sampling, seed=sampling.seed + attempt)
        requests = [GenerationRequest(messages=list(c), sampling=sampling) for c in conversations]
        try:
            generations = self.policy.generate(requests)
        except Exception as exc:  # a judge that cannot be reached leaves verdicts missing
            log.warning("judge %s failed: %s", self.name, exc)
            return f"the judge policy failed: {type(exc).__name__}: {exc}"
        with self._lock:
            self.stats.calls += len(generations)
            for generation in generations:
                prompt_n, completion_n = _token_counts(generation)
                self.stats.prompt_tokens += prompt_n
                self.stats.completion_tokens += completion_n
                self.stats.cost_usd += (
                    prompt_n * self.price_per_mtok[0] + completion_n * self.price_per_mtok[1]
                ) / 1e6
        return [g.text for g in generations]

    # ------------------------------------------------------------------ cache
    def _key(self, prompt: JudgePrompt, messages: list[dict[str, str]]) -> str:
        sampling = self.sampling
        payload = json.dumps(
            [self.name, prompt.id, messages, sampling.temperature, sampling.top_p,
             sampling.max_tokens, sampling.seed],
            sort_keys=True,
        )  # fmt: skip
        return hashlib.sha256(payload.encode()).hexdigest()

    def _cached(self, key: str, prompt: JudgePrompt) -> Verdict | None:
        entry = self._memory.get(key)
        if entry is None:
            return None
        try:
            value = prompt.parse(entry["replies"][-1])
        except (ValueError, TypeError, KeyError, IndexError):
            return None  # an entry the parser no longer accepts is asked again
        return Verdict(value, prompt.id, list(entry["replies"]), cached=True)

    def _remember(self, key: str, prompt: JudgePrompt, replies: list[str]) -> None:
        entry = {"key": key, "prompt": prompt.id, "judge": self.name, "replies": list(replies)}
        with self._lock:
            self._memory[key] = entry
            if self._cache_path is not None:
                self._cache_path.parent.mkdir(parents=True, exist_ok=True)
                with self._cache_path.open("a", encoding="utf-8") as f:
                    f.write(json.dumps(entry) + "\n")

    def _load_cache(self, path: Path) -> None:
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            try:
                entry = json.loads(line)
                replies = entry["replies"]
                if not isinstance(replies, list) or not replies:
                    raise ValueError("no replies")
                self._memory[str(entry["key"])] = entry
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("%s line %d: skipping a broken cache entry (%s)", path, n, exc)


def _retry_message(error: str) -> str:
    return (
        f"Your reply could not be read: {error}. Answer again, in exactly the format asked for, "
        "with nothing else."
    )


def _token_counts(generation: Any) -> tuple[int, int]:
    """(prompt, completion) tokens of a generation: the server's usage, else the token lists."""
    usage = generation.info.get("usage") if isinstance(generation.info, dict) else None
    if isinstance(usage, dict) and "prompt_tokens" in usage:
        return int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
    prompt = generation.prompt_token_ids or []
    return len(prompt), len(generation.token_ids or [])
