"""`turnwise leaderboard build` and `turnwise leaderboard verify`.

`build RESULTS... --out SITE` ranks evaluation summaries into a static page and a Markdown
table; `verify SUBMISSION` replays a submission's episodes through the envs (see
docs/evaluation.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Union

import tyro

from turnwise.cli._common import CLIError, console

__all__ = ["BuildConfig", "LeaderboardConfig", "VerifyConfig", "leaderboard"]


@dataclass
class BuildConfig:
    """Build a leaderboard page (index.html) and a Markdown table from evaluation results."""

    results: Annotated[
        tuple[Path, ...], tyro.conf.Positional, tyro.conf.arg(metavar="RESULTS...")
    ] = ()
    """`turnwise eval` output folders (or their summary.json files); at least one."""
    out: Annotated[Path, tyro.conf.arg(metavar="SITE")] = Path("site")
    """Folder for index.html, leaderboard.md and results.json."""
    title: str = "turnwise leaderboard"
    """The page's title."""


@dataclass
class VerifyConfig:
    """Replay a submission's episodes through the same envs, tasks and seeds; exit 1 when any
    observation, reward or outcome differs."""

    submission: Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar="SUBMISSION")]
    """A `turnwise eval` output folder (summary.json and episodes.jsonl)."""
    suite: str = ""
    """Check against this suite (id or .json file) instead of the built-in one the summary
    names."""


@dataclass
class LeaderboardConfig:
    """Publish evaluation results as a leaderboard page, or verify a submission by replay."""

    command: Annotated[
        Union[  # noqa: UP007 (tyro reads the members as the subcommands)
            Annotated[BuildConfig, tyro.conf.subcommand("build", prefix_name=False)],
            Annotated[VerifyConfig, tyro.conf.subcommand("verify", prefix_name=False)],
        ],
        tyro.conf.OmitArgPrefixes,
    ]
    """`build` a page from results, or `verify` a submission."""


def leaderboard(config: LeaderboardConfig) -> int:
    """Run `build` or `verify`."""
    if isinstance(config.command, BuildConfig):
        return _build(config.command)
    return _verify(config.command)


def _build(config: BuildConfig) -> int:
    from turnwise.eval.leaderboard import build_site, compare_versions, load_summary

    if not config.results:
        raise CLIError("leaderboard build needs at least one evaluation folder (RESULTS...)")
    try:
        summaries = [load_summary(path) for path in config.results]
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    for warning in compare_versions(summaries):
        console(stderr=True).print(f"turnwise: warning: {warning}", markup=False)
    index = build_site(summaries, config.out, title=config.title)
    out = console()
    out.print((config.out / "leaderboard.md").read_text(encoding="utf-8"), markup=False)
    out.print(f"page: {index}", markup=False)
    return 0


def _verify(config: VerifyConfig) -> int:
    from turnwise.eval.suites import SuiteError
    from turnwise.eval.verify import verify

    try:
        report = verify(config.submission, suite=config.suite or None)
    except (SuiteError, ValueError) as exc:
        raise CLIError(str(exc)) from None
    err = console(stderr=True)
    for warning in report.warnings:
        err.print(f"turnwise: warning: {warning}", markup=False)
    out = console()
    if report.ok:
        out.print(
            f"verified: {report.episodes} episodes of {report.suite} replay exactly, and the "
            "summary is theirs",
            markup=False,
        )
        return 0
    for rejection in report.rejections:
        out.print(f"rejected: {rejection}", markup=False)
    out.print(
        f"{len(report.rejections)} problem(s); {report.episodes} episodes replayed", markup=False
    )
    return 1
