"""LLMAgent: the Agent protocol, the split begin/finish form, seeds, history, and the hf backend."""

from __future__ import annotations

import math
import zlib

import pytest

import turnwise
from turnwise.agents.agent import LLMAgent
from turnwise.agents.policy import Generation, Sampling
from turnwise.agents.prompting import PromptTemplate, TextTemplate, parse_plain
from turnwise.agents.tokens import trajectory_tensors
from turnwise.episode import run_episode
from turnwise.parsing import ByNumber
from turnwise.wrappers import ParseAction


class ExpertPolicy:
    """A tokenizer-less policy that replies with the env's expert action, in ReAct form."""

    name = "expert-llm"
    tokenizer = None

    def __init__(self, env, reply="<think>ok</think><action>{}</action>", ids=()):
        self.env, self.reply, self.ids = env, reply, list(ids)
        self.requests = []

    def generate(self, requests):
        self.requests += requests
        action = self.env.unwrapped.expert_action()
        text = self.reply.format(action)
        return [Generation(text, list(self.ids), None, "stop") for _ in requests]


class HashPolicy:
    """Deterministic in each request alone: the reply depends on the prompt and the seed."""

    name = "hash"
    tokenizer = None

    def __init__(self):
        self.calls = 0

    def generate(self, requests):
        self.calls += 1
        out = []
        for r in requests:
            key = f"{r.messages[-1]['content']}|{r.sampling.seed}".encode()
            n = zlib.crc32(key)
            out.append(Generation(f"<action>look {n % 97}</action>", [n % 50], [-0.5], "stop"))
        return out


@pytest.fixture
def env():
    env = turnwise.make("turnwise/KeyDoor-v0", difficulty="easy")
    yield env
    env.close()


def test_plays_an_episode_with_raw_replies_in_the_trajectory(env) -> None:
    policy = ExpertPolicy(env)
    agent = LLMAgent(policy)
    traj = run_episode(env, agent, seed=0, policy="expert-llm")
    assert traj.success and not agent.token_exact
    assert all(t.action.startswith("<think>ok</think><action>") for t in traj.turns)
    assert all(t.info["format_ok"] and t.valid for t in traj.turns)
    first = policy.requests[0].messages
    assert first[0]["role"] == "system" and "Find the gold coin" in first[0]["content"]
    assert "Admissible actions:" in first[1]["content"]
    # The whole history is sent each turn: system + (user, assistant) * t + user.
    assert [len(r.messages) for r in policy.requests] == [2 + 2 * t for t in range(traj.num_turns)]
    assert all(t.policy_seconds is not None and t.prompt_token_ids is None for t in traj.turns)


def test_malformed_replies_are_reported_and_fed_back(env) -> None:
    policy = ExpertPolicy(env, reply="I will {}")
    traj = run_episode(env, LLMAgent(policy), seed=0, max_turns=2)
    assert [t.info["format_ok"] for t in traj.turns] == [False, False]
    assert not traj.turns[0].valid and "no <action>" in traj.turns[0].info["format_error"]
    feedback = policy.requests[1].messages[-1]["content"]
    assert feedback.startswith("(Your last reply could not be used: no <action>")


def test_plain_parser_gets_a_plain_template(env) -> None:
    policy = ExpertPolicy(env, reply="{}")
    agent = LLMAgent(policy, parser=parse_plain)
    assert agent.template.reply_format == "plain"
    traj = run_episode(env, agent, seed=0)
    assert traj.success and all(t.info["format_ok"] for t in traj.turns)


class NumberPolicy:
    """Answers with the number of the expert's action in the listed admissible actions."""

    name, tokenizer = "numbers", None

    def __init__(self, env, offset=0):
        self.env, self.offset, self.prompts = env, offset, []

    def generate(self, requests):
        listed = list(self.env.unwrapped.admissible_actions())
        number = listed.index(self.env.unwrapped.expert_action()) + 1 + self.offset
        self.prompts += [r.messages[-1]["content"] for r in requests]
        return [Generation(f"<action>{number}</action>", [], None, "stop") for _ in requests]


def test_numbered_choices_send_the_listed_command(env) -> None:
    policy = NumberPolicy(env)
    agent = LLMAgent(policy, template=TextTemplate(choices="number"))
    assert isinstance(agent.parser, ByNumber)
    traj = run_episode(env, agent, seed=0)
    assert traj.success and all(t.valid and t.info["format_ok"] for t in traj.turns)
    # The raw reply is the number; the env got (and a replay would send) the command.
    assert all(t.action.strip("<>/action").isdigit() for t in traj.turns)
    commands = [t.info["env_action"] for t in traj.turns]
    assert commands[-1] == "take gold coin" and not any(c.isdigit() for c in commands)
    assert "\n1: " in policy.prompts[0] and "- " not in policy.prompts[0].split("actions:")[1]


def test_a_number_outside_the_list_is_a_format_error(env) -> None:
    agent = LLMAgent(NumberPolicy(env, offset=100), parser=ByNumber())
    assert agent.template.choices == "number"
    traj = run_episode(env, agent, seed=0, max_turns=2)
    first = traj.turns[0]
    assert not first.valid and not first.info["format_ok"] and first.info["env_action"] == ""
    assert "is not listed (the actions are numbered 1 to" in first.info["format_error"]


