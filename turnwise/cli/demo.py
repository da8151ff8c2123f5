"""`turnwise demo`: the project's main job, end to end.

1. **Model**: the tiny tokenizer and model, built offline from the env's own text (or any local
   Hugging Face checkpoint given with `--model PATH`).
2. **SFT**: expert demonstrations on the env's train split, token-exact, and a supervised
   fine-tune on them.
3. **RL**: LOOP (or `--algo`) from the SFT checkpoint, on train-split tasks.
4. **Evaluation**: the SFT model, the RL model, a random agent and the expert on the same
   held-out test tasks and seeds (a suite written to `OUT/suite.json`), greedy.
5. **Report**: the rollouts, a leaderboard page, a learning-curve PNG, a table, and the paired
   difference RL − SFT with its 95% bootstrap interval.

Every stage keeps its output under `OUT/`, and a stage that finished is not run again: a demo cut
short carries on where it stopped when started again with the same settings.

    OUT/demo.json            the settings (a second run must match them)
    OUT/sft/                 the SFT checkpoint and sft.json (its metrics)
    OUT/rl/                  the trainer's run: metrics.jsonl, checkpoints/, rollouts/
    OUT/suite.json           the held-out suite every policy plays
    OUT/eval/NAME/           episodes.jsonl and summary.json per policy (a submission each)
    OUT/leaderboard/         index.html, leaderboard.md, results.json
    OUT/curve.png            training success per iteration, held-out success of SFT and RL
    OUT/summary.json         the table, the difference, the seconds per stage
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import tyro

from turnwise.cli._common import CLIError, EnvKwargs, console, env_entry, parse_env_kwargs
from turnwise.parsing import Choices, check_choices

if TYPE_CHECKING:
    from turnwise.trajectory import Trajectory

__all__ = [
    "DEMO_ENV",
    "DEMO_ENV_KWARGS",
    "TINY_RECIPE",
    "DemoConfig",
    "DemoResult",
    "demo",
    "run_demo",
]

#: The text world the demo trains on by default.
DEMO_ENV = "turnwise/KeyDoor-v0"
#: Its settings: two rooms, no locked door, the gold coin in the room next to the start, four
#: turns. A 2-layer model trained from scratch on two CPU cores learns these in minutes; see
#: docs/demo.md for the text worlds (ALFWorldGen, TextWorld) it does not learn in that time yet.
DEMO_ENV_KWARGS: dict[str, Any] = {
    "difficulty": "easy",
    "n_rooms": 2,
    "n_locked": 0,
    "n_distractors": [0, 1],
    "max_turns": 4,
}

#: The RL settings a 2-layer model trained from scratch needs (the presets are for real models):
#: two epochs per batch, per-trajectory loss averaging, and no KL penalty, which on so small a
#: model outweighs the few non-zero advantages and holds the policy where it started.
TINY_RECIPE: dict[str, Any] = {"epochs": 2, "aggregation": "seq-mean-token-mean", "kl_coef": 0.0}

Algo = Literal["loop", "grpo", "rloo", "ppo", "gigpo", "arpo", "spa", "oprl", "prime", "igpo"]


@dataclass
class DemoConfig:
    """Train an agent and show that it learned: build a model, fine-tune it on expert
    demonstrations (SFT), train it with RL (LOOP), then evaluate SFT, RL, random and expert on the
    same held-out tasks and write the rollouts, a leaderboard page, a learning curve and a table."""

    env: Annotated[str, tyro.conf.arg(metavar="ENV_ID")] = DEMO_ENV
    """The text env to train on (it needs an expert for the demonstrations)."""
    env_kwargs: EnvKwargs = ""
    """Constructor keyword arguments as a JSON object (default for the demo env:
    `DEMO_ENV_KWARGS`, two-room tasks)."""
    model: Annotated[str, tyro.conf.arg(metavar="PRESET|PATH")] = "tiny"
    """A tiny-model preset (nano, tiny, small, base, medium), built offline from the env's text,
    or the folder of a local Hugging Face causal-LM checkpoint."""
    algo: Algo = "loop"
    """The RL algorithm after SFT."""
    out: Annotated[Path, tyro.conf.arg(metavar="DIR")] = Path("runs/demo")
    """Output folder (a finished stage in it is reused when run again with the same settings)."""
    sft_tasks: int = 32
    """Expert demonstrations (one per train task) to fine-tune on."""
    sft_epochs: int = 3
    """Passes over the demonstrations."""
    sft_lr: float = 1e-2
    """SFT learning rate (use ~1e-5 for a pretrained model)."""
    sft_batch_size: int = 2
    """Demonstrations per SFT step."""
    iterations: int = 40
    """RL iterations."""
    tasks_per_iteration: int = 4
    """Train tasks per RL iteration."""
    group_size: int = 8
    """Episodes per task and iteration (the group that advantages compare within)."""
    train_tasks: int = 0
    """Size of the train-task pool RL draws from (0: the whole train split)."""
    lr: float = 1e-3
    """RL learning rate (use ~1e-6 for a pretrained model)."""
    rl_options: Annotated[str, tyro.conf.arg(metavar="JSON")] = ""
    """More trainer settings, as a JSON object of `turnwise train` options (`{"kl_coef": 0.01}`).
    With a tiny model the demo starts from `TINY_RECIPE`; with a checkpoint, from the
    algorithm's preset."""
    eval_tasks: int = 64
    """Held-out test tasks every policy plays (once each, greedy)."""
    curve_every: int = 5
    """Evaluate on the same held-out tasks every N RL iterations, for the learning curve (0:
    only before and after training)."""
    max_tokens: int = 12
    """Most tokens generated per turn."""
    choices: Choices = "text"
    """How the model names its action: `text` (it writes the command) or `number` (the prompt
    numbers the admissible actions and it answers with one), in SFT, RL and evaluation."""
    workers: int = 2
    """Env worker processes."""
    device: str = "auto"
    """Where the model trains and generates: auto, cpu, cuda, cuda:1, ..."""
    backend: Literal["hf", "vllm"] = "hf"
    """Generation during RL: transformers, or vLLM on a GPU (`pip install turnwise[vllm]`)."""
    seed: int = 0
    """Seeds the model build, SFT, RL and the evaluation episodes."""

    def __post_init__(self) -> None:
        for name in ("sft_tasks", "sft_epochs", "sft_batch_size", "iterations",
                     "tasks_per_iteration", "group_size", "eval_tasks", "max_tokens", "workers"):  # fmt: skip
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1")
        if self.train_tasks < 0 or self.curve_every < 0:
            raise ValueError("--train-tasks and --curve-every must be >= 0")
        check_choices(self.choices, "--choices")
        parse_env_kwargs(self.env_kwargs)
        self.rl_settings()
        self.out = Path(self.out)

    def rl_settings(self) -> dict[str, Any]:
        """The extra trainer settings: `TINY_RECIPE` for a tiny model, then `rl_options`."""
        from turnwise.trainers.config import TrainConfig

        try:
            given = json.loads(self.rl_options) if self.rl_options.strip() else {}
        except json.JSONDecodeError as exc:
            raise ValueError(f"--rl-options is not valid JSON: {exc}") from None
        if not isinstance(given, dict):
            raise ValueError("--rl-options must be a JSON object")
        own = {f.name for f in fields(DemoConfig)} | {"algo", "env", "env_kwargs", "model", "out"}
        known = {f.name for f in fields(TrainConfig)} - own
        unknown = sorted(set(given) - known)
        if unknown:
            raise ValueError(
                f"--rl-options: {', '.join(unknown)} is not a trainer setting the demo passes on "
                "(the demo's own flags set the rest)"
            )
        recipe = dict(TINY_RECIPE) if self.model in _presets() else {}
        return {**recipe, **given}

    def kwargs(self) -> dict[str, Any]:
        """The env's constructor arguments (the demo's own when none are given for its env)."""
        given = parse_env_kwargs(self.env_kwargs)
        if not given and self.env == DEMO_ENV:
            return dict(DEMO_ENV_KWARGS)
        return given


