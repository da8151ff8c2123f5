"""`turnwise train ALGO`: train an LLM agent on a text env (see docs/trainers/).

The flags are `turnwise.trainers.config.TrainConfig`'s fields; the algorithm's preset fills
every option not given.
"""

from __future__ import annotations

import os

from turnwise.cli._common import CLIError, console, env_entry, make_env
from turnwise.trainers.config import TrainConfig

__all__ = ["TrainConfig", "train_command"]


def train_command(config: TrainConfig) -> int:
    """Run (or resume) the training and print where its outputs went; 130 on Ctrl-C."""
    try:
        from turnwise.trainers.loop import train
    except ImportError as exc:
        raise CLIError(
            f"turnwise train needs the training extra ({exc.name} is missing): "
            "pip install 'turnwise[train]'"
        ) from None

    env_entry(config.env, single_agent_for="train")
    out = console()
    try:
        make_env(config.env, config.env_kwargs_dict()).close()  # bad env arguments: exit 2
        result = train(config)
    except (FileExistsError, FileNotFoundError, ValueError) as exc:
        raise CLIError(str(exc)) from None
    except KeyboardInterrupt:
        console(stderr=True).print(
            f"turnwise: interrupted; the last checkpoint is in {config.out}/checkpoints. "
            "Run the same command with --resume to carry on.",
            markup=False,
        )
        return 130
    if int(os.environ.get("RANK", "0")) != 0:
        return 0  # a data-parallel rank other than 0: rank 0 reports
    last = result.history[-1] if result.history else {}
    evaluated = [h for h in result.history if "eval/success_rate" in h]
    summary = (
        f"{result.iterations} iterations; rollout success {last.get('rollout/success_rate', 0):.2f}"
    )
    if evaluated:
        e = evaluated[-1]
        summary += (
            f"; held-out success {e['eval/success_rate']:.2f} "
            f"[{e['eval/success_rate_ci_low']:.2f}, {e['eval/success_rate_ci_high']:.2f}]"
        )
    out.print(summary, markup=False)
    out.print(f"metrics: {result.out / 'metrics.jsonl'}", markup=False)
    if result.checkpoint is not None:
        out.print(f"checkpoint: {result.checkpoint}", markup=False)
    if result.curve is not None:
        out.print(f"learning curve: {result.curve}", markup=False)
    return 0
