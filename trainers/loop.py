"""The training loop shared by every algorithm.

Each iteration:

1. **collect**: the next `tasks_per_iteration` tasks of the shuffled train split, K rollouts
   each, through the rollout collector (env worker processes, every waiting turn in one
   batched `generate` call of the policy being trained), into `OUT/rollouts/iter-NNNNN/`;
2. **score** without gradient: the policy's log-probs of what it sampled (the "old" policy of
   the ratio: recomputed with the same weights, as LOOP does, rather than trusting a sampler's
   numbers), the reference's when there is a KL penalty or PRIME, the critic's values;
   algorithm state is updated here (SPA's progress head, OPRL/PRIME's implicit PRM, ARPO's
   replay buffer);
3. **credit**: per-token advantages (`turnwise.trainers.algorithms.assign_credit`);
4. **update**: `epochs` passes over the rows in `minibatches` optimizer steps each, with the
   clipped surrogate of `turnwise.trainers.losses.policy_loss` (gradient accumulation over
   micro-batches, so the loss is the same as one big batch), and the critic's value loss;
5. **log** (`rollout/`, `reward/`, `loss/`, `perf/`, `eval/`), **evaluate** greedy episodes
   on the held-out split every `eval_every` iterations, **checkpoint** every
   `checkpoint_every`.

The `hf` backend generates with the very model being trained, so new weights are used from
the next iteration on with no transfer. A run resumes from its last checkpoint: the rollouts of
the iteration in progress are kept (they were sampled by the checkpoint's weights), later ones
are discarded, and sampling seeds depend only on (seed, iteration), so a resumed run
continues as the uninterrupted one would.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from turnwise.trajectory import Trajectory

from .algorithms import Batch, ReplayBuffer, assign_credit, group_members, turn_rewards
from .config import TrainConfig
from .sequences import Row, collate, rows_of, token_logprobs

__all__ = ["TrainResult", "Trainer", "bootstrap_ci", "train"]

CHECKPOINTS = "checkpoints"
ROLLOUTS = "rollouts"
STATE = "trainer_state.json"


@dataclass
class TrainResult:
    """What a training run did."""

    out: Path
    iterations: int
    history: list[dict[str, Any]] = field(default_factory=list)
    """The metrics logged at each iteration (eval ones included where evaluated)."""
    checkpoint: Path | None = None
    curve: Path | None = None


def bootstrap_ci(
    values: Sequence[float], *, level: float = 0.95, resamples: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of `values`.

    Example:
        >>> bootstrap_ci([1.0] * 10)
        (1.0, 1.0)
        >>> low, high = bootstrap_ci([0.0, 1.0] * 20)
        >>> 0.3 < low < 0.5 < high < 0.7
        True
    """
    data = np.asarray(values, dtype=np.float64)
    if data.size == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(resamples, data.size))].mean(axis=1)
    tail = (1.0 - level) / 2
    return (float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail)))


def train(config: TrainConfig, **kwargs: Any) -> TrainResult:
    """Run (or resume) the training `config` describes; see the module docstring."""
    return Trainer(config, **kwargs).run()


