"""The training loop end to end: tiny real runs of every algorithm, checkpoints and resume.

Every run is as small as a run can be (the offline `nano` model, 2-room KeyDoor episodes of at
most 2 turns, 2 tasks × 2 rollouts per iteration, 12 tokens a turn) so the file runs on two busy
CPU cores. The policy is warmed up first with a little SFT on expert demonstrations, so that
sampled rollouts of one task sometimes differ in reward (a cold nano model never produces a
valid action, every advantage is then 0 and nothing would move).
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="needs torch (pip install 'turnwise[train]')")
pytest.importorskip("transformers", reason="needs transformers (pip install 'turnwise[train]')")

from turnwise.rollout import iter_trajectories  # noqa: E402
from turnwise.trainers.config import TrainConfig  # noqa: E402
from turnwise.trainers.loop import Trainer, TrainResult, rollout_metrics, train  # noqa: E402
from turnwise.trainers.metrics import read_metrics  # noqa: E402
from turnwise.trajectory import Trajectory, Turn  # noqa: E402

approx = pytest.approx

KEYDOOR = "turnwise/KeyDoor-v0"
ENV_KWARGS = (
    '{"difficulty": "easy", "n_rooms": 2, "n_locked": 0, "n_distractors": [0, 1], "max_turns": 2}'
)
TRAINED = ("loop", "grpo", "rloo", "ppo", "gigpo", "arpo", "spa", "oprl", "prime")
BASE_LOSSES = {"loss/policy", "loss/grad_norm", "loss/approx_kl", "loss/clip_frac"}
EXTRA_LOSSES: dict[str, set[str]] = {
    "ppo": {"loss/value"},
    "spa": {"loss/value", "loss/progress"},
    "oprl": {"loss/prm"},
    "prime": {"loss/prm"},
}


def tiny(out: Path, model: str | Path, **overrides: Any) -> TrainConfig:
    """The smallest real run: 2 iterations of 2 tasks × 2 rollouts on 2-turn KeyDoor."""
    options: dict[str, Any] = {
        "env": KEYDOOR, "env_kwargs": ENV_KWARGS, "model": str(model), "out": out,
        "iterations": 2, "tasks_per_iteration": 2, "group_size": 2, "workers": 4,
        "max_tokens": 12, "eval_tasks": 4, "temperature": 1.0,
    }  # fmt: skip
    options.update(overrides)
    return TrainConfig(**options)


def weights_of(model: Any) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().float().numpy().copy() for k, v in model.state_dict().items()}


def saved_weights(folder: Path) -> dict[str, np.ndarray]:
    from transformers import AutoModelForCausalLM

    return weights_of(AutoModelForCausalLM.from_pretrained(folder))


def max_difference(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    assert a.keys() == b.keys()
    return max(float(np.max(np.abs(a[k] - b[k]))) if a[k].size else 0.0 for k in a)


# ---------------------------------------------------------------------- every algorithm
RESUMED = "ppo"  # the most state to restore: optimizer, reference, critic and its optimizer


def iteration_records(records: list[dict[str, Any]], *, evaluated: bool) -> list[dict[str, Any]]:
    """The records of training iterations. A run that evaluates may also log the initial
    policy's evaluation as step 0 (eval/ metrics only), which is checked and left out."""
    initial = [r for r in records if r["step"] == 0]
    if initial:
        assert evaluated and len(initial) == 1 and records[0] is initial[0], records
        assert {k.split("/")[0] for k in initial[0] if "/" in k} == {"eval"}, initial[0]
    return [r for r in records if r["step"] != 0]


@dataclasses.dataclass
class FinishedRun:
    out: Path
    trainer: Trainer
    result: TrainResult
    weights: dict[str, np.ndarray]
    """The policy's weights at the end."""


def run_tiny(config: TrainConfig) -> FinishedRun:
    trainer = Trainer(config, console=False)
    result = trainer.run()
    return FinishedRun(Path(config.out), trainer, result, weights_of(trainer.model))


@pytest.fixture(scope="module")
def two_iteration_run(warm_model: Path, tmp_path_factory: pytest.TempPathFactory) -> FinishedRun:
    """An uninterrupted 2-iteration PPO run, checkpointed after each iteration: the reference
    of the resume tests, and PPO's case of `test_two_iterations_of_each_algorithm`."""
    out = tmp_path_factory.mktemp("uninterrupted") / "run"
    return run_tiny(tiny(out, warm_model, algo=RESUMED, checkpoint_every=1, eval_every=0))


