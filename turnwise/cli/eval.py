"""`turnwise eval`: play a versioned suite with a policy; write its episodes and summary.

The flags are `turnwise.eval.run.EvalConfig`'s fields; see docs/evaluation.md.
"""

from __future__ import annotations

from typing import Any

from turnwise.cli._common import CLIError, console
from turnwise.eval.run import EvalConfig

__all__ = ["EvalConfig", "eval_command"]


def eval_command(config: EvalConfig) -> int:
    """Run the evaluation and print its summary table; 130 on Ctrl-C (it can be resumed)."""
    from turnwise.eval.run import evaluate
    from turnwise.eval.suites import SuiteError, load_suite

    out = console()
    try:
        suite = load_suite(config.suite)
    except SuiteError as exc:
        raise CLIError(str(exc)) from None
    for warning in suite.engine_warnings():
        console(stderr=True).print(f"turnwise: warning: {warning}", markup=False)
    try:
        summary = evaluate(config, progress=out.is_terminal)
    except (FileExistsError, ValueError) as exc:
        raise CLIError(str(exc)) from None
    except KeyboardInterrupt:
        console(stderr=True).print(
            f"turnwise: interrupted; finished episodes are in {config.out}/collect. "
            "Run the same command with --resume to carry on.",
            markup=False,
        )
        return 130
    out.print(summary_table(summary))
    out.print(f"episodes: {config.out / 'episodes.jsonl'}", markup=False)
    out.print(f"summary: {config.out / 'summary.json'}", markup=False)
    return 0


def summary_table(summary: dict[str, Any]) -> Any:
    """A rich table of a summary: overall, each family and each env."""
    from rich.table import Table

    table = Table(title=f"{summary['label']} on {summary['suite']['id']}", title_justify="left")
    for name in ("", "episodes", "success [95% CI]", "reward", "turns", "tokens", "errors"):
        table.add_column(name, justify="left" if not name else "right")
    rows = [("overall", summary["overall"])]
    rows += [(f"family {k}", v) for k, v in summary["families"].items()]
    rows += [(k, v) for k, v in summary["envs"].items()]
    for name, s in rows:
        table.add_row(
            name, str(s["episodes"]),
            f"{s['success_rate']:.2f} [{s['ci_low']:.2f}, {s['ci_high']:.2f}]",
            f"{s['reward_mean']:.2f}", f"{s['turns_mean']:.1f}", str(s["tokens"]),
            str(s["errors"]),
        )  # fmt: skip
    return table
