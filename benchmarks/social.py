"""What a social step costs: TextArena through turnwise against the bare game, Social-v0, the judge.

Measured in one process, side by side (median and p95 over `--repeats` episodes):

* TextArena (`IteratedUltimatumGame-v0`, fixed moves: 5 rounds of offer and accept): one move
  through `TextArenaEnv.step` (every seat's observation and info, state keys, reward terms)
  against the same move on textarena's bare game (`step` plus `get_observation`).
* `turnwise/Social-v0` without a judge: a reset and one line of conversation.
* `LLMJudge`: the seven-dimension verdict of a finished conversation from an in-process policy
  that answers at once (so only turnwise's work is timed: rendering, parsing, counting) against
  the same question answered from the cache.

Usage: python benchmarks/social.py [--repeats N] [--out benchmarks/results/social.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
from typing import Any

from _common import machine, quantile, timed_ms, write_result

GAME = "IteratedUltimatumGame-v0"
MOVES = ["[Offer: $20]", "[Accept]"] * 5
SCORES = {"goal": 6, "believability": 8, "knowledge": 4, "secret": 0, "relationship": 1,
          "social_rules": 0, "financial": 1}  # fmt: skip


def summary_us(times_ms: list[float]) -> dict[str, Any]:
    """Count, median and p95 in microseconds (these steps take well under a millisecond)."""
    us = [t * 1000 for t in times_ms]
    return {"n": len(us), "median_us": round(statistics.median(us), 1),
            "p95_us": round(quantile(us, 0.95), 1)}  # fmt: skip


def arena(repeats: int) -> dict[str, Any]:
    import textarena

    from turnwise.envs.social.arena import TextArenaEnv

    env = TextArenaEnv(GAME)
    players = env.possible_agents
    turnwise_ms: list[float] = []
    for _ in range(repeats):
        env.reset(options={"task_id": "train/0000"})
        for i, move in enumerate(MOVES):
            joint = dict.fromkeys(players, "")
            joint[players[i % 2]] = move
            turnwise_ms += timed_ms(lambda joint=joint: env.step(joint), 1)
    bare_ms: list[float] = []
    for _ in range(repeats):
        game = textarena.make(f"{GAME}-raw")
        game.reset(num_players=2, seed=0)
        game.get_observation()
        for move in MOVES:
            bare_ms += timed_ms(lambda g=game, m=move: (g.step(m), g.get_observation()), 1)
    env.close()
    return {"turnwise_step": summary_us(turnwise_ms), "bare_textarena_step": summary_us(bare_ms)}


def social(repeats: int) -> dict[str, Any]:
    from turnwise.envs.social.env import SocialEnv

    env = SocialEnv()
    task = env.tasks("train")[0]
    resets = timed_ms(lambda: env.reset(options={"task_id": task}), repeats)
    env.reset(options={"task_id": task})
    line = {"player_0": "Thanks for coming on short notice.", "player_1": ""}
    steps = timed_ms(
        lambda: env.step(line), repeats, before=lambda: env.reset(options={"task_id": task})
    )
    return {"reset": summary_us(resets), "step": summary_us(steps)}


class Instant:
    """A judge policy that answers every question at once with the same verdict."""

    name = "instant"
    tokenizer = None

    def generate(self, requests: Any) -> list[Any]:
        from turnwise.agents.policy import Generation

        text = json.dumps({"agent_1": SCORES, "agent_2": SCORES})
        return [Generation(text, [1] * 40, None, "stop", [1] * 900) for _ in requests]


def judge(repeats: int) -> dict[str, Any]:
    from turnwise.envs.social.env import SocialEnv
    from turnwise.envs.social.rubric import EPISODE_RUBRIC
    from turnwise.judging import LLMJudge

    env = SocialEnv(max_turns=20)
    env.reset(options={"task_id": env.tasks("train")[0]})
    for i in range(19):
        speaker = env.possible_agents[i % 2]
        env.step({speaker: f"Line {i} of a conversation about the matter at hand."})
    scenario = env.scenario
    fields = {
        "setting": scenario.setting, "relationship": scenario.relationship,
        "profile_1": scenario.characters[0].profile(), "profile_2": scenario.characters[1].profile(),
        "goal_1": scenario.goals[0], "goal_2": scenario.goals[1], "transcript": env.transcript(),
    }  # fmt: skip
    fresh: list[float] = []
    for _ in range(repeats):
        llm_judge = LLMJudge(Instant())
        fresh += timed_ms(lambda j=llm_judge: j.ask(EPISODE_RUBRIC, **fields), 1)
    cached_judge = LLMJudge(Instant())
    cached_judge.ask(EPISODE_RUBRIC, **fields)
    cached = timed_ms(lambda: cached_judge.ask(EPISODE_RUBRIC, **fields), repeats)
    return {"fresh_verdict": summary_us(fresh), "cached_verdict": summary_us(cached)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--out", default="benchmarks/results/social.json")
    args = parser.parse_args()
    result = {
        "machine": machine(),
        "repeats": args.repeats,
        "arena": arena(args.repeats),
        "social": social(args.repeats),
        "judge": judge(args.repeats),
    }
    for part in ("arena", "social", "judge"):
        for name, summary in result[part].items():
            print(f"{part:7s} {name:22s} median {summary['median_us']:8.1f} us   "
                  f"p95 {summary['p95_us']:8.1f} us   (n={summary['n']})")  # fmt: skip
    write_result(result, args.out)


if __name__ == "__main__":
    main()
