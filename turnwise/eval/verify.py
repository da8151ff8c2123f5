"""`turnwise leaderboard verify`: replay a submission's episodes and check the env's side.

A policy cannot be re-run, but everything the environment produced can be: each episode's
recorded actions are replayed through the same env, task and reset seed, and the episode is
rejected when an observation, a reward (or one of its terms), the valid flag, the end of the
episode or its success differs from the record, naming the first turn that differs. The
submission as a whole is rejected when an episode of the suite is missing or doubled, an
episode was played on a seed the suite does not give, the suite's digest differs, or the
summary's numbers are not the ones its episodes give. Engine versions that differ from the
submission's are warned about (a replay may then differ for that reason alone).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from turnwise.eval.run import EPISODES, SUITE, SUMMARY, summarize
from turnwise.eval.suites import Suite, SuiteEntry, installed_versions, list_suites, load_suite
from turnwise.trajectory import Trajectory

__all__ = ["Rejection", "VerifyReport", "replay_episode", "verify"]

_TOLERANCE = 1e-9


@dataclass(frozen=True)
class Rejection:
    """Why one episode (or the submission as a whole, `episode` None) is rejected."""

    reason: str
    episode: str | None = None
    """`ENV TASK seed S`, when the reason is one episode's."""
    turn: int | None = None
    """The first turn that differs (0-based), when the reason is a turn's."""

    def __str__(self) -> str:
        where = self.episode or "submission"
        if self.turn is not None:
            where += f", turn {self.turn}"
        return f"{where}: {self.reason}"


@dataclass
class VerifyReport:
    """The outcome of `verify`."""

    suite: str
    episodes: int = 0
    """Episodes replayed."""
    rejections: list[Rejection] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.rejections


def verify(submission: str | Path, *, suite: str | Path | None = None) -> VerifyReport:
    """Replay the submission in folder `submission` (its `summary.json` and `episodes.jsonl`).

    Args:
        submission: the output folder of `turnwise eval` (or its summary.json).
        suite: the suite to check against (default: the one the summary names, built in).

    Raises:
        ValueError: the submission's files are missing or unreadable.
    """
    from turnwise.eval.leaderboard import load_summary
    from turnwise.trajectory import TrajectoryFormatError, read_jsonl

    folder = Path(submission)
    if folder.name == SUMMARY:
        folder = folder.parent
    summary = load_summary(folder)
    suite_id = summary["suite"]["id"]
    try:
        episodes = read_jsonl(folder / EPISODES)
    except FileNotFoundError:
        raise ValueError(f"{folder} has no {EPISODES}: the episodes are the evidence") from None
    except (OSError, TrajectoryFormatError, ValueError) as exc:
        raise ValueError(f"{folder / EPISODES} is not readable: {exc}") from None
    warnings = []
    if suite is not None:
        the_suite = load_suite(suite)
    elif suite_id in list_suites():
        the_suite = load_suite(suite_id)
    elif (folder / SUITE).is_file():
        the_suite = load_suite(folder / SUITE)
        warnings.append(
            f"{suite_id} is not a built-in suite: checked against the copy the submission "
            f"carries ({SUITE}); pass --suite FILE to check against yours"
        )
    else:
        raise ValueError(f"{suite_id} is not a built-in suite: pass --suite FILE")
    report = VerifyReport(the_suite.id, warnings=warnings)
    if summary["suite"].get("digest") != the_suite.digest:
        report.rejections.append(
            Rejection(
                f"evaluated on suite {suite_id} with digest {summary['suite'].get('digest')}, "
                f"not {the_suite.id}'s {the_suite.digest}: not the same episodes"
            )
        )
        return report
    installed = installed_versions(summary.get("engines", {}))
    for name, version in sorted(summary.get("engines", {}).items()):
        if installed.get(name) != version:
            report.warnings.append(
                f"the submission ran {name}=={version}, this machine has "
                f"{installed.get(name) or 'none'}: a difference may come from that alone"
            )
    placed = _place(episodes, the_suite, report)
    for traj in placed:
        entry = the_suite.entries[int(traj.metadata["suite_entry"])]
        problem = replay_episode(traj, entry)
        report.episodes += 1
        if problem is not None:
            turn, reason = problem
            report.rejections.append(Rejection(reason, _name(traj), turn))
    if report.ok:
        _check_summary(summary, summarize(placed, the_suite, policy=""), report)
    return report


def _name(traj: Trajectory) -> str:
    return f"{traj.env_id} {traj.task_id} seed {traj.metadata.get('suite_seed')}"


def _place(episodes: list[Trajectory], suite: Suite, report: VerifyReport) -> list[Trajectory]:
    """The episodes in suite order, each checked to be one the suite plays, once."""
    from turnwise.rollout.collector import derive_seed

    expected = dict.fromkeys(suite.episodes())
    found: dict[tuple[int, str, int], Trajectory] = {}
    for traj in episodes:
        try:
            key = (
                int(traj.metadata["suite_entry"]),
                traj.task_id,
                int(traj.metadata["suite_seed"]),
            )
        except (KeyError, TypeError, ValueError):
            report.rejections.append(
                Rejection("no suite_entry/suite_seed in its metadata", _name(traj))
            )
            continue
        if key not in expected:
            report.rejections.append(Rejection("not an episode of the suite", _name(traj)))
            continue
        entry = suite.entries[key[0]]
        if traj.env_id != entry.env:
            report.rejections.append(
                Rejection(f"played on {traj.env_id}, not {entry.env}", _name(traj))
            )
            continue
        if traj.seed != derive_seed("env", key[2], traj.task_id):
            report.rejections.append(
                Rejection(f"reset seed {traj.seed} is not the suite's for this task", _name(traj))
            )
            continue
        if key in found:
            report.rejections.append(Rejection("the episode appears twice", _name(traj)))
            continue
        found[key] = traj
    for key in expected:
        if key not in found:
            env = suite.entries[key[0]].env
            report.rejections.append(
                Rejection(f"missing: {env} {key[1]} seed {key[2]} was not played")
            )
    return [found[key] for key in expected if key in found]