@pytest.mark.slow
@pytest.mark.parametrize("algo", TRAINED)
def test_two_iterations_of_each_algorithm(
    algo: str, warm_model: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    # Evaluation does not depend on the algorithm: evaluated once (LOOP) to save time.
    evaluated = algo == "loop"
    if algo == RESUMED:
        run: FinishedRun = request.getfixturevalue("two_iteration_run")
    else:
        config = tiny(tmp_path / algo, warm_model, algo=algo, eval_every=5 if evaluated else 0)
        run = run_tiny(config)
    out, trainer, result = run.out, run.trainer, run.result

    assert isinstance(result, TrainResult) and result.iterations == 2
    history = iteration_records(result.history, evaluated=evaluated)
    assert [h["step"] for h in history] == [1, 2]
    for h in history:
        losses = {k: v for k, v in h.items() if k.startswith("loss/")}
        assert BASE_LOSSES | EXTRA_LOSSES.get(algo, set()) <= set(losses), sorted(losses)
        assert all(math.isfinite(v) for v in losses.values()), losses
        assert h["rollout/failed"] == 0
        assert h["perf/iteration_seconds"] > 0
        assert ("rollout/replayed" in h) == (algo == "arpo")

    # metrics.jsonl: one line per iteration, every namespace; eval after the last iteration.
    logged = read_metrics(out)
    assert len((out / "metrics.jsonl").read_text().splitlines()) == len(logged)
    trained = iteration_records(logged, evaluated=evaluated)
    assert [m["step"] for m in trained] == [1, 2]
    for m in trained:
        assert {"rollout", "reward", "loss", "perf"} <= {k.split("/")[0] for k in m if "/" in k}
    assert "eval/success_rate" not in trained[0]
    if evaluated:
        last = trained[1]
        assert {"eval/success_rate", "eval/success_rate_ci_low", "eval/reward_mean"} <= set(last)
        low, high = last["eval/success_rate_ci_low"], last["eval/success_rate_ci_high"]
        assert 0.0 <= low <= last["eval/success_rate"] <= high <= 1.0
        assert len(list(iter_trajectories(out / "eval" / "step-00002"))) == 4
    else:
        assert not any(k.startswith("eval/") for m in logged for k in m)
        assert not (out / "eval").exists()

    # Outputs: rollouts per iteration (the next tasks of the split), the checkpoint, the curve.
    for it in range(2):
        trajs = list(iter_trajectories(out / "rollouts" / f"iter-{it:05d}"))
        assert sorted(t.task_id for t in trajs) == sorted(trainer.tasks_for(it) * 2)
    assert set(trainer.tasks_for(0)).isdisjoint(trainer.tasks_for(1))
    latest = out / "checkpoints" / "latest"
    assert latest.is_dir() and latest.resolve().name == "iter-00002"
    assert result.checkpoint == out / "checkpoints" / "iter-00002"
    assert (latest / "trainer_state.json").is_file() and (latest / "trainer.pt").is_file()
    assert json.loads((latest / "trainer_state.json").read_text())["iteration"] == 2
    assert result.curve == out / "curve.png" and result.curve.stat().st_size > 0

    # The weights: what was saved is what was trained, and training moved them. The warm model
    # makes rollouts of a task differ in reward, so advantages are not all 0.
    assert max_difference(run.weights, saved_weights(result.checkpoint)) == 0.0
    advantages = [h["reward/advantage_abs_mean"] for h in history]
    assert any(a > 0 for a in advantages), f"every advantage was 0: {advantages}"
    assert max_difference(saved_weights(warm_model), run.weights) > 0.0


# ---------------------------------------------------------------------- checkpoints and resume
def trajectory_ids(folder: Path) -> list[str]:
    return sorted(t.id for t in iter_trajectories(folder))


def logged_results(record: dict[str, Any]) -> dict[str, Any]:
    """What an iteration computed (its timings and memory left out)."""
    return {k: v for k, v in record.items() if k.split("/")[0] in ("rollout", "reward", "loss")}


@pytest.mark.slow
def test_resume_keeps_the_rollouts_in_progress_and_continues(
    two_iteration_run: FinishedRun, warm_model: Path, tmp_path: Path
) -> None:
    first = two_iteration_run.out
    out = tmp_path / "run"
    shutil.copytree(first, out, symlinks=True)
    # The crash: iteration 2 had collected its rollouts and logged its line, and died saving
    # its checkpoint; the last checkpoint is iteration 1's.
    shutil.rmtree(out / "checkpoints" / "iter-00002")
    latest = out / "checkpoints" / "latest"
    latest.unlink()
    latest.symlink_to("iter-00001")
    in_progress = trajectory_ids(out / "rollouts" / "iter-00001")

    config = tiny(out, warm_model, algo=RESUMED, checkpoint_every=1, eval_every=0)
    result = train(dataclasses.replace(config, iterations=3, resume=True), console=False)
    assert result.iterations == 3
    assert [h["step"] for h in result.history] == [1, 2, 3]
    logged = read_metrics(out)
    assert [m["step"] for m in logged] == [1, 2, 3]
    # Iteration 2's rollouts were sampled by checkpoint 1's weights: kept, not sampled again.
    assert trajectory_ids(out / "rollouts" / "iter-00001") == in_progress
    assert (out / "rollouts" / "iter-00002" / "manifest.json").is_file()
    assert latest.resolve().name == "iter-00003"
    assert result.checkpoint == out / "checkpoints" / "iter-00003"
    # Iteration 1 was not run again; iteration 2 was, from the same state on the same
    # rollouts, so it computed and saved what the uninterrupted run did.
    before = read_metrics(first)
    assert logged[0] == before[0]
    assert logged_results(logged[1]) == logged_results(before[1])
    saved = saved_weights(out / "checkpoints" / "iter-00002")
    assert max_difference(saved, two_iteration_run.weights) == 0.0


@pytest.mark.slow
def test_a_run_resumed_after_a_crash_ends_as_the_uninterrupted_one(
    two_iteration_run: FinishedRun, warm_model: Path, tmp_path: Path
) -> None:
    uninterrupted = two_iteration_run.weights
    out = tmp_path / "crashed"
    config = tiny(out, warm_model, algo=RESUMED, checkpoint_every=1, eval_every=0)
    train(dataclasses.replace(config, iterations=1), console=False)
    # The crash: the run had gone on past its checkpoint (logged step 2, started the rollouts of
    # the iteration after it) before dying.
    with (out / "metrics.jsonl").open("a") as f:
        f.write(json.dumps({"step": 2, "rollout/success_rate": 0.5}) + "\n")
    (out / "rollouts" / "iter-00002").mkdir()

    resumed = Trainer(dataclasses.replace(config, iterations=2, resume=True), console=False)
    assert resumed.iteration == 1
    assert not (out / "rollouts" / "iter-00002").exists()  # sampled by lost weights: dropped
    result = resumed.run()
    assert [m["step"] for m in read_metrics(out)] == [1, 2]
    assert "rollout/success_rate" in result.history[-1] and result.history[-1]["step"] == 2
    difference = max_difference(uninterrupted, weights_of(resumed.model))
    assert difference == 0.0, f"resumed weights differ by up to {difference:.3g}"


def test_resume_without_a_checkpoint_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"--resume: .* has no checkpoint to resume from"):
        Trainer(tiny(tmp_path / "nothing", "nano", resume=True), console=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        Trainer(tiny(tmp_path / "empty", "nano", resume=True), console=False)
    assert not (tmp_path / "nothing").exists()  # nothing was created on the way


@pytest.mark.slow
def test_a_finished_run_is_not_overwritten_or_resumed_as_another_algorithm(
    two_iteration_run: FinishedRun, warm_model: Path
) -> None:
    out = two_iteration_run.out
    before = (out / "metrics.jsonl").read_text()
    with pytest.raises(FileExistsError, match="already holds a training run: pass --resume"):
        Trainer(tiny(out, warm_model, algo=RESUMED), console=False)
    with pytest.raises(ValueError, match=r"--resume: .* has algo='ppo', not 'grpo'"):
        Trainer(tiny(out, warm_model, algo="grpo", resume=True), console=False)
    with pytest.raises(ValueError, match="group_size=2, not 3"):
        Trainer(tiny(out, warm_model, algo=RESUMED, group_size=3, resume=True), console=False)
    assert (out / "metrics.jsonl").read_text() == before


@pytest.mark.slow
def test_resume_accepts_the_same_env_kwargs_spelled_differently(
    two_iteration_run: FinishedRun, warm_model: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    shutil.copytree(two_iteration_run.out, out, symlinks=True)
    respelled = json.dumps(json.loads(ENV_KWARGS), separators=(",", ":"))
    config = tiny(out, warm_model, algo=RESUMED, env_kwargs=respelled, resume=True)
    trainer = Trainer(config, console=False)
    trainer.logger.close()
    assert trainer.iteration == 2


@pytest.mark.slow
def test_a_run_without_checkpoints_is_not_overwritten(tmp_path: Path) -> None:
    config = tiny(tmp_path / "run", "nano", iterations=1, checkpoint_every=0, eval_every=0)
    train(config, console=False)
    assert (tmp_path / "run" / "rollouts" / "iter-00000").is_dir()
    with pytest.raises(FileExistsError):
        Trainer(config, console=False).logger.close()


def test_the_trainer_keeps_its_env_workers_between_iterations(tmp_path: Path) -> None:
    trainer = Trainer(tiny(tmp_path / "run", "nano", iterations=2, eval_every=0), console=False)
    trainer.collect(0)
    pids = sorted(trainer.worker_pool.pids())
    trainer.collect(1)
    assert len(pids) == 4 and sorted(trainer.worker_pool.pids()) == pids
    trainer.run()  # trains on the rollouts collected above, then stops the workers
    assert len(trainer.worker_pool) == 0


def test_igpo_needs_a_gold_answer(tmp_path: Path) -> None:
    config = tiny(
        tmp_path / "igpo", "nano", algo="igpo", iterations=1, eval_every=0,
        env="turnwise/ALFWorldGen-v0", env_kwargs="",
    )  # fmt: skip
    with pytest.raises(ValueError, match="igpo needs envs that give a gold answer"):
        train(config, console=False)


def test_igpo_refuses_numbered_choices(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="igpo scores the env's gold action as written"):
        tiny(tmp_path / "igpo", "nano", algo="igpo", choices="number")


def test_igpo_trains_on_an_env_with_gold_answers(tmp_path: Path) -> None:
    """FactQA gives each task's gold answer: IGPO's information-gain turn rewards are not all
    0 even where outcomes tie, so even the cold nano model's weights move."""
    from turnwise.agents.tiny import default_checkpoint

    config = tiny(
        tmp_path / "igpo", "nano", algo="igpo", env="turnwise/FactQA-v0",
        env_kwargs='{"difficulty": "easy", "max_turns": 2}', iterations=1, eval_every=0,
    )  # fmt: skip
    trainer = Trainer(config, console=False)
    result = trainer.run()
    (metrics,) = result.history
    losses = {k: v for k, v in metrics.items() if k.startswith("loss/")}
    assert set(losses) >= BASE_LOSSES
    assert all(math.isfinite(v) for v in losses.values())
    assert metrics["reward/advantage_abs_mean"] > 0
    moved = max_difference(saved_weights(default_checkpoint("nano")), weights_of(trainer.model))
    assert moved > 0.0


# ---------------------------------------------------------------------- rollout metrics
def episode(
    valid: list[bool], *, success: bool = False, truncated: bool = False, error: str | None = None
) -> Trajectory:
    """Turn t: `valid[t]`, t + 2 generated tokens, KeyDoor-style outcome and valid terms."""
    turns = []
    for t, ok in enumerate(valid):
        terms = {"outcome": float(success and t == len(valid) - 1), "valid": 0.0 if ok else -1.0}
        reward = terms["outcome"] + 0.1 * terms["valid"]
        weights = {"outcome": 1.0, "valid": 0.1}
        turn = Turn(t, "o", "a", reward, terms, weights, valid=ok, token_ids=[1] * (t + 2))
        turns.append(turn)
    return Trajectory(KEYDOOR, "t", turns=turns, success=success, truncated=truncated, error=error)


def test_rollout_metrics_of_hand_built_trajectories() -> None:
    trajs = [
        episode([True, True], success=True),  # rewards 0, 1; tokens 2 + 3
        episode([False, False], truncated=True),  # −0.1, −0.1; tokens 2 + 3
        episode([True], error="worker died"),  # 0; tokens 2
        episode([True, False, True], truncated=True),  # 0, −0.1, 0; tokens 2 + 3 + 4
    ]
    m = rollout_metrics(trajs)
    assert m["rollout/success_rate"] == 0.25
    assert m["rollout/reward_mean"] == approx((1.0 - 0.2 - 0.1) / 4)
    assert m["rollout/turns_mean"] == 8 / 4
    assert m["rollout/tokens_mean"] == (5 + 5 + 2 + 9) / 4
    assert m["rollout/valid_rate"] == 5 / 8
    assert m["rollout/truncated_rate"] == 0.5
    assert m["rollout/failed"] == 1
    # Each term: the mean over trajectories of its (unweighted) total.
    assert m["reward/outcome"] == 0.25
    assert m["reward/valid"] == -3 / 4
    assert {k for k in m if k.startswith("reward/")} == {"reward/outcome", "reward/valid"}


def test_rollout_metrics_with_gates_and_without_trajectories() -> None:
    trajs = [episode([True, True], success=True), episode([True, False])]
    # Ungated: (1 + (−0.1)) / 2. Gated by outcome>=1: the failure's −0.1 is gated away: 1 / 2.
    assert rollout_metrics(trajs)["rollout/reward_mean"] == approx(0.45)
    assert rollout_metrics(trajs, [("outcome", 1.0)])["rollout/reward_mean"] == approx(0.5)
    empty = rollout_metrics([])
    assert empty["rollout/success_rate"] == 0.0 and empty["rollout/failed"] == 0
    assert empty["rollout/valid_rate"] == 0.0 and empty["rollout/reward_mean"] == 0.0


# ---------------------------------------------------------------------- weight sync
def test_a_separate_generation_copy_receives_the_weights_after_every_update(
    warm_model: Path, tmp_path: Path
) -> None:
    """What the vLLM backend does, on a backend that runs here: rollouts come from a copy of
    the model that the trainer must update. Unsynced, the second iteration's rollouts would be
    sampled by the starting weights and their log-probs would differ from the trainer's."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from turnwise.agents.hf import HFPolicy

    tokenizer = AutoTokenizer.from_pretrained(warm_model)
    copy = HFPolicy(AutoModelForCausalLM.from_pretrained(warm_model), tokenizer=tokenizer)
    config = tiny(tmp_path / "run", warm_model, algo="loop", lr=1e-2, eval_every=0)
    trainer = Trainer(config, generation=copy, console=False)
    assert trainer.policy is copy and trainer.model is not copy.model
    result = trainer.run()
    assert max_difference(weights_of(trainer.model), weights_of(copy.model)) == 0.0
    assert max_difference(saved_weights(warm_model), weights_of(copy.model)) > 1e-3
    for record in result.history:
        assert record["perf/logprob_gap"] < 1e-4, record


def test_lora_weights_are_pushed_merged_under_the_base_names(warm_model: Path) -> None:
    from transformers import AutoModelForCausalLM

    from turnwise.agents.hf import HFPolicy
    from turnwise.trainers.models import load_policy_model, merged_weights

    model, tokenizer = load_policy_model(warm_model, device="cpu", lora_rank=4)
    with torch.no_grad():  # a trained adapter: B is zero at initialisation
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 0.05)
    ids = torch.tensor([[1, 5, 9, 14]])
    before = model(input_ids=ids).logits
    target = HFPolicy(AutoModelForCausalLM.from_pretrained(warm_model), tokenizer=tokenizer)
    weights = list(merged_weights(model))
    names = [n for n, _ in weights]
    target.update_weights(weights)
    assert not any("lora" in n or "base_layer" in n for n in names)
    assert set(names) == {n for n, _ in target.model.named_parameters()}
    # The adapted model is untouched, and the copy computes what it computes.
    assert torch.equal(model(input_ids=ids).logits, before)
    assert torch.allclose(target.model(input_ids=ids).logits, before, atol=1e-5)


def test_update_weights_checks_names_and_shapes_before_copying(warm_model: Path) -> None:
    from turnwise.agents.hf import HFPolicy

    policy = HFPolicy(warm_model, device="cpu")
    name, param = next(iter(policy.model.named_parameters()))
    before = param.detach().clone()
    with pytest.raises(ValueError, match="is not a weight"):
        policy.update_weights([(name, torch.zeros_like(param)), ("no.such.weight", param)])
    with pytest.raises(ValueError, match="has shape"):
        policy.update_weights([(name, torch.zeros(3))])
    assert torch.equal(param, before)  # nothing copied
    policy.update_weights([(name, torch.zeros_like(param))])
    assert not param.any()


def test_the_vllm_backend_needs_a_checkpoint_folder(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from turnwise.agents.tiny import default_checkpoint

    base = default_checkpoint("nano")
    model = AutoModelForCausalLM.from_pretrained(base)
    tokenizer = AutoTokenizer.from_pretrained(base)
    config = tiny(tmp_path / "run", base, backend="vllm")
    with pytest.raises(ValueError, match="full checkpoint folder"):
        Trainer(config, model=model, tokenizer=tokenizer, console=False)


# ---------------------------------------------------------------------- loop options
def test_checkpoints_are_pruned_to_the_newest(warm_model: Path, tmp_path: Path) -> None:
    config = tiny(tmp_path / "run", warm_model, iterations=3, checkpoint_every=1,
                  keep_checkpoints=2, eval_every=0, group_size=2, tasks_per_iteration=1)  # fmt: skip
    train(config, console=False)
    kept = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert kept == ["iter-00002", "iter-00003", "latest"]
    assert (tmp_path / "run" / "checkpoints" / "latest").resolve().name == "iter-00003"


def test_stop_kl_ends_the_update_once_a_minibatch_crosses_it(
    warm_model: Path, tmp_path: Path
) -> None:
    # The first minibatch is scored by the sampling weights (KL 0); the second sees the policy
    # its step moved, crosses the bound, takes its own step, and ends the update.
    config = tiny(tmp_path / "run", warm_model, algo="loop", iterations=1, eval_every=0,
                  stop_kl=1e-5, lr=1e-2, minibatches=2, epochs=2)  # fmt: skip
    [record] = train(config, console=False).history
    assert record["loss/optimizer_steps"] == 2.0 and record["loss/stopped_early"] == 1.0
    config = tiny(tmp_path / "free", warm_model, algo="loop", iterations=1, eval_every=0,
                  lr=1e-2, minibatches=2, epochs=2)  # fmt: skip
    [record] = train(config, console=False).history
    assert record["loss/optimizer_steps"] == 4.0 and record["loss/stopped_early"] == 0.0


def test_the_adaptive_kl_coefficient_follows_its_controller(
    warm_model: Path, tmp_path: Path
) -> None:
    config = tiny(tmp_path / "run", warm_model, algo="grpo", kl_coef=0.1, kl_target=6.0,
                  kl_horizon=10, eval_every=0, checkpoint_every=1)  # fmt: skip
    trainer = Trainer(config, console=False)
    result = trainer.run()
    coef = 0.1
    for record in result.history:
        # The mean summed log-ratio to the reference: near 0 after two small updates (a sample
        # estimate, it may be slightly negative), far below the target of 6.
        kl = record["loss/kl_sequence"]
        assert abs(kl) < 1.0
        coef *= 1.0 + float(np.clip(kl / 6.0 - 1.0, -0.2, 0.2)) * 4 / 10
        assert record["loss/kl_coef"] == approx(coef)
    assert trainer.kl_coef == approx(coef) and coef < 0.1
    state = json.loads((tmp_path / "run/checkpoints/latest/trainer_state.json").read_text())
    assert state["kl_coef"] == approx(coef)
    with pytest.raises(ValueError, match="kl-target"):
        TrainConfig(algo="grpo", kl_target=-1.0)


def test_task_filtering_keeps_the_tasks_within_the_success_range(
    warm_model: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    config = tiny(out, warm_model, algo="arpo", iterations=1, eval_every=0, train_tasks=6,
                  filter_tries=3, filter_min=1, filter_max=2)  # fmt: skip
    trainer = Trainer(config, console=False)
    wins: dict[str, int] = {}
    for traj in iter_trajectories(out / "filter"):
        wins[traj.task_id] = wins.get(traj.task_id, 0) + int(traj.success)
    assert len(wins) == 6 and sum(1 for _ in iter_trajectories(out / "filter")) == 18
    expected = {t for t, w in wins.items() if 1 <= w <= 2}
    assert set(trainer.task_order) == expected
    assert json.loads((out / "filter" / "kept.json").read_text()) == trainer.task_order
    trainer.run()
    assert {t.task_id for t in iter_trajectories(out / "rollouts" / "iter-00000")} <= expected


def test_critic_warmup_trains_only_the_critic_at_first(warm_model: Path, tmp_path: Path) -> None:
    trainer = Trainer(
        tiny(tmp_path / "run", warm_model, algo="ppo", iterations=1, critic_warmup=1,
             eval_every=0, lr=1e-2),
        console=False,
    )  # fmt: skip
    assert trainer.critic is not None
    critic_before = {k: v.clone() for k, v in trainer.critic.backbone.state_dict().items()}
    [record] = trainer.run().history
    assert record["loss/critic_warmup"] == 1.0 and "loss/policy" not in record
    assert max_difference(saved_weights(warm_model), weights_of(trainer.model)) == 0.0
    moved = max(
        float((v - critic_before[k]).abs().max())
        for k, v in trainer.critic.backbone.state_dict().items()
    )
    assert moved > 0.0