def test_turn_seeds_derive_from_the_reset_seed(env) -> None:
    agent = LLMAgent(HashPolicy(), sampling=Sampling(seed=7))
    a = run_episode(env, agent, seed=3, max_turns=3)
    b = run_episode(env, agent, seed=3, max_turns=3)
    c = run_episode(env, agent, seed=4, max_turns=3)
    seeds = [t.info["sampling_seed"] for t in a.turns]
    assert seeds == [t.info["sampling_seed"] for t in b.turns] and len(set(seeds)) == 3
    assert seeds != [t.info["sampling_seed"] for t in c.turns]
    assert a.actions() == b.actions()
    other = LLMAgent(HashPolicy(), sampling=Sampling(seed=8))
    assert run_episode(env, other, seed=3, max_turns=1).turns[0].info["sampling_seed"] != seeds[0]
    unseeded = LLMAgent(HashPolicy())
    unseeded.reset()
    assert unseeded.turn_seed(0) is None


def test_begin_finish_batches_many_agents_in_one_call() -> None:
    # As the rollout collector does: the env parses replies (ParseAction), agents see raw ones.
    envs = [ParseAction(turnwise.make("turnwise/KeyDoor-v0")) for _ in range(3)]
    batched = [LLMAgent(HashPolicy(), sampling=Sampling(seed=i)) for i in range(3)]
    policy = HashPolicy()
    obs_info = []
    for i, (e, agent) in enumerate(zip(envs, batched, strict=True)):
        agent.reset(seed=i)
        obs_info.append(e.reset(seed=i))
    replies = []
    for _ in range(2):
        requests = [
            agent.begin(o, info) for agent, (o, info) in zip(batched, obs_info, strict=True)
        ]
        gens = policy.generate(requests)
        replies.append([agent.finish(g) for agent, g in zip(batched, gens, strict=True)])
        obs_info = [e.step(r)[0::4] for e, r in zip(envs, replies[-1], strict=True)]
    assert policy.calls == 2
    # The same agents one at a time, through act(), say exactly the same.
    for i in range(3):
        e, solo = (
            turnwise.make("turnwise/KeyDoor-v0"),
            LLMAgent(HashPolicy(), sampling=Sampling(seed=i)),
        )
        traj = run_episode(e, solo, seed=i, max_turns=2)
        assert traj.actions() == [replies[0][i], replies[1][i]]
        assert solo.turn_record()["token_ids"] is not None


def test_split_form_is_used_in_order(env) -> None:
    agent = LLMAgent(HashPolicy())
    obs, info = env.reset(seed=0)
    with pytest.raises(RuntimeError, match="begin"):
        agent.finish(Generation("x", [], None, "stop"))
    agent.begin(obs, info)
    with pytest.raises(RuntimeError, match="twice"):
        agent.begin(obs, info)


def test_history_k_in_message_mode(env) -> None:
    policy = ExpertPolicy(env)
    traj = run_episode(env, LLMAgent(policy, history=1), seed=0)
    assert traj.success and traj.num_turns >= 3
    assert [len(r.messages) for r in policy.requests][:3] == [2, 4, 4]
    assert [t.info.get("omitted_turns", 0) for t in traj.turns][:3] == [0, 0, 1]


def test_token_budget_in_message_mode_counts_characters(env) -> None:
    policy = ExpertPolicy(env)
    run_episode(env, LLMAgent(policy, token_budget=150), seed=0)
    from turnwise.agents.prompting import message_counter

    count = message_counter()
    assert all(count(r.messages) <= 150 or len(r.messages) == 2 for r in policy.requests)
    assert any("earlier turns are omitted" in r.messages[1]["content"] for r in policy.requests)


def test_argument_checks(env) -> None:
    with pytest.raises(ValueError, match="history"):
        LLMAgent(HashPolicy(), history="some")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="token_budget"):
        LLMAgent(HashPolicy(), token_budget=0)
    with pytest.raises(ValueError, match="token_exact=True"):
        LLMAgent(HashPolicy(), token_exact=True)
    assert LLMAgent(HashPolicy(), template=PromptTemplate(max_admissible=0)).token_exact is False


# ---------------------------------------------------------------------- with the hf backend
@pytest.fixture(scope="module")
def tiny_policy():
    pytest.importorskip("torch")
    from turnwise.agents.hf import HFPolicy
    from turnwise.agents.tiny import default_checkpoint

    return HFPolicy.from_pretrained(default_checkpoint(), device="cpu")


def test_hf_episode_is_token_exact_and_its_logprobs_are_the_models(tiny_policy, env) -> None:
    import torch

    sampling = Sampling(temperature=1.0, max_tokens=8, seed=5)
    agent = LLMAgent(tiny_policy, sampling=sampling)
    assert agent.token_exact
    traj = run_episode(env, agent, seed=1, max_turns=3)
    again = run_episode(env, agent, seed=1, max_turns=3)
    assert [t.token_ids for t in traj.turns] == [t.token_ids for t in again.turns]
    t = trajectory_tensors(traj)
    assert sum(t.loss_mask) == sum(len(turn.token_ids or []) for turn in traj.turns)
    # Scoring the whole sequence at once gives back the log-probs recorded while sampling.
    with torch.inference_mode():
        logits = tiny_policy.model(torch.tensor([t.input_ids])).logits[0].float()
    scores = torch.log_softmax(logits[:-1], dim=-1)
    ids = torch.tensor(t.input_ids[1:])
    rescored = scores.gather(1, ids[:, None])[:, 0]
    for pos, (mask, lp) in enumerate(zip(t.loss_mask, t.logprobs, strict=True)):
        if mask:
            assert math.isclose(float(rescored[pos - 1]), lp, abs_tol=1e-3)
