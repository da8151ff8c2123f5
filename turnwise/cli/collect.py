"""`turnwise collect`: play many episodes in worker processes into a resumable rollout folder.

The flags are `turnwise.rollout.CollectConfig`'s fields; see docs/rollouts.md.
"""

from __future__ import annotations

from turnwise.cli._common import CLIError, console, env_entry
from turnwise.rollout.collector import CollectConfig

__all__ = ["CollectConfig", "collect_command"]


def collect_command(config: CollectConfig) -> int:
    """Run the collection and print where it went; 130 on Ctrl-C (the run can be resumed)."""
    from turnwise.rollout.collector import collect
    from turnwise.rollout.store import StoreMismatchError

    env_entry(config.env, single_agent_for="collect")
    out = console()
    try:
        result = collect(config)
    except StoreMismatchError as exc:
        raise CLIError(str(exc)) from None
    except ValueError as exc:
        # Unknown split, more tasks than the split has, a malformed policy spec: all fixed on
        # the command line.
        raise CLIError(str(exc)) from None
    except KeyboardInterrupt:
        console(stderr=True).print(
            f"turnwise: interrupted; finished episodes are in {config.out}. "
            "Run the same command with --resume to carry on.",
            markup=False,
        )
        return 130
    counts = result.counts
    out.print(
        f"{result.collected} episodes collected ({result.skipped} already done) in "
        f"{result.seconds:.1f} s: {counts['written']} trajectories in {len(result.shards)} "
        f"shards, {counts['success']} successful, {counts['truncated']} truncated, "
        f"{counts['failed']} failed",
        markup=False,
    )
    out.print(f"manifest: {result.manifest}", markup=False)
    return 0
