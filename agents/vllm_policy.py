"""The `vllm` backend: vLLM's offline engine as a `Policy` (spec `vllm:PATH`), GPU only.

`VLLMPolicy` batches every request of a `generate` call into one `LLM.generate`. Chat requests
are rendered with the model's chat template and tokenized here (no special tokens added: the
template holds them), so a chat request and the token-exact request built from the same messages
reach the engine as the same ids; `prompt_token_ids` requests go in as vLLM token prompts.
Sampling asks for `logprobs=0`, the log-prob of the sampled token only, which vLLM (V1 engine,
default `logprobs_mode="raw_logprobs"`) reports from the model's raw distribution, before
temperature and top-p: the same quantity the `hf` backend reports. Token ids come back exactly
as the engine generated them, the end-of-sequence token included when it ended the generation.

Weight updates (`update_weights`) load new tensors into the running engine after a trainer's
optimizer step, through the model's own `load_weights` (which handles vLLM's fused and sharded
parameters). vLLM has moved the model around between versions, so `_engine_models` and `_load_weights`
are the one place that knows where it lives (with `LLM.collective_rpc` as the fallback).

Targets vLLM 0.8–0.11 (the V1 engine). Unverified here, because this machine has no GPU and no
vLLM: the attribute path to the in-process model (`llm.llm_engine.model_executor.driver_worker
[.worker].model_runner.model`), the `collective_rpc` fallback (needs vLLM to pickle the function
it sends, which V1 allows only with `VLLM_ALLOW_INSECURE_SERIALIZATION=1`), and that V1 keeps the
engine in this process when `VLLM_ENABLE_V1_MULTIPROCESSING=0` (set by `in_process=True`). The
GPU tests in `tests/agents/test_vllm.py` check all of it where a GPU is lent.

Example (on a GPU):
    policy = VLLMPolicy("/path/to/checkpoint", gpu_memory_utilization=0.3)
    [gen] = policy.generate([GenerationRequest(messages=[{"role": "user", "content": "hi"}])])
    policy.update_weights(model.named_parameters())   # after an optimizer step
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .policy import Generation, GenerationRequest, Sampling
from .tokens import encode, render_chat

__all__ = ["VLLMPolicy"]


class VLLMPolicy:
    """A `Policy` on vLLM's offline engine (`vllm.LLM`).

    Args:
        path: a local Hugging Face checkpoint folder.
        tensor_parallel_size: GPUs to shard the model over.
        gpu_memory_utilization: the share of GPU memory vLLM may take (leave room for training).
        dtype: `auto` (the checkpoint's), `bfloat16`, `float16`, ...
        max_model_len: the longest context (default: the model's).
        seed: the engine's seed (each request is also seeded by its `Sampling.seed`).
        enable_sleep_mode: allow `sleep()`/`wake_up()` (frees GPU memory between rollouts).
        in_process: keep the engine in this process (sets `VLLM_ENABLE_V1_MULTIPROCESSING=0`
            unless already set), so `update_weights` reaches the model directly.
        engine_kwargs: passed to `vllm.LLM` as they are.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        tensor_parallel_size: int = 1,
        gpu_memory_utilization: float = 0.5,
        dtype: str = "auto",
        max_model_len: int | None = None,
        seed: int = 0,
        enable_sleep_mode: bool = False,
        in_process: bool = True,
        **engine_kwargs: Any,
    ) -> None:
        try:
            import vllm
        except ModuleNotFoundError as exc:
            raise ModuleNotFoundError(
                "the vllm backend needs vLLM, which is not installed: pip install "
                "'turnwise[vllm]' (CUDA builds only; use hf:PATH on a CPU)",
                name="vllm",
            ) from exc
        if in_process and tensor_parallel_size == 1:
            # Must be set before the engine starts; V1 otherwise runs it in a child process.
            os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        self.path = str(Path(path))
        self.name = f"vllm:{path}"
        self.llm = vllm.LLM(
            model=self.path,
            tensor_parallel_size=tensor_parallel_size,
            gpu_memory_utilization=gpu_memory_utilization,
            dtype=dtype,
            max_model_len=max_model_len,
            seed=seed,
            enable_sleep_mode=enable_sleep_mode,
            **engine_kwargs,
        )
        self.tokenizer: Any = self.llm.get_tokenizer()
        self.weight_version = 0
        """How many times `update_weights` has loaded new weights."""

    def __repr__(self) -> str:
        return f"VLLMPolicy({self.path!r})"

    # ------------------------------------------------------------------ generation
    def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        """Answer all `requests` in one batched engine call, in order."""
        if not requests:
            return []
        from vllm.inputs import TokensPrompt

        prompts = [TokensPrompt(prompt_token_ids=self._prompt_ids(r)) for r in requests]
        params = [self._sampling_params(r.sampling) for r in requests]
        outputs = self.llm.generate(prompts, sampling_params=params, use_tqdm=False)
        return [self._generation(out) for out in outputs]

    def _prompt_ids(self, request: GenerationRequest) -> list[int]:
        if request.prompt_token_ids is not None:
            return list(request.prompt_token_ids)
        assert request.messages is not None
        return encode(self.tokenizer, render_chat(self.tokenizer, request.messages, True))

    @staticmethod
    def _sampling_params(sampling: Sampling) -> Any:
        from vllm import SamplingParams

        return SamplingParams(
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            max_tokens=sampling.max_tokens,
            stop=list(sampling.stop) or None,
            # The Policy contract keeps a stop string in the text, as in the token ids.
            include_stop_str_in_output=True,
            seed=sampling.seed,
            logprobs=0,
        )

    @staticmethod
    def _generation(output: Any) -> Generation:
        completion = output.outputs[0]
        ids = [int(t) for t in completion.token_ids]
        logprobs = None
        if completion.logprobs is not None:
            # One dict per position, token id -> Logprob; with logprobs=0 it holds the sampled one.
            logprobs = [
                float(step[tok].logprob) for tok, step in zip(ids, completion.logprobs, strict=True)
            ]
        reason = "length" if completion.finish_reason == "length" else "stop"
        return Generation(
            text=completion.text,
            token_ids=ids,
            logprobs=logprobs,
            finish_reason=reason,
            prompt_token_ids=list(output.prompt_token_ids or []),
            info={"stop_reason": completion.stop_reason} if completion.stop_reason else {},
        )

    # ------------------------------------------------------------------ training hooks
    def update_weights(self, named_tensors: Iterable[tuple[str, Any]]) -> None:
        """Load new weights (HF parameter names, e.g. `model.named_parameters()`) into the engine.

        Partial updates are fine: only the named tensors change. The prefix cache is cleared,
        since cached keys and values were computed with the old weights.
        """
        weights = [(name, tensor.detach()) for name, tensor in named_tensors]
        _load_weights(self.llm, weights)
        reset = getattr(self.llm, "reset_prefix_cache", None)
        if callable(reset):
            reset()
        self.weight_version += 1

    def sleep(self, level: int = 1) -> None:
        """Free the engine's GPU memory (level 1 keeps the weights in CPU memory)."""
        self._sleep_call("sleep", level=level)

    def wake_up(self) -> None:
        """Take back the GPU memory freed by `sleep`."""
        self._sleep_call("wake_up")

    def _sleep_call(self, method: str, **kwargs: Any) -> None:
        fn = getattr(self.llm, method, None)
        if not callable(fn):
            raise NotImplementedError(f"this vLLM version has no LLM.{method}(); upgrade vLLM")
        fn(**kwargs)


# ---------------------------------------------------------------------- version differences
def _engine_models(llm: Any) -> list[Any]:
    """The model objects of an in-process engine, wherever this vLLM version keeps them."""
    engine = getattr(llm, "llm_engine", None)
    executor = getattr(engine, "model_executor", None)
    if executor is None:
        # V1 with an in-process engine core: LLMEngine -> InprocClient -> EngineCore.
        core = getattr(getattr(engine, "engine_core", None), "engine_core", None)
        executor = getattr(core, "model_executor", None)
    worker = getattr(executor, "driver_worker", None)
    # Newer versions wrap the worker (WorkerWrapperBase.worker); older ones expose it directly.
    worker = getattr(worker, "worker", worker)
    runner = getattr(worker, "model_runner", None)
    model = getattr(runner, "model", None)
    return [model] if model is not None and hasattr(model, "load_weights") else []


def _worker_load_weights(worker: Any, weights: list[tuple[str, Any]]) -> int:
    """Runs inside each vLLM worker (through `collective_rpc`)."""
    device = next(worker.model_runner.model.parameters()).device
    worker.model_runner.model.load_weights(weights=[(n, t.to(device)) for n, t in weights])
    return len(weights)


def _load_weights(llm: Any, weights: list[tuple[str, Any]]) -> None:
    """Load `weights` into every copy of the model, in process or through the workers."""
    models = _engine_models(llm)
    if models:
        for model in models:
            model.load_weights(weights=weights)
        return
    rpc = getattr(llm, "collective_rpc", None)
    if not callable(rpc):
        raise NotImplementedError(
            "cannot reach the model of this vLLM engine to load weights: it runs out of process "
            "and this vLLM has no LLM.collective_rpc; use in_process=True or upgrade vLLM"
        )
    # Tensors cross the process boundary by pickling: send them from CPU memory.
    rpc(_worker_load_weights, args=([(n, t.cpu()) for n, t in weights],))