@dataclass
class DemoRow:
    """One policy's held-out results."""

    name: str
    label: str
    success_rate: float
    ci_low: float
    ci_high: float
    reward_mean: float
    turns_mean: float
    episodes: int


@dataclass
class DemoResult:
    """What `run_demo` produced."""

    rows: list[DemoRow]
    difference: dict[str, float]
    """RL − SFT success over the same episodes: `mean`, `ci_low`, `ci_high` (paired bootstrap)."""
    files: dict[str, Path] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def rl_beats_sft(self) -> bool:
        """The RL model is better than the SFT model by more than the interval (its low end > 0)."""
        return self.difference["ci_low"] > 0


def demo(config: DemoConfig) -> int:
    """Run the demo, printing each stage and the final table; exit code 0."""
    out = console()
    result = run_demo(config, log=lambda text: out.print(text, markup=False))
    _print_table(out, config, result)
    return 0


# ----------------------------------------------------------------------------- the pipeline
def run_demo(config: DemoConfig, *, log: Callable[[str], None] = print) -> DemoResult:
    """Run every stage that has not finished yet (see the module docstring)."""
    entry = env_entry(config.env, single_agent_for="demo")
    if entry.family != "text":
        raise CLIError(f"the demo trains on text envs; {config.env} is a {entry.family} env")
    out = config.out
    env_kwargs = config.kwargs()
    _check_env(config.env, env_kwargs)
    if config.model not in _presets():
        _checkpoint(config.model)
    _claim(out, config)
    seconds: dict[str, float] = {}
    files: dict[str, Path] = {}

    def stage(name: str, what: str, run: Callable[[], Any]) -> Any:
        log(f"[{len(seconds) + 1}/5] {what} ...")
        started = time.perf_counter()
        value = run()
        seconds[name] = round(time.perf_counter() - started, 1)
        log(f"      done in {seconds[name]:.0f} s")
        return value

    base = stage("model", f"model: {config.model}", lambda: _base_model(config, env_kwargs))
    sft = stage(
        "sft",
        f"SFT on {config.sft_tasks} expert demonstrations of {config.env}",
        lambda: _sft(config, env_kwargs, base),
    )
    rl = stage(
        "rl",
        f"{config.algo.upper()}: {config.iterations} iterations x {config.tasks_per_iteration} "
        f"tasks x {config.group_size} episodes",
        lambda: _rl(config, env_kwargs, sft),
    )
    policies = {
        "expert": ("expert", "expert"),
        "random": ("random", "random"),
        "sft": (f"hf:{sft}", "SFT"),
        "rl": (f"hf:{rl}", f"SFT + {config.algo.upper()}"),
    }
    summaries = stage(
        "eval",
        f"evaluating {', '.join(label for _, label in policies.values())} on "
        f"{config.eval_tasks} held-out tasks",
        lambda: _evaluate(config, env_kwargs, policies),
    )
    rows = [
        DemoRow(name, s["label"], **{k: s["overall"][k] for k in _ROW_STATS})
        for name, s in summaries.items()
    ]
    difference = _paired_difference(out / "eval" / "rl", out / "eval" / "sft", seed=config.seed)
    files.update(_report(config, summaries, rows, difference))
    seconds["total"] = round(sum(seconds.values()), 1)
    result = DemoResult(rows, difference, files, seconds)
    summary = {
        "env": config.env,
        "env_kwargs": env_kwargs,
        "rows": [asdict(r) for r in rows],
        "rl_minus_sft": difference,
        "rl_beats_sft": result.rl_beats_sft,
        "seconds": seconds,
    }
    files["summary"] = out / "summary.json"
    _write_json(files["summary"], summary)
    return result


