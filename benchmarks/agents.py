"""What batching buys the `hf` backend: agent turns per second, batched vs one request at a time.

Both modes run in one process on the same tiny model (`turnwise.agents.tiny`) with the same
KeyDoor-like requests (system prompt + observation + admissible actions, rendered through the
chat template; temperature 1 with a seed per request; `--max-tokens` out), so the only
difference is the batch: `HFPolicy.generate(all)` with `max_batch_size=--batch` against a loop of
`generate([one])`. A per-request seed makes both modes sample the same tokens, which is checked.

A separate section compares vLLM with `hf` on a GPU; it runs only where CUDA and vllm are both
available and is skipped with a message elsewhere.

Usage: python benchmarks/agents.py [--preset small] [--batch 16] [--max-tokens 32]
       [--threads 1] [--repeats 3] [--out benchmarks/results/agents.json]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import turnwise
from turnwise.agents.hf import HFPolicy
from turnwise.agents.policy import GenerationRequest, Sampling
from turnwise.agents.tiny import default_checkpoint

SYSTEM = (
    "You are an agent playing a text game. Each turn you read an observation and reply with one "
    "command. Think step by step inside <think></think>, then give exactly one command inside "
    "<action></action>."
)


def keydoor_requests(n: int, max_tokens: int) -> list[GenerationRequest]:
    """`n` turns' worth of requests from real KeyDoor states (expert play, several tasks)."""
    env = turnwise.make("turnwise/KeyDoor-v0")
    requests: list[GenerationRequest] = []
    episode = 0
    while len(requests) < n:
        obs, info = env.reset(seed=episode)
        instruction = info["instruction"]  # given at reset only
        done = False
        while not done and len(requests) < n:
            user = (
                f"{instruction}\n{obs['text']}\n"
                f"Admissible actions: {', '.join(info['admissible_actions'])}"
            )
            messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]
            sampling = Sampling(temperature=1.0, max_tokens=max_tokens, seed=len(requests))
            requests.append(GenerationRequest(messages=messages, sampling=sampling))
            obs, _, terminated, truncated, info = env.step(env.unwrapped.expert_action())
            done = terminated or truncated
        episode += 1
    env.close()
    return requests


def _timed(fn: Any, repeats: int) -> tuple[float, Any]:
    """Median seconds of `repeats` calls (after one warm-up call), and the last result."""
    result = fn()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds), result


