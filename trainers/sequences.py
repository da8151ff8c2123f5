"""Training sequences: trajectories as token rows, padded batches, and per-token log-probs.

A trajectory collected by a token-exact agent is one sequence per context
(`turnwise.agents.tokens.trajectory_segments`): the prompt deltas and the sampled ids in order,
with a loss mask that is 1 exactly on sampled tokens. A `Row` adds what the trainer attaches to
each token (its advantage, its turn) and remembers which trajectory it came from; `collate`
right-pads rows into tensors; `token_logprobs` runs the model once over a batch and returns the
log-probability of every token given the ones before it.

Example:
    >>> rows = [Row([5, 6, 7], [0, 1, 1], [0, 0, 0], [0.0, -0.5, -0.2]), Row([5, 8], [0, 1], [0, 0])]
    >>> batch = collate(rows, pad_id=0)
    >>> batch["input_ids"].tolist(), batch["loss_mask"].tolist()
    ([[5, 6, 7], [5, 8, 0]], [[False, True, True], [False, True, False]])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from turnwise.trajectory import Trajectory

if TYPE_CHECKING:
    import torch

__all__ = ["Row", "collate", "rows_of", "token_logprobs"]


@dataclass
class Row:
    """One training sequence: tokens, where the loss applies, and per-token training data."""

    input_ids: list[int]
    loss_mask: list[int]
    """1 on tokens the policy generated (trained), 0 on prompt tokens."""
    turn_index: list[int]
    """The turn each token belongs to."""
    sampler_logprobs: list[float] | None = None
    """Log-probs the sampling backend reported for generated tokens (0.0 elsewhere)."""
    advantages: list[float] = field(default_factory=list)
    """Per-token advantage, 0 on prompt tokens (filled in by the trainer)."""
    trajectory: int = 0
    """Index of the trajectory this row came from, in the batch being trained on."""
    turns: list[int] = field(default_factory=list)
    """The turn indices this row covers."""

    def __post_init__(self) -> None:
        n = len(self.input_ids)
        if len(self.loss_mask) != n or len(self.turn_index) != n:
            raise ValueError(
                f"row lengths differ: {n} ids, {len(self.loss_mask)} mask, "
                f"{len(self.turn_index)} turn indices"
            )
        if self.sampler_logprobs is not None and len(self.sampler_logprobs) != n:
            raise ValueError(f"{len(self.sampler_logprobs)} sampler log-probs for {n} tokens")
        if not self.advantages:
            self.advantages = [0.0] * n
        elif len(self.advantages) != n:
            raise ValueError(f"{len(self.advantages)} advantages for {n} tokens")

    @property
    def generated(self) -> int:
        """How many tokens are trained."""
        return sum(self.loss_mask)


def rows_of(trajectories: Sequence[Trajectory], max_length: int | None = None) -> list[Row]:
    """Every training row of `trajectories` (one per context), `trajectory` set to its index.

    Rows longer than `max_length` tokens are cut at the end (their later turns are not trained):
    a trainer's memory bound, reported by the caller when it happens.
    """
    from turnwise.agents.tokens import trajectory_segments

    rows = []
    for index, traj in enumerate(trajectories):
        for seg in trajectory_segments(traj):
            cut = len(seg.input_ids) if max_length is None else max_length
            rows.append(
                Row(
                    input_ids=seg.input_ids[:cut],
                    loss_mask=seg.loss_mask[:cut],
                    turn_index=seg.turn_index[:cut],
                    sampler_logprobs=seg.logprobs[:cut] if seg.has_logprobs else None,
                    trajectory=index,
                    turns=list(seg.turns),
                )
            )
    return rows


def collate(rows: Sequence[Row], pad_id: int, device: Any = None) -> dict[str, torch.Tensor]:
    """Right-pad `rows` into `[B, L]` tensors.

    Returns `input_ids` (long), `attention_mask` (long), `loss_mask` (bool; False on padding),
    `turn_index` (long; -1 on padding), `advantages` and `sampler_logprobs` (float32; 0 on
    padding and prompt tokens) and `trajectory` (`[B]`, long).
    """
    import torch

    if not rows:
        raise ValueError("no rows to collate")
    length = max(len(r.input_ids) for r in rows)

    def padded(values: list[Any], fill: Any) -> list[Any]:
        return values + [fill] * (length - len(values))

    return {
        "input_ids": torch.tensor(
            [padded(r.input_ids, pad_id) for r in rows], dtype=torch.long, device=device
        ),
        "attention_mask": torch.tensor(
            [padded([1] * len(r.input_ids), 0) for r in rows], dtype=torch.long, device=device
        ),
        "loss_mask": torch.tensor(
            [padded(r.loss_mask, 0) for r in rows], dtype=torch.bool, device=device
        ),
        "turn_index": torch.tensor(
            [padded(r.turn_index, -1) for r in rows], dtype=torch.long, device=device
        ),
        "advantages": torch.tensor(
            [padded(r.advantages, 0.0) for r in rows], dtype=torch.float32, device=device
        ),
        "sampler_logprobs": torch.tensor(
            [padded(r.sampler_logprobs or [0.0] * len(r.input_ids), 0.0) for r in rows],
            dtype=torch.float32,
            device=device,
        ),
        "trajectory": torch.tensor([r.trajectory for r in rows], dtype=torch.long, device=device),
    }


def token_logprobs(
    model: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    *,
    temperature: float = 1.0,
    return_hidden: bool = False,
) -> Any:
    """`log π(token_t | tokens_<t)` for every position (position 0, which has no context: 0).

    Log-probs come from `log_softmax` of the logits in float32 (at `temperature`, default 1: the
    raw distribution that samplers report and importance ratios use). With `return_hidden` the
    last hidden states `[B, L, H]` come back too (for value and progress heads on the backbone).
    """
    import torch

    output = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        output_hidden_states=return_hidden,
        use_cache=False,
    )
    logits = output.logits[:, :-1]
    # log_softmax (in float32) then gather, one row at a time: the [L, V] float32 slab of a long
    # row is the largest tensor of a training step, so never hold B of them at once.
    picked = []
    for row in range(input_ids.shape[0]):
        row_logits = logits[row].float()
        if temperature != 1.0:
            row_logits = row_logits / temperature
        logp = torch.log_softmax(row_logits, dim=-1)
        picked.append(logp.gather(-1, input_ids[row, 1:, None]).squeeze(-1))
    logprobs = torch.nn.functional.pad(torch.stack(picked), (1, 0), value=0.0)
    if return_hidden:
        return logprobs, output.hidden_states[-1]
    return logprobs
