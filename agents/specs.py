"""Spec strings: one string names a policy or an agent, on the command line and in configs.

=========================== =================================================================
spec                        what it loads
=========================== =================================================================
``hf:PATH``                 a local transformers checkpoint (`turnwise.agents.hf.HFPolicy`)
``vllm:PATH``               the same checkpoint in vLLM's offline engine (GPU only)
``openai:URL#MODEL``        any OpenAI-compatible server, e.g. ``openai:http://127.0.0.1:8000/v1#tiny``
``expert``                  the env's oracle (`ExpertAgent`; agents only)
``random``                  uniform over the admissible actions (`RandomAgent`; agents only)
=========================== =================================================================

Backends are imported only when their spec is loaded; a missing dependency raises
`ModuleNotFoundError` naming the extra to install (`pip install 'turnwise[agents]'`).

Example:
    >>> import turnwise
    >>> env = turnwise.make("turnwise/KeyDoor-v0")
    >>> type(load_agent("expert", env)).__name__
    'ExpertAgent'
    >>> parse_spec("openai:http://127.0.0.1:8000/v1#tiny")
    PolicySpec(kind='openai', target='http://127.0.0.1:8000/v1#tiny')
    >>> load_policy("gpt-4")
    Traceback (most recent call last):
    ...
    ValueError: unknown policy spec 'gpt-4'; a spec is one of: hf:PATH, vllm:PATH, openai:URL#MODEL
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from typing import Any

import gymnasium

from .policy import Policy

__all__ = ["AGENT_FORMS", "POLICY_FORMS", "PolicySpec", "load_agent", "load_policy", "parse_spec"]

POLICY_FORMS = ("hf:PATH", "vllm:PATH", "openai:URL#MODEL")
AGENT_FORMS = (*POLICY_FORMS, "expert", "random")

# kind -> (module, class, constructor, extra that installs its dependencies)
_BACKENDS = {
    "hf": ("turnwise.agents.hf", "HFPolicy", "from_pretrained", "agents"),
    "vllm": ("turnwise.agents.vllm_policy", "VLLMPolicy", None, "vllm"),
    "openai": ("turnwise.agents.openai_policy", "OpenAIPolicy", "from_spec", "agents"),
}


@dataclass(frozen=True)
class PolicySpec:
    """A parsed model spec: the backend `kind` and its `target` (a path, or `URL#MODEL`)."""

    kind: str
    target: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.target}"


def parse_spec(spec: str) -> PolicySpec:
    """Split a model spec into backend and target; a malformed one raises `ValueError`."""
    kind, sep, target = spec.partition(":") if isinstance(spec, str) else ("", "", "")
    if not sep or kind not in _BACKENDS:
        raise ValueError(
            f"unknown policy spec {spec!r}; a spec is one of: {', '.join(POLICY_FORMS)}"
        )
    if not target.strip():
        raise ValueError(
            f"policy spec {spec!r} names no {'URL#MODEL' if kind == 'openai' else 'PATH'}"
        )
    if kind == "openai":
        url, hash_, model = target.rpartition("#")
        if not hash_ or not url or not model or "://" not in url:
            raise ValueError(
                f"an openai spec looks like openai:http://HOST:PORT/v1#MODEL, got {spec!r}"
            )
    return PolicySpec(kind, target)


def load_policy(spec: str, **kwargs: Any) -> Policy:
    """Load the policy named by `spec`; keyword arguments go to the backend's constructor.

    `hf:PATH` calls `HFPolicy.from_pretrained(PATH, **kwargs)`, `vllm:PATH` calls
    `VLLMPolicy(PATH, **kwargs)`, and `openai:URL#MODEL` calls
    `OpenAIPolicy.from_spec(spec, **kwargs)`. A missing dependency raises `ModuleNotFoundError`
    naming the extra that installs it.
    """
    parsed = parse_spec(spec)
    module_name, class_name, constructor, extra = _BACKENDS[parsed.kind]
    try:
        # Backends import their heavy dependencies at module level or in the constructor.
        cls = getattr(importlib.import_module(module_name), class_name)
        make = cls if constructor is None else getattr(cls, constructor)
        # OpenAIPolicy.from_spec parses the whole spec; the others take the path.
        policy = make(str(parsed) if parsed.kind == "openai" else parsed.target, **kwargs)
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.split(".")[0] == "turnwise":
            raise  # part of turnwise itself is missing: a broken install, not an extra
        raise ModuleNotFoundError(
            f"the {parsed.kind} backend needs {exc.name}, which is not installed: "
            f"pip install 'turnwise[{extra}]'" + (" (CUDA only)" if parsed.kind == "vllm" else ""),
            name=exc.name,
        ) from exc
    return policy


def load_agent(spec: str, env: gymnasium.Env[Any, Any], **kwargs: Any) -> Any:
    """The agent named by `spec`, set up for `env`.

    `expert` and `random` are the baselines (`random` takes `seed=`). A model spec loads its
    policy and wraps it in an `LLMAgent` with the template of the env's family; keyword
    arguments that `LLMAgent` takes (`template`, `parser`, `sampling`, `history`,
    `token_budget`, `token_exact`) go to it, the rest to the policy's constructor.

    Example:
        >>> import turnwise
        >>> env = turnwise.make("turnwise/KeyDoor-v0")
        >>> _, info = env.reset(seed=0)
        >>> load_agent("random", env, seed=0).act({}, info) in info["admissible_actions"]
        True
    """
    from .baselines import ExpertAgent, RandomAgent

    if spec == "expert":
        if kwargs:
            raise TypeError(f"the expert agent takes no options, got {sorted(kwargs)}")
        return ExpertAgent(env)
    if spec == "random":
        return RandomAgent(seed=kwargs.pop("seed", None), action_space=env.action_space, **kwargs)
    try:
        parse_spec(spec)
    except ValueError:
        raise ValueError(
            f"unknown agent spec {spec!r}; a spec is one of: {', '.join(AGENT_FORMS)}"
        ) from None

    from .agent import LLMAgent
    from .prompting import parse_plain, template_for

    names = set(inspect.signature(LLMAgent).parameters) - {"policy"}
    agent_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in names}
    if "template" not in agent_kwargs:
        plain = agent_kwargs.get("parser") is parse_plain
        agent_kwargs["template"] = template_for(env, reply_format="plain" if plain else "react")
    return LLMAgent(load_policy(spec, **kwargs), **agent_kwargs)
