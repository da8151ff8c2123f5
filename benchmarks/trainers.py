"""What the trainers cost: peak memory of LOOP vs PPO (critic + reference), and training tokens/s.

LOOP holds one model (no critic, no reference: its baseline comes from sibling rollouts);
PPO with a critic and a KL reference holds three (the policy, a trainable value model, a frozen
reference). The same randomly initialised Llama-style model (`--hidden`, `--layers`: about 25M
parameters by default, so the models dominate the process) trains one iteration of each
algorithm on the same KeyDoor tasks, each in its own fresh process:

* **peak memory**: the process's peak resident set size (CPU) minus its size after importing
  torch and transformers (so the runtime and libraries are left out), or
  `torch.cuda.max_memory_allocated` (GPU); and the bytes of every parameter, gradient and
  optimizer state the trainer holds after its update, counted from the tensors;
* **training tokens/s**: generated tokens through forward + backward per second in the update
  (`perf/train_tokens_per_second`).

Expectation (issue): LOOP at about half of PPO's memory.

Usage: python benchmarks/trainers.py [--hidden 512] [--layers 8] [--device auto]
       [--out benchmarks/results/trainers.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

KW = '{"difficulty": "easy", "n_rooms": 2, "n_locked": 0, "n_distractors": [0, 1], "max_turns": 2}'


def held_bytes(trainer: Any) -> dict[str, int]:
    """Bytes of parameters, gradients and optimizer states of every model the trainer holds."""
    import torch

    def tensors_bytes(tensors: Any) -> int:
        return sum(t.numel() * t.element_size() for t in tensors if isinstance(t, torch.Tensor))

    def optimizer_bytes(opt: Any) -> int:
        if opt is None:
            return 0
        return sum(tensors_bytes(state.values()) for state in opt.state.values())

    params: dict[int, Any] = {}
    for module in (trainer.model, trainer.reference, trainer.prm):
        if module is not None:
            params.update({id(p): p for p in module.parameters()})
    if trainer.critic is not None:
        params.update({id(p): p for p in trainer.critic.parameters()})
    weights = tensors_bytes(params.values())
    grads = tensors_bytes(p.grad for p in params.values() if p.grad is not None)
    optim = sum(
        optimizer_bytes(o)
        for o in (trainer.optimizer, trainer.critic_optimizer, trainer.prm_optimizer)
    )
    return {"weights": weights, "gradients": grads, "optimizer": optim}


def rss_mb() -> float:
    """This process's resident set size now (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def child(algo: str, hidden: int, layers: int, device: str) -> dict[str, Any]:
    """One iteration of `algo` in this (fresh) process; returns its measurements."""
    import resource

    import torch
    import transformers  # noqa: F401  (imported before the baseline is taken)

    from turnwise.agents.tiny import default_checkpoint
    from turnwise.trainers.config import TrainConfig
    from turnwise.trainers.loop import Trainer

    model = default_checkpoint(
        "medium", hidden_size=hidden, num_hidden_layers=layers,
        intermediate_size=int(hidden * 8 / 3) // 64 * 64, num_attention_heads=8,
        num_key_value_heads=8,
    )  # fmt: skip
    base = rss_mb()
    config = TrainConfig(
        algo=algo, model=str(model), env_kwargs=KW, out=Path(tempfile.mkdtemp()), iterations=1,
        tasks_per_iteration=4, group_size=4, workers=8, max_tokens=16, eval_every=0,
        checkpoint_every=0, device=device, lr=1e-5,
    )  # fmt: skip
    trainer = Trainer(config, console=False)
    trajs = trainer.collect(0)
    metrics = trainer.update(trajs)
    if trainer.device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(trainer.device) / 2**20
        base = 0.0
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    held = held_bytes(trainer)
    return {
        "algo": algo,
        "device": str(trainer.device),
        "policy_parameters": sum(p.numel() for p in trainer.model.parameters()),
        "models_held": 1 + (trainer.reference is not None) + (trainer.critic is not None),
        "peak_mb": round(peak - base, 1),
        "held_mb": {k: round(v / 2**20, 1) for k, v in held.items()},
        "held_total_mb": round(sum(held.values()) / 2**20, 1),
        "train_tokens_per_second": round(metrics["perf/train_tokens_per_second"], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/trainers.json"))
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.hidden, args.layers, args.device)))
        return
    results = {}
    for algo in ("loop", "ppo"):
        command = [sys.executable, __file__, "--child", algo, "--hidden", str(args.hidden)]
        command += ["--layers", str(args.layers), "--device", args.device]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        results[algo] = json.loads(done.stdout.strip().splitlines()[-1])
        print(algo, results[algo], flush=True)
    loop, ppo = results["loop"], results["ppo"]
    report = {
        "benchmark": "trainers",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_average": os.getloadavg(),
        },
        "model": {"hidden": args.hidden, "layers": args.layers},
        "results": results,
        "loop_vs_ppo_peak": round(loop["peak_mb"] / ppo["peak_mb"], 2),
        "loop_vs_ppo_held": round(loop["held_total_mb"] / ppo["held_total_mb"], 2),
        "expectation": "LOOP about half of PPO",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
