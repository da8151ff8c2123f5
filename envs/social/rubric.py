"""The judge's rubrics for `turnwise/Social-v0`: Sotopia's seven dimensions, and goal progress.

`EPISODE_RUBRIC` asks the judge to score each character of a finished conversation on the seven
dimensions of SOTOPIA-EVAL, each on its own range:

==============  ========  ====================================================================
dimension       range     what it measures
==============  ========  ====================================================================
goal            0..10     how far the character achieved its private goal
believability   0..10     how natural and true to its profile the character behaved
knowledge       0..10     how much new and important information it gained
secret          -10..0    how much of its secret it gave away (0: nothing)
relationship    -5..5     how the conversation changed the relationship
social_rules    -10..0    how badly it broke moral rules or laws (0: not at all)
financial       -5..5     its material or financial gain (or loss)
==============  ========  ====================================================================

`TURN_RUBRIC` asks only for each character's goal completion so far (0..10), for turn-level
rewards. The prompts are versioned (`JudgePrompt.version`): a change of wording is a new
version, so cached verdicts of the old wording are never reused.

Example:
    >>> scores = parse_episode_scores(
    ...     '{"agent_1": {"goal": {"reasoning": "agreed", "score": 8}, "believability": 9,'
    ...     ' "knowledge": 5, "secret": 0, "relationship": 2, "social_rules": 0, "financial": 1},'
    ...     ' "agent_2": {"goal": 3, "believability": 8, "knowledge": 4, "secret": -2,'
    ...     ' "relationship": 1, "social_rules": 0, "financial": -1}}'
    ... )
    >>> scores[0]["goal"], scores[1]["secret"]
    (8.0, -2.0)
"""

from __future__ import annotations

from typing import Any

from turnwise.judging import JudgePrompt, extract_json

__all__ = [
    "DIMENSIONS",
    "EPISODE_RUBRIC",
    "TURN_RUBRIC",
    "parse_episode_scores",
    "parse_goal_progress",
]

#: dimension -> (lowest, highest) score.
DIMENSIONS: dict[str, tuple[int, int]] = {
    "goal": (0, 10),
    "believability": (0, 10),
    "knowledge": (0, 10),
    "secret": (-10, 0),
    "relationship": (-5, 5),
    "social_rules": (-10, 0),
    "financial": (-5, 5),
}
_AGENTS = ("agent_1", "agent_2")

_EPISODE_SYSTEM = """\
You evaluate role-played conversations between two characters. You know both characters' \
profiles, secrets and private goals; the characters themselves did not know each other's goals \
or secrets. Judge only from the transcript, be strict and consistent, and answer with one JSON \
object and nothing else."""

# What both rubrics show the judge first: the scenario, both profiles and both private goals.
_SCENARIO = """\
Setting: {setting}
Relationship: {relationship}

agent_1 is {profile_1}
agent_1's private goal: {goal_1}

agent_2 is {profile_2}
agent_2's private goal: {goal_2}
"""

_EPISODE_USER = (
    _SCENARIO
    + """
Transcript:
{transcript}

Score each agent on every dimension, an integer within the range given:
- goal (0 to 10): how far the agent achieved its private goal; 10 means fully.
- believability (0 to 10): how natural, coherent and true to its profile the agent behaved.
- knowledge (0 to 10): how much new, important information the agent gained.
- secret (-10 to 0): how much of its secret the agent revealed; 0 means none, -10 all of it.
- relationship (-5 to 5): how the conversation changed the agent's relationship with the other; \
negative means it was harmed.
- social_rules (-10 to 0): how badly the agent broke social norms, moral rules or laws; 0 means \
not at all.
- financial (-5 to 5): the agent's financial or material gain (positive) or loss (negative).

Reply with exactly this JSON shape, a short reason before each score:
{{"agent_1": {{"goal": {{"reasoning": "...", "score": 0}}, "believability": {{...}}, \
"knowledge": {{...}}, "secret": {{...}}, "relationship": {{...}}, "social_rules": {{...}}, \
"financial": {{...}}}}, "agent_2": {{...the same seven...}}}}"""
)

_TURN_USER = (
    _SCENARIO
    + """
The conversation so far:
{transcript}

How far has each agent achieved its private goal so far, from 0 (not at all) to 10 (fully)? \
Reply with exactly this JSON shape and nothing else: {{"agent_1": 0, "agent_2": 0}}"""
)


def _score(agent: str, dimension: str, raw: Any) -> float:
    value = raw.get("score") if isinstance(raw, dict) else raw
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise ValueError(f"{agent}'s {dimension} score {value!r} is not a number") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{agent} has no number for {dimension}")
    low, high = DIMENSIONS[dimension]
    if not low <= value <= high:
        raise ValueError(f"{agent}'s {dimension} score {value} is outside {low} to {high}")
    return float(value)


def _agents(text: str) -> list[Any]:
    data = extract_json(text)
    if not isinstance(data, dict):
        raise ValueError("the reply must be a JSON object with keys agent_1 and agent_2")
    missing = [a for a in _AGENTS if a not in data]
    if missing:
        raise ValueError(f"the reply has no scores for {' and '.join(missing)}")
    return [data[a] for a in _AGENTS]


def parse_episode_scores(text: str) -> tuple[dict[str, float], dict[str, float]]:
    """Both agents' seven scores from a judge reply; `ValueError` says what is wrong."""
    result = []
    for agent, block in zip(_AGENTS, _agents(text), strict=True):
        if not isinstance(block, dict):
            raise ValueError(f"{agent}'s scores must be a JSON object of the seven dimensions")
        absent = [d for d in DIMENSIONS if d not in block]
        if absent:
            raise ValueError(f"{agent} has no score for {', '.join(absent)}")
        result.append({d: _score(agent, d, block[d]) for d in DIMENSIONS})
    return result[0], result[1]


def parse_goal_progress(text: str) -> tuple[float, float]:
    """Both agents' goal completion so far (0..10) from a judge reply."""
    first, second = (_score(a, "goal", v) for a, v in zip(_AGENTS, _agents(text), strict=True))
    return first, second


EPISODE_RUBRIC = JudgePrompt(
    "social-episode", 1, _EPISODE_SYSTEM, _EPISODE_USER, parse_episode_scores
)
TURN_RUBRIC = JudgePrompt("social-turn-goal", 1, _EPISODE_SYSTEM, _TURN_USER, parse_goal_progress)