def replay_episode(traj: Trajectory, entry: SuiteEntry) -> tuple[int | None, str] | None:
    """Replay `traj`'s actions in a fresh env of `entry`; None when everything matches, else
    (the first turn that differs, or None for the reset, and what differs)."""
    import turnwise

    env = turnwise.make(entry.env, **dict(entry.env_kwargs))
    try:
        obs, info = env.reset(seed=traj.seed, options={"task_id": traj.task_id})
        first = traj.turns[0].observation if traj.turns else traj.final_observation
        if _text(obs) != first:
            return None, "the first observation differs " + _diff(first, _text(obs))
        ended = False
        for i, turn in enumerate(traj.turns):
            if ended:
                return i, "the env had ended the episode before this turn"
            action = turn.info.get("env_action", turn.action) if turn.info else turn.action
            obs, reward, terminated, truncated, info = env.step(str(action))
            problem = _compare_turn(turn, float(reward), terminated, truncated, info)
            if problem is not None:
                return i, problem
            recorded = (
                traj.turns[i + 1].observation if i + 1 < len(traj.turns) else traj.final_observation
            )
            if _text(obs) != recorded:
                return i, "the observation after it differs " + _diff(recorded, _text(obs))
            ended = terminated or truncated
        n = len(traj.turns)
        if not ended and (entry.max_turns is None or n != entry.max_turns):
            limit = f"the suite's limit of {entry.max_turns}" if entry.max_turns else "no limit"
            return (n - 1 if n else None), (
                f"the record stops after {n} turns, but the env had not ended the episode "
                f"({limit}): turns are missing"
            )
        if entry.max_turns is not None and n > entry.max_turns:
            return (
                entry.max_turns,
                f"the record goes past the suite's limit of {entry.max_turns} turns",
            )
        success = bool(info.get("success", False)) if ended else False
        if success != traj.success:
            return (
                n - 1 if n else None
            ), f"success is {success} on replay, {traj.success} recorded"
        return None
    finally:
        env.close()


def _compare_turn(
    turn: Any, reward: float, terminated: bool, truncated: bool, info: dict[str, Any]
) -> str | None:
    if not math.isclose(reward, turn.reward, rel_tol=0.0, abs_tol=_TOLERANCE):
        return f"the reward is {reward:g} on replay, {turn.reward:g} recorded"
    terms = {k: float(v) for k, v in info.get("reward_terms", {}).items()}
    if set(terms) != set(turn.reward_terms) or any(
        not math.isclose(terms[k], float(turn.reward_terms[k]), abs_tol=_TOLERANCE) for k in terms
    ):
        return f"the reward terms are {terms} on replay, {dict(turn.reward_terms)} recorded"
    valid = bool(info.get("valid_action", True))
    if valid != turn.valid:
        return f"the action is {'valid' if valid else 'invalid'} on replay, not as recorded"
    if bool(terminated) != turn.terminated:
        return f"terminated is {bool(terminated)} on replay, {turn.terminated} recorded"
    if bool(truncated) and not turn.truncated:
        return "the env truncated the episode here on replay, not in the record"
    return None


def _check_summary(claimed: dict[str, Any], actual: dict[str, Any], report: VerifyReport) -> None:
    """The summary's env-side numbers (episodes, success and its interval, reward, turns) must
    be the episodes'."""
    keys = ("episodes", "success_rate", "ci_low", "ci_high", "reward_mean", "turns_mean")
    groups = [("overall", claimed.get("overall"), actual["overall"])]
    for part in ("families", "envs"):
        for name, stats in actual[part].items():
            groups.append((f"{part[:-1]} {name}", (claimed.get(part) or {}).get(name), stats))
    for where, said, real in groups:
        if not isinstance(said, dict):
            report.rejections.append(Rejection(f"summary.json has no statistics for {where}"))
            continue
        for key in keys:
            value = said.get(key)
            if not isinstance(value, (int, float)) or not math.isclose(
                float(value), float(real[key]), abs_tol=1e-6
            ):
                report.rejections.append(
                    Rejection(
                        f"summary.json says {where} {key} = {value}, the episodes give {real[key]:g}"
                    )
                )


def _text(obs: Any) -> str:
    return str(obs.get("text", "")) if isinstance(obs, dict) else str(obs)


def _diff(recorded: str, replayed: str) -> str:
    """Where two texts part, quoted briefly."""
    at = next(
        (i for i, (a, b) in enumerate(zip(recorded, replayed, strict=False)) if a != b),
        min(len(recorded), len(replayed)),
    )
    start = max(0, at - 20)
    return (
        f"at character {at}: recorded {recorded[start : at + 40]!r}, "
        f"replayed {replayed[start : at + 40]!r}"
    )
