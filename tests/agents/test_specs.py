"""Spec strings: parsing, clear errors, baselines, and lazy backends."""

from __future__ import annotations

import subprocess
import sys

import pytest

import turnwise
from turnwise.agents.agent import LLMAgent
from turnwise.agents.baselines import ExpertAgent, RandomAgent
from turnwise.agents.policy import Sampling
from turnwise.agents.prompting import TextTemplate, parse_plain
from turnwise.agents.specs import PolicySpec, load_agent, load_policy, parse_spec
from turnwise.episode import run_episode


@pytest.fixture
def env():
    env = turnwise.make("turnwise/KeyDoor-v0")
    yield env
    env.close()


@pytest.mark.parametrize(
    ("spec", "parsed"),
    [
        ("hf:/models/tiny", PolicySpec("hf", "/models/tiny")),
        ("vllm:rel/path", PolicySpec("vllm", "rel/path")),
        (
            "openai:http://127.0.0.1:8000/v1#m#1",
            PolicySpec("openai", "http://127.0.0.1:8000/v1#m#1"),
        ),
    ],
)
def test_parse_spec(spec, parsed) -> None:
    assert parse_spec(spec) == parsed and str(parsed) == spec


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("gpt-4", "hf:PATH, vllm:PATH, openai:URL#MODEL"),
        ("torch:/x", "a spec is one of"),
        ("hf:", "names no PATH"),
        ("openai:http://host/v1", "openai:http://HOST:PORT/v1#MODEL"),
        ("openai:host#model", "openai:http://HOST:PORT/v1#MODEL"),
        ("openai:http://host/v1#", "openai:http://HOST:PORT/v1#MODEL"),
    ],
)
def test_malformed_specs_list_the_forms(spec, message) -> None:
    with pytest.raises(ValueError, match=message.replace("+", r"\+")):
        load_policy(spec)


def test_agent_specs_include_the_baselines(env) -> None:
    assert isinstance(load_agent("expert", env), ExpertAgent)
    assert isinstance(load_agent("random", env, seed=1), RandomAgent)
    assert run_episode(env, load_agent("expert", env), seed=2).success
    with pytest.raises(ValueError, match="expert, random"):
        load_agent("human", env)
    with pytest.raises(TypeError, match="no options"):
        load_agent("expert", env, seed=1)


def test_a_missing_dependency_names_the_extra(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm now raises ModuleNotFoundError
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'turnwise\[vllm\]'"):
        load_policy("vllm:/models/tiny")
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ModuleNotFoundError, match=r"torch.*pip install 'turnwise\[agents\]'"):
        load_policy("hf:/models/tiny")


def test_backend_module_imports_nothing_heavy_until_loaded() -> None:
    code = (
        "import sys, turnwise.agents, turnwise.agents.specs, turnwise.agents.vllm_policy;"
        "print(sorted(m for m in ('torch', 'transformers', 'vllm') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_openai_spec_builds_the_client(env) -> None:
    pytest.importorskip("httpx")
    policy = load_policy("openai:http://127.0.0.1:9/v1#tiny", max_retries=0)
    assert policy.name == "openai:http://127.0.0.1:9/v1#tiny" and policy.tokenizer is None
    agent = load_agent("openai:http://127.0.0.1:9/v1#tiny", env, history=2, max_retries=0)
    assert isinstance(agent, LLMAgent) and isinstance(agent.template, TextTemplate)
    assert agent.max_turns == 2 and not agent.token_exact


def test_hf_spec_loads_the_tiny_model_in_an_agent(env) -> None:
    pytest.importorskip("torch")
    from turnwise.agents.tiny import default_checkpoint

    spec = f"hf:{default_checkpoint()}"
    agent = load_agent(spec, env, parser=parse_plain, sampling=Sampling(max_tokens=4), device="cpu")
    assert isinstance(agent, LLMAgent) and agent.policy.name == spec
    assert agent.template.reply_format == "plain" and agent.token_exact
    traj = run_episode(env, agent, seed=0, max_turns=1, policy=spec)
    assert traj.turns[0].token_ids and traj.policy == spec