# --------------------------------------------------------------------------- hf: batched vs one
def batched_vs_sequential(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    path = default_checkpoint(args.preset)
    policy = HFPolicy(path, device="cpu", max_batch_size=args.batch)
    requests = keydoor_requests(args.batch, args.max_tokens)

    batched_s, batched = _timed(lambda: policy.generate(requests), args.repeats)
    sequential_s, sequential = _timed(
        lambda: [policy.generate([r])[0] for r in requests], args.repeats
    )
    tokens = sum(len(g.token_ids) for g in batched)
    prompt_tokens = [len(g.prompt_token_ids or []) for g in batched]
    same = sum(a.token_ids == b.token_ids for a, b in zip(batched, sequential, strict=True))
    return {
        "model": {
            "preset": args.preset,
            "parameters": sum(p.numel() for p in policy.model.parameters()),
            "path": str(path),
        },
        "torch_threads": torch.get_num_threads(),
        "requests": len(requests),
        "batch_size": args.batch,
        "max_tokens": args.max_tokens,
        "prompt_tokens_min_max": [min(prompt_tokens), max(prompt_tokens)],
        "generated_tokens": tokens,
        "same_tokens_both_modes": f"{same}/{len(requests)}",
        "batched": {
            "seconds": round(batched_s, 4),
            "turns_per_s": round(len(requests) / batched_s, 2),
            "tokens_per_s": round(tokens / batched_s, 1),
        },
        "one_at_a_time": {
            "seconds": round(sequential_s, 4),
            "turns_per_s": round(len(requests) / sequential_s, 2),
            "tokens_per_s": round(tokens / sequential_s, 1),
        },
        "speedup": round(sequential_s / batched_s, 2),
    }


# --------------------------------------------------------------------------- vLLM vs hf (GPU only)
def vllm_vs_hf(args: argparse.Namespace) -> dict[str, Any]:
    """Turns/s of vLLM's offline engine and of `HFPolicy` on CUDA, same model and requests.

    Runs only where CUDA and vllm are both available; returns `{"skipped": reason}` elsewhere.
    """
    import torch

    if not torch.cuda.is_available():
        return {"skipped": "needs a CUDA GPU: none is visible to torch"}
    if importlib.util.find_spec("vllm") is None:
        return {"skipped": "needs vLLM (pip install 'turnwise[vllm]', CUDA only)"}
    from vllm import LLM, SamplingParams

    path = default_checkpoint(args.preset)
    hf = HFPolicy(path, device="cuda", max_batch_size=args.gpu_requests)
    requests = keydoor_requests(args.gpu_requests, args.max_tokens)
    prompts = [hf._context(r) for r in requests]  # the same token ids for both engines
    llm = LLM(model=str(path), dtype="bfloat16", gpu_memory_utilization=0.3, seed=0)
    params = [
        SamplingParams(temperature=1.0, max_tokens=args.max_tokens, seed=i, logprobs=0)
        for i in range(len(requests))
    ]
    vllm_s, outputs = _timed(
        lambda: llm.generate(
            [{"prompt_token_ids": ids} for ids in prompts], params, use_tqdm=False
        ),
        args.repeats,
    )
    hf_s, generations = _timed(lambda: hf.generate(requests), args.repeats)
    vllm_tokens = sum(len(o.outputs[0].token_ids) for o in outputs)
    hf_tokens = sum(len(g.token_ids) for g in generations)
    return {
        "device": torch.cuda.get_device_name(),
        "requests": len(requests),
        "vllm": {
            "seconds": round(vllm_s, 4),
            "turns_per_s": round(len(requests) / vllm_s, 2),
            "tokens_per_s": round(vllm_tokens / vllm_s, 1),
        },
        "hf": {
            "seconds": round(hf_s, 4),
            "turns_per_s": round(len(requests) / hf_s, 2),
            "tokens_per_s": round(hf_tokens / hf_s, 1),
            "dtype": str(hf.model.dtype),
        },
        "vllm_speedup": round(hf_s / vllm_s, 2),
    }


# --------------------------------------------------------------------------- report
def _machine() -> dict[str, Any]:
    import torch

    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpus": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="small", help="turnwise.agents.tiny preset")
    parser.add_argument("--batch", type=int, default=16, help="requests, all in one batch")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (0 = torch's default; on a shared machine extra threads spin)",
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--gpu-requests", type=int, default=256, help="requests for vLLM vs hf")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/agents.json"))
    args = parser.parse_args()

    cpu = batched_vs_sequential(args)
    print(
        f"hf on CPU, {cpu['model']['preset']} ({cpu['model']['parameters'] / 1e6:.2f}M params), "
        f"{cpu['requests']} KeyDoor turns x {cpu['max_tokens']} tokens, "
        f"{cpu['torch_threads']} thread(s)"
    )
    print(f"{'mode':<16}{'seconds':>10}{'turns/s':>10}{'tokens/s':>11}")
    for mode in ("one_at_a_time", "batched"):
        row = cpu[mode]
        print(
            f"{mode:<16}{row['seconds']:>10.3f}{row['turns_per_s']:>10.1f}{row['tokens_per_s']:>11.0f}"
        )
    print(f"speedup {cpu['speedup']}x; same tokens in both modes: {cpu['same_tokens_both_modes']}")

    gpu = vllm_vs_hf(args)
    if "skipped" in gpu:
        print(f"vLLM vs hf on a GPU: skipped ({gpu['skipped']})")
    else:
        print(f"vLLM vs hf on {gpu['device']}, {gpu['requests']} requests:")
        for engine in ("vllm", "hf"):
            print(f"  {engine:<6}{gpu[engine]['turns_per_s']:>10.1f} turns/s")
        print(f"  vLLM speedup {gpu['vllm_speedup']}x")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {"machine": _machine(), "hf_batched_vs_one_at_a_time": cpu, "vllm_vs_hf": gpu}
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
