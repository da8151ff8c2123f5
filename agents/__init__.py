"""Agents: policies (model backends), prompt templates and parsers, token-exact turns.

Everything here is imported on first use, so `import turnwise.agents` imports nothing heavy:
torch, transformers and vLLM load only with the backend that needs them.

Example:
    >>> import turnwise
    >>> from turnwise.agents import load_agent
    >>> from turnwise.episode import run_episode
    >>> env = turnwise.make("turnwise/KeyDoor-v0")
    >>> run_episode(env, load_agent("expert", env), seed=0).success
    True
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .agent import LLMAgent
    from .baselines import ExpertAgent, RandomAgent
    from .policy import Generation, GenerationRequest, Policy, Sampling
    from .prompting import PromptTemplate, build_messages, parse_plain, template_for
    from .specs import load_agent, load_policy
    from .tokens import TokenContext, TokenizedTrajectory, trajectory_segments, trajectory_tensors

# name -> submodule that defines it
_EXPORTS = {
    "LLMAgent": "agent",
    "ExpertAgent": "baselines",
    "RandomAgent": "baselines",
    "Generation": "policy",
    "GenerationRequest": "policy",
    "Policy": "policy",
    "Sampling": "policy",
    "PromptTemplate": "prompting",
    "build_messages": "prompting",
    "parse_plain": "prompting",
    "template_for": "prompting",
    "load_agent": "specs",
    "load_policy": "specs",
    "TokenContext": "tokens",
    "TokenizedTrajectory": "tokens",
    "trajectory_segments": "tokens",
    "trajectory_tensors": "tokens",
    # heavy backends
    "HFPolicy": "hf",
    "VLLMPolicy": "vllm_policy",
    "OpenAIPolicy": "openai_policy",
}

__all__ = [
    "ExpertAgent",
    "Generation",
    "GenerationRequest",
    "HFPolicy",
    "LLMAgent",
    "OpenAIPolicy",
    "Policy",
    "PromptTemplate",
    "RandomAgent",
    "Sampling",
    "TokenContext",
    "TokenizedTrajectory",
    "VLLMPolicy",
    "build_messages",
    "load_agent",
    "load_policy",
    "parse_plain",
    "template_for",
    "trajectory_segments",
    "trajectory_tensors",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