def _presets() -> tuple[str, ...]:
    from turnwise.agents.tiny import PRESETS

    return tuple(PRESETS)


_ROW_STATS = ("success_rate", "ci_low", "ci_high", "reward_mean", "turns_mean", "episodes")
_SETTINGS = "demo.json"


def _claim(out: Path, config: DemoConfig) -> None:
    """Record the settings in OUT/demo.json, or check a previous run's are the same."""
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()}
    settings.pop("out")
    if settings["choices"] == "text":
        settings.pop("choices")  # so the folders of runs from before the option still match
    path = out / _SETTINGS
    if path.is_file():
        try:
            before = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            before = None
        if before != settings:
            changed = sorted(
                k for k in settings if not isinstance(before, dict) or before.get(k) != settings[k]
            )
            raise CLIError(
                f"{out} holds a demo run with other settings ({', '.join(changed) or 'unreadable'}"
                "): choose another --out, or delete the folder to start over"
            )
        return
    if out.exists() and any(out.iterdir()):
        raise CLIError(f"{out} is not empty and holds no demo run: choose another --out")
    _write_json(path, settings)


def _check_env(env_id: str, env_kwargs: dict[str, Any]) -> None:
    """Make the env once: a bad keyword argument fails here, in one line, before any work."""
    import turnwise

    try:
        env = turnwise.make(env_id, **env_kwargs)
    except (TypeError, ValueError) as exc:
        raise CLIError(f"{env_id} rejects --env-kwargs: {exc}") from None
    try:
        if not callable(getattr(env.unwrapped, "expert_action", None)):
            raise CLIError(f"{env_id} has no expert to learn from (expert_action)")
    finally:
        env.close()