class Trainer:
    """Holds the models, optimizers and algorithm state of one run.

    Args:
        config: the run (its unset options are filled from the algorithm's preset).
        model, tokenizer: an already loaded policy to train instead of `config.model`.
        console: print a line of metrics per iteration.
    """

    def __init__(
        self,
        config: TrainConfig,
        *,
        model: Any = None,
        tokenizer: Any = None,
        console: bool = True,
    ) -> None:
        import torch

        from turnwise.agents.hf import HFPolicy

        from .metrics import MetricsLogger
        from .models import (
            ScalarHead,
            ValueModel,
            frozen_copy,
            is_peft,
            load_policy_model,
            resolve_model_path,
        )

        # Every option set (none left None), which the type of TrainConfig cannot say.
        self.config: Any = cast(Any, config.resolved())
        cfg = self.config
        self.out = Path(cfg.out)
        self._check_out_dir()
        self.torch = torch
        torch.manual_seed(cfg.seed)
        if model is None:
            model_path = resolve_model_path(cfg.model)
            model, tokenizer = load_policy_model(
                model_path, device=cfg.device, dtype=cfg.dtype, lora_rank=cfg.lora_rank,
                gradient_checkpointing=cfg.gradient_checkpointing, seed=cfg.seed,
            )  # fmt: skip
            self.model_spec = f"hf:{model_path}"
        else:
            if tokenizer is None:
                raise ValueError("a model passed in needs its tokenizer")
            self.model_spec = f"hf:{getattr(model.config, 'name_or_path', '') or 'in-memory'}"
        self.model = model
        self.tokenizer = tokenizer
        self.policy = HFPolicy(model, tokenizer=tokenizer, max_batch_size=max(cfg.workers, 1))
        self.device = next(model.parameters()).device
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        needs_reference = cfg.kl_coef > 0 or cfg.advantage == "prime"
        self.reference = frozen_copy(model) if needs_reference and not is_peft(model) else None
        self.has_reference = needs_reference
        params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.critic = ValueModel(model) if cfg.critic else None
        self.critic_optimizer = (
            torch.optim.AdamW(self.critic.parameters(), lr=cfg.critic_lr) if self.critic else None
        )
        self.progress_head = ScalarHead.for_model(model) if cfg.advantage == "spa" else None
        self.progress_optimizer = (
            torch.optim.Adam(self.progress_head.parameters(), lr=cfg.progress_lr)
            if self.progress_head is not None
            else None
        )
        self.prm = None
        self.prm_optimizer = None
        if cfg.prm is not None:
            self.prm = frozen_copy(model)
            for p in self.prm.parameters():
                p.requires_grad_(True)
            self.prm_optimizer = torch.optim.AdamW(self.prm.parameters(), lr=cfg.prm_lr)
        self.replay = ReplayBuffer(cfg.replay_size, seed=cfg.seed) if cfg.replay else None
        self.iteration = 0
        self.history: list[dict[str, Any]] = []
        self.task_order = self._task_order()
        if cfg.resume:
            self._load_latest()
        self.logger = MetricsLogger(
            self.out, console=console, run_name=self.out.name, config=_jsonable(asdict(cfg)),
            resume_from_step=self.iteration + 1 if cfg.resume else None,
        )  # fmt: skip

    # ------------------------------------------------------------------ the run
    def run(self) -> TrainResult:
        cfg = self.config
        checkpoint = None
        try:
            if self.iteration == 0 and cfg.eval_every and cfg.eval_tasks:
                start = self.evaluate(0)  # the initial policy: where the curve starts
                self.logger.log(0, start)
                self.history.append({"step": 0, **start})
            while self.iteration < cfg.iterations:
                it = self.iteration
                metrics = self.step(it)
                self.iteration = it + 1
                last = self.iteration == cfg.iterations
                if cfg.eval_every and (self.iteration % cfg.eval_every == 0 or last):
                    metrics.update(self.evaluate(self.iteration))
                self.logger.log(self.iteration, metrics)
                self.history.append({"step": self.iteration, **metrics})
                if cfg.checkpoint_every and (self.iteration % cfg.checkpoint_every == 0 or last):
                    checkpoint = self.save()
        finally:
            self.logger.close()
        curve = self._curve()
        return TrainResult(self.out, self.iteration, self.history, checkpoint, curve)

    def step(self, it: int) -> dict[str, Any]:
        """One iteration: collect, score, credit, update. Returns its metrics."""
        started = time.perf_counter()
        trajs = self.collect(it)
        collected = time.perf_counter()
        metrics = rollout_metrics(trajs, self.config.gates())
        metrics["perf/collect_seconds"] = collected - started
        metrics["perf/turns_per_second"] = sum(t.num_turns for t in trajs) / max(
            collected - started, 1e-9
        )
        if self.replay is not None:
            trajs, injected = self.replay.inject(trajs)
            self.replay.add(trajs)
            metrics["rollout/replayed"] = injected
        metrics.update(self.update(trajs))
        metrics["perf/train_seconds"] = time.perf_counter() - collected
        metrics["perf/iteration_seconds"] = time.perf_counter() - started
        metrics.update(self._memory())
        return metrics

    # ------------------------------------------------------------------ collection
    def _task_order(self) -> list[str]:
        import turnwise

        env = turnwise.make(self.config.env, **self.config.env_kwargs_dict())
        try:
            tasks = list(env.unwrapped.tasks(self.config.split))
            if self.config.advantage == "igpo" and tasks:
                _, info = env.reset(seed=0, options={"task_id": tasks[0]})
                if "gold_answer" not in info and "gold_action" not in info:
                    raise ValueError(
                        "igpo needs envs that give a gold answer (reset info 'gold_answer' or "
                        f"'gold_action', e.g. turnwise/FactQA-v0); {self.config.env} does not"
                    )
        finally:
            env.close()
        if self.config.train_tasks:
            tasks = tasks[: self.config.train_tasks]
        if not tasks:
            raise ValueError(f"{self.config.env} has no tasks in split {self.config.split!r}")
        random.Random(self.config.seed).shuffle(tasks)
        return tasks

    def tasks_for(self, it: int) -> tuple[str, ...]:
        """The tasks of iteration `it`: the next slice of the shuffled split (wrapping)."""
        n, order = self.config.tasks_per_iteration, self.task_order
        start = (it * n) % len(order)
        picked = [order[(start + i) % len(order)] for i in range(min(n, len(order)))]
        return tuple(picked)

    def collect(self, it: int) -> list[Trajectory]:
        """Iteration `it`'s groups, collected into (or resumed from) its rollout folder."""
        from turnwise.rollout import CollectConfig, collect, iter_trajectories

        cfg = self.config
        folder = self.out / ROLLOUTS / f"iter-{it:05d}"
        config = CollectConfig(
            env=cfg.env, env_kwargs=cfg.env_kwargs, policy=self.model_spec, out=folder,
            split=cfg.split, task_ids=self.tasks_for(it), group_size=cfg.group_size,
            workers=cfg.workers, seed=cfg.seed * 100_003 + it, temperature=cfg.temperature,
            max_tokens=cfg.max_tokens, max_turns=cfg.max_turns, progress=False,
            resume=(folder / "manifest.json").is_file(),
        )  # fmt: skip
        self.model.eval()
        collect(config, policy=self.policy)
        trajs = list(iter_trajectories(folder))
        trajs.sort(key=lambda t: (t.metadata.get("task_index", 0), t.metadata.get("member", 0)))
        return trajs

    def evaluate(self, step: int) -> dict[str, Any]:
        """Greedy (`eval_temperature`) episodes on the first `eval_tasks` held-out tasks."""
        from turnwise.rollout import CollectConfig, collect, iter_trajectories

        cfg = self.config
        if not cfg.eval_tasks:
            return {}
        folder = self.out / "eval" / f"step-{step:05d}"
        if folder.exists():
            shutil.rmtree(folder)  # an evaluation cut short: redo it whole
        config = CollectConfig(
            env=cfg.env, env_kwargs=cfg.env_kwargs, policy=self.model_spec, out=folder,
            split=cfg.eval_split, tasks=cfg.eval_tasks, group_size=1, workers=cfg.workers,
            seed=cfg.seed, temperature=cfg.eval_temperature, max_tokens=cfg.max_tokens,
            max_turns=cfg.max_turns, progress=False,
        )  # fmt: skip
        self.model.eval()
        collect(config, policy=self.policy)
        trajs = list(iter_trajectories(folder))
        successes = [float(t.success) for t in trajs]
        low, high = bootstrap_ci(successes, seed=cfg.seed)
        return {
            "eval/success_rate": float(np.mean(successes)),
            "eval/success_rate_ci_low": low,
            "eval/success_rate_ci_high": high,
            "eval/reward_mean": float(np.mean([t.total_reward for t in trajs])),
            "eval/turns_mean": float(np.mean([t.num_turns for t in trajs])),
        }

    # ------------------------------------------------------------------ scoring
    def _rows(self, trajs: list[Trajectory]) -> list[Row]:
        return [r for r in rows_of(trajs, max_length=self.config.max_length) if r.generated]

    def _micro_batches(self, rows: Sequence[Row]) -> list[list[Row]]:
        size = self.config.micro_batch_size
        ordered = sorted(range(len(rows)), key=lambda i: len(rows[i].input_ids))
        return [[rows[i] for i in ordered[k : k + size]] for k in range(0, len(ordered), size)]

    def _score(
        self,
        model: Any,
        rows: Sequence[Row],
        *,
        hidden: Callable[[Any, Any, Row], None] | None = None,
    ) -> list[np.ndarray]:
        """Per-row token log-probs under `model`, without gradient (in row order)."""
        torch = self.torch
        out: dict[int, np.ndarray] = {}
        index = {id(r): i for i, r in enumerate(rows)}
        with torch.no_grad():
            for micro in self._micro_batches(rows):
                batch = collate(micro, self.pad_id, self.device)
                result = token_logprobs(
                    model, batch["input_ids"], batch["attention_mask"],
                    return_hidden=hidden is not None,
                )  # fmt: skip
                logprobs, states = result if hidden is not None else (result, None)
                for b, row in enumerate(micro):
                    n = len(row.input_ids)
                    out[index[id(row)]] = logprobs[b, :n].double().cpu().numpy()
                    if hidden is not None and states is not None:
                        hidden(states[b, :n], logprobs[b, :n], row)
        return [out[i] for i in range(len(rows))]

    def update(self, trajs: list[Trajectory]) -> dict[str, Any]:
        """Score, assign credit and update on one iteration's trajectories.

        Episodes that failed for infrastructure reasons (`Trajectory.error`: a worker that died
        twice) say nothing about the policy: they are left out, from their groups' baselines too.
        """
        cfg = self.config
        trajs = [t for t in trajs if t.error is None]
        rows = self._rows(trajs)
        if not rows:
            return {"loss/skipped": 1.0}
        batch = Batch(trajs, rows)
        metrics: dict[str, Any] = {}
        # SPA's progress head reads the policy's hidden states: kept from this same pass.
        features: dict[tuple[int, int], Any] = {}
        keep = self._turn_features(features) if self.progress_head is not None else None
        batch.old_logprobs = self._score(self.model, rows, hidden=keep)
        if self.has_reference:
            from .models import reference_logprobs_context

            with reference_logprobs_context(self.model, self.reference) as ref:
                batch.ref_logprobs = self._score(ref, rows)
        if self.critic is not None:
            batch.turn_values = self._turn_values(batch)
        if self.progress_head is not None:
            metrics.update(self._update_progress(batch, features))
        if self.prm is not None:
            metrics.update(self._update_prm(batch))
        if cfg.advantage == "igpo":
            batch.extra["beliefs"] = self._beliefs(batch)
        advantages = assign_credit(batch, cfg)
        for row, adv in zip(rows, advantages, strict=True):
            row.advantages = [float(a) for a in adv]
        token_adv = np.concatenate(
            [a[np.asarray(r.loss_mask, bool)] for r, a in zip(rows, advantages, strict=True)]
        )
        metrics["reward/advantage_mean"] = float(token_adv.mean()) if token_adv.size else 0.0
        metrics["reward/advantage_abs_mean"] = (
            float(np.abs(token_adv).mean()) if token_adv.size else 0.0
        )
        metrics.update(self._policy_epochs(batch))
        if self.critic is not None:
            metrics.update(self._critic_epochs(batch))
        return metrics

    # ------------------------------------------------------------------ the policy update
    def _policy_epochs(self, batch: Batch) -> dict[str, Any]:
        from .losses import ClipRange, policy_loss

        torch, cfg = self.torch, self.config
        rows = batch.rows
        index = {id(r): i for i, r in enumerate(rows)}
        clip = (
            ClipRange.loop(cfg.clip_high)
            if cfg.clip_mode == "loop"
            else ClipRange.asymmetric(cfg.clip_low, cfg.clip_high)
        )
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        totals: dict[str, list[float]] = {}
        tokens = 0
        grad_norms = []
        started = time.perf_counter()
        order = random.Random(cfg.seed * 7919 + self.iteration)
        self.model.train()
        for _ in range(cfg.epochs):
            shuffled = list(rows)
            order.shuffle(shuffled)
            n = max(1, min(cfg.minibatches, len(shuffled)))
            for k in range(n):
                mini = shuffled[k * len(shuffled) // n : (k + 1) * len(shuffled) // n]
                if not mini:
                    continue
                if cfg.aggregation == "token-mean":
                    denominator = float(sum(r.generated for r in mini))
                else:
                    denominator = float(len(mini))
                self.optimizer.zero_grad(set_to_none=True)
                for micro in self._micro_batches(mini):
                    data = collate(micro, self.pad_id, self.device)
                    old = self._stack([batch.old_logprobs[index[id(r)]] for r in micro], data)
                    ref = (
                        self._stack([batch.ref_logprobs[index[id(r)]] for r in micro], data)
                        if batch.ref_logprobs
                        else None
                    )
                    new = token_logprobs(self.model, data["input_ids"], data["attention_mask"])
                    loss, parts = policy_loss(
                        new, old, data["advantages"], data["loss_mask"],
                        turn_index=data["turn_index"], ratio_level=cfg.ratio_level, clip=clip,
                        dual_clip=cfg.dual_clip, aggregation=cfg.aggregation,
                        denominator=denominator, ref_logprobs=ref,
                        kl_coef=cfg.kl_coef if ref is not None else 0.0,
                        kl_estimator=cfg.kl_estimator,
                    )  # fmt: skip
                    if not torch.isfinite(loss):
                        raise FloatingPointError(f"policy loss is {float(loss)}: {parts}")
                    loss.backward()
                    weight = float(data["loss_mask"].sum())
                    tokens += int(weight)
                    for key, value in parts.items():
                        totals.setdefault(key, []).append(value)
                grad_norms.append(
                    float(torch.nn.utils.clip_grad_norm_(trainable, cfg.max_grad_norm))
                )
                self.optimizer.step()
        self.model.eval()
        seconds = time.perf_counter() - started
        metrics = {k: float(np.mean(v)) for k, v in totals.items() if k != "loss/policy"}
        # A minibatch's loss is the sum of its micro-batches' parts: report the mean per step.
        steps = max(1, len(grad_norms))
        metrics["loss/policy"] = float(np.sum(totals.get("loss/policy", [0.0]))) / steps
        metrics["loss/grad_norm"] = float(np.mean(grad_norms)) if grad_norms else 0.0
        metrics["perf/train_tokens_per_second"] = tokens / max(seconds, 1e-9)
        return metrics

    def _stack(self, arrays: list[np.ndarray], data: dict[str, Any]) -> Any:
        torch = self.torch
        out = torch.zeros(data["input_ids"].shape, dtype=torch.float32, device=self.device)
        for b, values in enumerate(arrays):
            out[b, : len(values)] = torch.as_tensor(values, dtype=torch.float32)
        return out

    # ------------------------------------------------------------------ critic (PPO, SPA)
    def _turn_positions(self, row: Row, last: bool) -> dict[int, int]:
        """For each turn of `row`: the position of its last prompt token (the state it acted
        from), or with `last`, of its last token."""
        found: dict[int, int] = {}
        for pos, (turn, mask) in enumerate(zip(row.turn_index, row.loss_mask, strict=True)):
            if last or not mask:
                found[turn] = pos
        return found

    def _turn_values(self, batch: Batch) -> list[np.ndarray]:
        assert self.critic is not None
        torch = self.torch
        values = [np.zeros(len(t.turns)) for t in batch.trajectories]
        with torch.no_grad():
            for micro in self._micro_batches(batch.rows):
                data = collate(micro, self.pad_id, self.device)
                v = self.critic.values(data["input_ids"], data["attention_mask"])
                for b, row in enumerate(micro):
                    for turn, pos in self._turn_positions(row, last=False).items():
                        values[row.trajectory][turn] = float(v[b, pos])
        return values

    def _critic_epochs(self, batch: Batch) -> dict[str, Any]:
        from .losses import value_loss

        assert self.critic is not None and self.critic_optimizer is not None
        torch, cfg = self.torch, self.config
        losses = []
        self.critic.train()
        for _ in range(cfg.epochs):
            for micro in self._micro_batches(batch.rows):
                data = collate(micro, self.pad_id, self.device)
                shape = data["input_ids"].shape
                target = torch.zeros(shape, device=self.device)
                old = torch.zeros(shape, device=self.device)
                mask = torch.zeros(shape, dtype=torch.bool, device=self.device)
                for b, row in enumerate(micro):
                    for turn, pos in self._turn_positions(row, last=False).items():
                        target[b, pos] = float(batch.turn_returns[row.trajectory][turn])
                        old[b, pos] = float(batch.turn_values[row.trajectory][turn])
                        mask[b, pos] = True
                v = self.critic.values(data["input_ids"], data["attention_mask"])
                loss, _ = value_loss(v, old, target, mask, clip_eps=cfg.value_clip)
                self.critic_optimizer.zero_grad(set_to_none=True)
                (cfg.vf_coef * loss).backward()
                torch.nn.utils.clip_grad_norm_(self.critic.parameters(), cfg.max_grad_norm)
                self.critic_optimizer.step()
                losses.append(float(loss.detach()))
        self.critic.train(False)
        return {"loss/value": float(np.mean(losses)) if losses else 0.0}

    # ------------------------------------------------------------------ SPA progress head
    def _turn_features(self, into: dict[tuple[int, int], Any]) -> Callable[[Any, Any, Row], None]:
        """A `_score` hook keeping the last hidden state at each turn's last token, by
        (trajectory, turn): the progress head's input."""

        def keep(states: Any, logprobs: Any, row: Row) -> None:
            for turn, pos in self._turn_positions(row, last=True).items():
                into[(row.trajectory, turn)] = states[pos].detach().float()

        return keep

    def _update_progress(
        self, batch: Batch, feats: dict[tuple[int, int], Any], steps: int = 20
    ) -> dict[str, Any]:
        """Fit the progress head so each trajectory's turn contributions sum to its outcome,
        then store the contributions per turn (`batch.extra["progress"]`)."""
        from .losses import progress_estimator_loss

        assert self.progress_head is not None and self.progress_optimizer is not None
        torch = self.torch
        trajs = batch.trajectories
        width = max(len(t.turns) for t in trajs)
        size = next(iter(feats.values())).shape[-1]
        x = torch.zeros(len(trajs), width, size, device=self.device)
        mask = torch.zeros(len(trajs), width, device=self.device)
        for (i, turn), f in feats.items():
            x[i, turn] = f
            mask[i, turn] = 1.0
        outcomes = torch.tensor([float(t.success) for t in trajs], device=self.device)
        head = self.progress_head
        losses = []
        for _ in range(steps):
            loss = progress_estimator_loss(head(x.to(head.linear.weight.dtype)), mask, outcomes)
            self.progress_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.progress_optimizer.step()
            losses.append(float(loss.detach()))
        with torch.no_grad():
            contrib = (head(x.to(head.linear.weight.dtype)) * mask).cpu().numpy()
        batch.extra["progress"] = [contrib[i, : len(t.turns)] for i, t in enumerate(trajs)]
        return {"loss/progress": losses[-1]}

    # ------------------------------------------------------------------ implicit PRM
    def _prm_token_logprobs(self, micro: list[Row]) -> tuple[Any, dict[str, Any]]:
        data = collate(micro, self.pad_id, self.device)
        return token_logprobs(self.prm, data["input_ids"], data["attention_mask"]), data

    def _update_prm(self, batch: Batch) -> dict[str, Any]:
        """One online PRM update on this batch (OPRL: trajectory DPO against the old policy;
        PRIME: CE against the outcome, relative to the frozen reference), then its rewards."""
        from .losses import prm_ce_loss, prm_dpo_loss

        assert self.prm is not None and self.prm_optimizer is not None
        torch, cfg = self.torch, self.config
        rows, trajs = batch.rows, batch.trajectories
        index = {id(r): i for i, r in enumerate(rows)}
        base = batch.old_logprobs if cfg.prm == "dpo" else batch.ref_logprobs
        self.prm.train()
        self.prm_optimizer.zero_grad(set_to_none=True)
        losses = []
        if cfg.prm == "ce":
            outcome_of = [float(t.success) for t in trajs]
            for micro in self._micro_batches(rows):
                logprobs, data = self._prm_token_logprobs(micro)
                ratio = logprobs - self._stack([base[index[id(r)]] for r in micro], data)
                outcomes = torch.tensor(
                    [outcome_of[r.trajectory] for r in micro], device=self.device
                )
                loss = prm_ce_loss(ratio, data["loss_mask"], outcomes, beta=cfg.prm_beta)
                (loss * len(micro) / len(rows)).backward()
                losses.append(float(loss.detach()))
        else:
            groups = group_members(batch.group_ids())
            pairs = {
                g: sum(trajs[i].success for i in m) * sum(not trajs[i].success for i in m)
                for g, m in groups.items()
            }
            total = sum(pairs.values())
            for g, members in groups.items():
                if not pairs[g]:
                    continue
                own = [r for r in rows if r.trajectory in set(members)]
                logprobs, data = self._prm_token_logprobs(own)
                ratio = logprobs - self._stack([base[index[id(r)]] for r in own], data)
                width = max(len(trajs[i].turns) for i in members)
                slot = {t: k for k, t in enumerate(members)}
                steps = torch.zeros(len(members), width, device=self.device)
                step_mask = torch.zeros(len(members), width, device=self.device)
                for b, row in enumerate(own):
                    gen = data["loss_mask"][b]
                    for turn in set(row.turn_index):
                        sel = gen & (data["turn_index"][b] == turn)
                        steps[slot[row.trajectory], turn] = (
                            steps[slot[row.trajectory], turn] + ratio[b][sel].sum()
                        )
                        step_mask[slot[row.trajectory], turn] = 1.0
                positive = torch.tensor([trajs[i].success for i in members], device=self.device)
                loss = prm_dpo_loss(
                    steps, step_mask, positive, [g] * len(members), beta=cfg.prm_beta
                )
                (loss * pairs[g] / total).backward()
                losses.append(float(loss.detach()))
        if losses:
            torch.nn.utils.clip_grad_norm_(self.prm.parameters(), 10.0)
            self.prm_optimizer.step()
        self.prm.eval()
        # The updated PRM's rewards on the same batch.
        prm_logprobs = self._score(self.prm, rows)
        if cfg.prm == "dpo":
            from .credit import turn_sums

            per_turn = [np.zeros(len(t.turns)) for t in trajs]
            for r_i, row in enumerate(rows):
                diff = cfg.prm_beta * (prm_logprobs[r_i] - base[r_i])
                n = len(trajs[row.trajectory].turns)
                per_turn[row.trajectory] += turn_sums(
                    diff, row.turn_index, row.loss_mask, num_turns=n
                )
            batch.extra["prm_rewards"] = per_turn
        else:
            per_traj: list[list[float]] = [[] for _ in trajs]
            for r_i, row in enumerate(rows):
                diff = cfg.prm_beta * (prm_logprobs[r_i] - base[r_i])
                mask = np.asarray(row.loss_mask, dtype=bool)
                per_traj[row.trajectory].extend(diff[mask].tolist())
            batch.extra["prm_rewards"] = [np.asarray(v) for v in per_traj]
        return {"loss/prm": float(np.mean(losses)) if losses else 0.0}

    # ------------------------------------------------------------------ IGPO beliefs
    def _beliefs(self, batch: Batch) -> list[np.ndarray]:
        """`b_k`: the mean log-prob of the gold answer, as the agent's reply taking the env's
        `gold_action` (else the bare `gold_answer`), given the context at the start of each
        turn k (the observation after turn k−1 included)."""
        from turnwise.agents.prompting import template_for
        from turnwise.agents.tokens import encode

        from .sft import reply_for

        torch = self.torch
        reply_format = template_for(self.config.env).reply_format
        eos = [] if self.tokenizer.eos_token_id is None else [int(self.tokenizer.eos_token_id)]
        beliefs = [np.zeros(len(t.turns)) for t in batch.trajectories]
        probes: list[tuple[int, int, list[int], int]] = []
        for row in batch.rows:
            meta = batch.trajectories[row.trajectory].metadata
            # The action that answers (`answer brown`), else the bare answer as the action.
            gold = meta.get("gold_action", meta.get("gold_answer"))
            if gold is None:
                raise ValueError(
                    "igpo needs envs that give a gold answer (reset info 'gold_answer' or "
                    "'gold_action', e.g. turnwise/FactQA-v0); "
                    f"{self.config.env} does not"
                )
            answer = encode(self.tokenizer, reply_for(str(gold), reply_format)) + eos
            for turn, pos in self._turn_positions(row, last=False).items():
                context = row.input_ids[: pos + 1]
                probes.append((row.trajectory, turn, context + answer, len(answer)))
        with torch.no_grad():
            size = self.config.micro_batch_size
            for k in range(0, len(probes), size):
                chunk = probes[k : k + size]
                rows = [Row(ids, [0] * len(ids), [0] * len(ids)) for _, _, ids, _ in chunk]
                data = collate(rows, self.pad_id, self.device)
                logprobs = token_logprobs(self.model, data["input_ids"], data["attention_mask"])
                for b, (traj, turn, ids, n) in enumerate(chunk):
                    beliefs[traj][turn] = float(logprobs[b, len(ids) - n : len(ids)].mean())
        return beliefs

    # ------------------------------------------------------------------ checkpoints
    def _check_out_dir(self) -> None:
        state = self.out / CHECKPOINTS / "latest" / STATE
        used = [self.out / n for n in (CHECKPOINTS, ROLLOUTS, "metrics.jsonl")]
        if not self.config.resume and any(p.exists() for p in used):
            raise FileExistsError(
                f"{self.out} already holds a training run: pass --resume to continue it, or "
                "choose another --out"
            )
        if self.config.resume and not state.is_file():
            raise FileNotFoundError(f"--resume: {self.out} has no checkpoint to resume from")

    def save(self) -> Path:
        """Write `checkpoints/iter-NNNNN` (model, tokenizer, optimizer and algorithm state)
        and point `checkpoints/latest` at it."""
        torch = self.torch
        folder = self.out / CHECKPOINTS / f"iter-{self.iteration:05d}"
        tmp = folder.with_name(f".{folder.name}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        self.model.save_pretrained(tmp)
        self.tokenizer.save_pretrained(tmp)
        extra: dict[str, Any] = {"optimizer": self.optimizer.state_dict()}
        if self.reference is not None:
            extra["reference"] = self.reference.state_dict()
        if self.critic is not None and self.critic_optimizer is not None:
            extra["critic"] = self.critic.state_dict()
            extra["critic_optimizer"] = self.critic_optimizer.state_dict()
        if self.progress_head is not None and self.progress_optimizer is not None:
            extra["progress_head"] = self.progress_head.state_dict()
            extra["progress_optimizer"] = self.progress_optimizer.state_dict()
        if self.prm is not None and self.prm_optimizer is not None:
            extra["prm"] = self.prm.state_dict()
            extra["prm_optimizer"] = self.prm_optimizer.state_dict()
        torch.save(extra, tmp / "trainer.pt")
        state = {
            "iteration": self.iteration,
            "config": _jsonable(asdict(self.config)),
            "model_spec": self.model_spec,
            "replay": self.replay.state() if self.replay is not None else None,
            "torch_rng": torch.get_rng_state().tolist(),
        }
        (tmp / STATE).write_text(json.dumps(state) + "\n", encoding="utf-8")
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)
        latest = self.out / CHECKPOINTS / "latest"
        link_tmp = latest.with_name(".latest.tmp")
        link_tmp.unlink(missing_ok=True)
        link_tmp.symlink_to(folder.name)
        link_tmp.replace(latest)
        return folder

    def _load_latest(self) -> None:
        torch = self.torch
        folder = (self.out / CHECKPOINTS / "latest").resolve()
        state = json.loads((folder / STATE).read_text(encoding="utf-8"))
        saved = state["config"]
        saved_kwargs = TrainConfig(env_kwargs=saved.get("env_kwargs", "")).env_kwargs_dict()
        if saved_kwargs != self.config.env_kwargs_dict():
            raise ValueError(
                f"--resume: the run in {self.out} has env_kwargs={saved.get('env_kwargs')!r}, "
                f"not {self.config.env_kwargs!r}"
            )
        for key in ("algo", "env", "model", "group_size", "tasks_per_iteration", "seed"):
            if saved.get(key) != _jsonable(getattr(self.config, key)):
                raise ValueError(
                    f"--resume: the run in {self.out} has {key}={saved.get(key)!r}, "
                    f"not {getattr(self.config, key)!r}"
                )
        from transformers import AutoModelForCausalLM

        from .models import is_peft

        if is_peft(self.model):
            from peft import set_peft_model_state_dict
            from safetensors.torch import load_file

            set_peft_model_state_dict(self.model, load_file(folder / "adapter_model.safetensors"))
        else:
            loaded = AutoModelForCausalLM.from_pretrained(folder, dtype=self.model.dtype)
            self.model.load_state_dict(loaded.state_dict())
        extra = torch.load(folder / "trainer.pt", map_location=self.device, weights_only=False)
        self.optimizer.load_state_dict(extra["optimizer"])
        if self.reference is not None and "reference" in extra:
            self.reference.load_state_dict(extra["reference"])
        if self.critic is not None and self.critic_optimizer is not None:
            self.critic.load_state_dict(extra["critic"])
            self.critic_optimizer.load_state_dict(extra["critic_optimizer"])
        if self.progress_head is not None and self.progress_optimizer is not None:
            self.progress_head.load_state_dict(extra["progress_head"])
            self.progress_optimizer.load_state_dict(extra["progress_optimizer"])
        if self.prm is not None and self.prm_optimizer is not None:
            self.prm.load_state_dict(extra["prm"])
            self.prm_optimizer.load_state_dict(extra["prm_optimizer"])
        if self.replay is not None and state.get("replay") is not None:
            self.replay.load(state["replay"])
        torch.set_rng_state(torch.tensor(state["torch_rng"], dtype=torch.uint8))
        self.iteration = int(state["iteration"])
        # Rollouts sampled after the checkpoint by weights that were lost: collect them again.
        for folder_ in sorted((self.out / ROLLOUTS).glob("iter-*")):
            if int(folder_.name.split("-")[1]) > self.iteration:
                shutil.rmtree(folder_)
        from .metrics import read_metrics

        path = self.out / "metrics.jsonl"
        if path.is_file():
            self.history = [m for m in read_metrics(path) if m.get("step", 0) <= self.iteration]

    # ------------------------------------------------------------------ reporting
    def _memory(self) -> dict[str, Any]:
        torch = self.torch
        if self.device.type == "cuda":
            return {"perf/peak_memory_mb": torch.cuda.max_memory_allocated(self.device) / 2**20}
        import resource

        return {"perf/peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}

    def _curve(self) -> Path | None:
        from .metrics import plot_learning_curve

        try:
            return plot_learning_curve(
                self.out / "metrics.jsonl", self.out / "curve.png",
                title=f"{self.config.algo.upper()} on {self.config.env}",
            )  # fmt: skip
        except (ImportError, ValueError):
            return None


def rollout_metrics(
    trajs: Sequence[Trajectory], gates: Sequence[tuple[str, float]] = ()
) -> dict[str, Any]:
    """`rollout/` and `reward/` metrics of one iteration's trajectories."""
    n = max(len(trajs), 1)
    turns = [t for traj in trajs for t in traj.turns]
    metrics: dict[str, Any] = {
        "rollout/success_rate": sum(t.success for t in trajs) / n,
        "rollout/reward_mean": sum(float(turn_rewards(t, gates).sum()) for t in trajs) / n,
        "rollout/turns_mean": len(turns) / n,
        "rollout/tokens_mean": sum(len(t.token_ids or ()) for t in turns) / n,
        "rollout/valid_rate": sum(t.valid for t in turns) / max(len(turns), 1),
        "rollout/truncated_rate": sum(t.truncated for t in trajs) / n,
        "rollout/failed": sum(t.error is not None for t in trajs),
    }
    terms: dict[str, float] = {}
    for turn in turns:
        for key, value in turn.reward_terms.items():
            terms[key] = terms.get(key, 0.0) + value
    for key, total in sorted(terms.items()):
        metrics[f"reward/{key}"] = total / n
    return metrics


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