def _checkpoint(model: str) -> Path:
    """`--model` as a local checkpoint folder (when it is not a tiny preset)."""
    path = Path(model).expanduser()
    if not (path / "config.json").is_file():
        raise CLIError(
            f"--model {model!r} is neither a tiny preset ({', '.join(_presets())}) nor a folder "
            "with a Hugging Face checkpoint (config.json)"
        )
    return path


def _base_model(config: DemoConfig, env_kwargs: dict[str, Any]) -> Path:
    """A local checkpoint as given, or a tiny preset built from the env's text (cached)."""
    import hashlib

    from turnwise._version import __version__
    from turnwise.agents.tiny import FORMAT_VERSION, MANIFEST, build
    from turnwise.files import build_folder_once
    from turnwise.paths import cache_dir

    if config.model not in _presets():
        return _checkpoint(config.model)
    # The tiny builder's format and turnwise's version are in the key: either may change the
    # corpus (an env's wording) or the files written for the same settings.
    key = json.dumps(
        [FORMAT_VERSION, __version__, config.model, config.env, env_kwargs, config.seed],
        sort_keys=True,
    )
    name = f"{config.model}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"
    return build_folder_once(
        cache_dir("tiny", "demo") / name,
        lambda tmp: build(
            tmp,
            preset=config.model,
            seed=config.seed,
            env_ids=(config.env,),
            env_kwargs={config.env: env_kwargs},
            episodes=32,
        ),
        done=MANIFEST,
    )


def _sft(config: DemoConfig, env_kwargs: dict[str, Any], base: Path) -> Path:
    from turnwise.agents.hf import HFPolicy
    from turnwise.trainers.sft import demonstrations, train_sft
    from turnwise.trajectory import write_jsonl

    folder = config.out / "sft"
    if (folder / "sft.json").is_file():
        return folder
    policy = HFPolicy(base, device=config.device)
    demos = demonstrations(
        config.env, policy.tokenizer, tasks=config.sft_tasks, env_kwargs=env_kwargs,
        seed=config.seed, choices=config.choices,
    )  # fmt: skip
    if not demos:
        raise CLIError(f"the expert solved none of the first {config.sft_tasks} train tasks")
    metrics = train_sft(
        policy.model, policy.tokenizer, demos, epochs=config.sft_epochs,
        batch_size=config.sft_batch_size, lr=config.sft_lr, seed=config.seed,
    )  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    write_jsonl(demos, folder / "demonstrations.jsonl")
    policy.model.save_pretrained(folder)
    policy.tokenizer.save_pretrained(folder)
    _write_json(folder / "sft.json", {"base": str(base), "demonstrations": len(demos), **metrics})
    return folder


def _rl(config: DemoConfig, env_kwargs: dict[str, Any], sft: Path) -> Path:
    from turnwise.trainers.config import TrainConfig
    from turnwise.trainers.loop import CHECKPOINTS, STATE, train

    folder = config.out / "rl"
    final = folder / CHECKPOINTS / f"iter-{config.iterations:05d}"
    if (final / STATE).is_file():
        return final
    train_config = TrainConfig(
        algo=config.algo, env=config.env, env_kwargs=json.dumps(env_kwargs), model=str(sft),
        out=folder, resume=(folder / CHECKPOINTS / "latest" / STATE).is_file(),
        iterations=config.iterations, tasks_per_iteration=config.tasks_per_iteration,
        group_size=config.group_size, train_tasks=config.train_tasks, lr=config.lr,
        eval_split="test", eval_tasks=config.eval_tasks,
        eval_every=config.curve_every or config.iterations, checkpoint_every=max(1, config.iterations // 5), keep_checkpoints=1,
        workers=config.workers,
        max_tokens=config.max_tokens, choices=config.choices, device=config.device,
        backend=config.backend, seed=config.seed, **config.rl_settings(),
    )  # fmt: skip
    result = train(train_config, console=True)
    if result.checkpoint is None:  # pragma: no cover - train always saves the last iteration
        raise RuntimeError("training wrote no checkpoint")
    return result.checkpoint


def _evaluate(
    config: DemoConfig, env_kwargs: dict[str, Any], policies: dict[str, tuple[str, str]]
) -> dict[str, dict[str, Any]]:
    import turnwise
    from turnwise.eval.run import EvalConfig, evaluate
    from turnwise.eval.suites import Suite, SuiteEntry

    kwargs = dict(env_kwargs)
    max_turns = kwargs.pop("max_turns", None)
    env = turnwise.make(config.env, **kwargs)
    try:
        test = list(env.unwrapped.tasks("test"))
    finally:
        env.close()
    if len(test) < config.eval_tasks:
        raise CLIError(
            f"{config.env} has {len(test)} test tasks; --eval-tasks is {config.eval_tasks}"
        )
    suite = Suite(
        name="turnwise-demo",
        version=0,
        entries=(
            SuiteEntry(
                config.env,
                tuple(test[: config.eval_tasks]),
                (config.seed,),
                "test",
                max_turns,
                kwargs,
            ),
        ),
        description=f"The demo's held-out tasks: the first {config.eval_tasks} of the test split.",
    )
    suite_file = config.out / "suite.json"
    _write_json(suite_file, suite.to_dict())
    summaries = {}
    for name, (spec, label) in policies.items():
        summaries[name] = evaluate(
            EvalConfig(
                suite=str(suite_file),
                policy=spec,
                out=config.out / "eval" / name,
                label=label,
                workers=config.workers,
                max_tokens=config.max_tokens,
                choices=config.choices,
                resume=True,
            )
        )
    return summaries


def _paired_difference(better: Path, baseline: Path, *, seed: int) -> dict[str, float]:
    """Mean and 95% bootstrap interval of success(better) − success(baseline), episode by episode."""
    from turnwise.eval.stats import bootstrap_ci
    from turnwise.trajectory import read_jsonl

    a: list[Trajectory] = read_jsonl(better / "episodes.jsonl")
    b: list[Trajectory] = read_jsonl(baseline / "episodes.jsonl")
    if [(t.task_id, t.seed) for t in a] != [(t.task_id, t.seed) for t in b]:
        raise RuntimeError("the two evaluations did not play the same episodes")
    diffs = [float(x.success) - float(y.success) for x, y in zip(a, b, strict=True)]
    low, high = bootstrap_ci(diffs, seed=seed)
    return {"mean": sum(diffs) / len(diffs), "ci_low": low, "ci_high": high}


def _report(
    config: DemoConfig,
    summaries: dict[str, dict[str, Any]],
    rows: list[DemoRow],
    difference: dict[str, float],
) -> dict[str, Path]:
    from turnwise.eval.leaderboard import build_site
    from turnwise.trainers.metrics import plot_learning_curve

    out = config.out
    files = {"leaderboard": build_site(list(summaries.values()), out / "leaderboard",
                                       title=f"turnwise demo: {config.env}")}  # fmt: skip
    files["curve"] = plot_learning_curve(
        out / "rl",
        out / "curve.png",
        title=f"{config.algo.upper()} after SFT, {config.env}: held-out (eval) and train (rollout)",
    )
    files["rollouts"] = out / "eval"
    return files


def _print_table(out: Any, config: DemoConfig, result: DemoResult) -> None:
    from rich.table import Table

    rows = result.rows
    table = Table(
        title=f"{config.env}: {rows[0].episodes} held-out test tasks, same seeds for every policy",
        title_justify="left",
    )
    for name in ("policy", "success", "95% CI", "mean reward", "mean turns"):
        table.add_column(name, justify="left" if name == "policy" else "right")
    for row in sorted(rows, key=lambda r: -r.success_rate):
        table.add_row(
            row.label,
            f"{row.success_rate:.1%}",
            f"[{row.ci_low:.2f}, {row.ci_high:.2f}]",
            f"{row.reward_mean:+.2f}",
            f"{row.turns_mean:.1f}",
        )
    out.print(table)
    d = result.difference
    verdict = (
        "RL beats SFT by more than the interval"
        if result.rl_beats_sft
        else "the interval includes no gain: RL did not measurably beat SFT"
    )
    out.print(
        f"RL − SFT: {d['mean']:+.3f}, 95% CI [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}] "
        f"(paired over the same episodes): {verdict}.",
        markup=False,
    )
    out.print(f"Total {result.seconds['total']:.0f} s: " + ", ".join(
        f"{k} {v:.0f} s" for k, v in result.seconds.items() if k != "total"))  # fmt: skip
    for kind, path in result.files.items():
        out.print(f"  {kind:<12} {path}", markup=False)


def _write_json(path: Path, data: Any) -> Path:
    from turnwise.files import atomic_write_text

    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(path, json.dumps(data, indent=2) + "\n")
