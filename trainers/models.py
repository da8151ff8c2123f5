"""The models a trainer holds: the policy, and only what its algorithm needs besides.

* the **policy**: any local causal LM (or the offline tiny model), full fine-tuning or LoRA,
  shared in place with the `hf` generation backend, so there is no weight transfer on one
  machine;
* a **reference** for the KL penalty and for PRIME's implicit rewards: the base with the LoRA
  adapter disabled when training LoRA (no copy), else a frozen copy of the initial weights;
* a **critic** (PPO, SPA): a copy of the backbone with a scalar value head, trained on its own;
* a **scalar head on the policy backbone** (SPA's progress estimator), trained on detached
  hidden states so it never pulls on the policy;
* an **implicit PRM** (OPRL, PRIME): a trainable copy of the initial policy.

LOOP, GRPO without KL, RLOO and ARPO hold the policy alone.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "ScalarHead",
    "ValueModel",
    "load_policy_model",
    "merged_weights",
    "reference_logprobs_context",
    "resolve_model_path",
]


def resolve_model_path(model: str) -> Path:
    """`--model`: a tiny-model preset name (`nano`, `tiny`, ...) or a checkpoint folder."""
    from turnwise.agents.tiny import PRESETS, default_checkpoint

    if model in PRESETS:
        return default_checkpoint(model)
    path = Path(model)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"--model {model!r} is neither a tiny preset ({', '.join(PRESETS)}) nor a folder "
            "with a Hugging Face checkpoint (config.json)"
        )
    return path


def load_policy_model(
    path: str | Path,
    *,
    device: str = "auto",
    dtype: str = "auto",
    lora_rank: int = 0,
    gradient_checkpointing: bool = False,
    seed: int = 0,
) -> tuple[Any, Any]:
    """`(model, tokenizer)` ready to train: on its device, LoRA attached when asked.

    A folder holding a saved peft adapter (`adapter_config.json`) is loaded with its adapter
    trainable.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from turnwise.agents.hf import _resolve_device, _resolve_dtype

    path = Path(path)
    target = _resolve_device(device)
    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(path)
    if (path / "adapter_config.json").is_file():
        from peft import AutoPeftModelForCausalLM

        model = AutoPeftModelForCausalLM.from_pretrained(
            path, is_trainable=True, dtype=_resolve_dtype(dtype, target)
        )
    else:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=_resolve_dtype(dtype, target))
        if lora_rank > 0:
            from peft import LoraConfig, get_peft_model

            config = LoraConfig(
                r=lora_rank, lora_alpha=2 * lora_rank, target_modules="all-linear",
                task_type="CAUSAL_LM",
            )  # fmt: skip
            model = get_peft_model(model, config)
    if gradient_checkpointing:
        model.gradient_checkpointing_enable()
        if hasattr(model, "enable_input_require_grads"):
            model.enable_input_require_grads()
    model.to(target)
    model.eval()
    return model, tokenizer


def is_peft(model: Any) -> bool:
    return hasattr(model, "disable_adapter") and hasattr(model, "peft_config")


def merged_weights(model: Any) -> Iterator[tuple[str, Any]]:
    """The policy's weights as a generation engine loads them: `(name, tensor)` under the base
    model's parameter names, with a LoRA adapter's update `W + ΔW` folded in.

    The model is left untouched (peft's merge-then-unmerge would drift the base weights a
    little at every sync, in bf16 visibly); each merged tensor is made as it is yielded.

    Example:
        generation.update_weights(merged_weights(model))
    """
    import torch

    if not is_peft(model):
        for name, p in model.named_parameters():
            yield name, p.detach()
        return
    base = model.get_base_model()
    adapter = model.active_adapter
    lora_layers = {
        name: module
        for name, module in base.named_modules()
        if hasattr(module, "get_delta_weight") and adapter in getattr(module, "lora_A", {})
    }
    with torch.no_grad():
        for name, p in base.named_parameters():
            if "lora_" in name:
                continue
            clean = name.replace(".base_layer.", ".")
            owner, _, leaf = clean.rpartition(".")
            layer = lora_layers.get(owner)
            if layer is not None and leaf == "weight":
                yield clean, p + layer.get_delta_weight(adapter).to(p.dtype)
            else:
                yield clean, p.detach()


def frozen_copy(model: Any) -> Any:
    """A frozen deep copy (the reference policy when no LoRA adapter can be switched off)."""
    clone = copy.deepcopy(model)
    for p in clone.parameters():
        p.requires_grad_(False)
    clone.eval()
    return clone


@contextlib.contextmanager
def reference_logprobs_context(policy: Any, reference: Any) -> Iterator[Any]:
    """The model to score the reference with: the frozen copy, or the policy with its LoRA
    adapter disabled."""
    if reference is not None:
        yield reference
    elif is_peft(policy):
        with policy.disable_adapter():
            yield policy
    else:
        raise RuntimeError("no reference model: set kl_coef > 0 or train with LoRA")


def _hidden_size(model: Any) -> int:
    config = model.config
    for name in ("hidden_size", "n_embd", "d_model"):
        if hasattr(config, name):
            return int(getattr(config, name))
    raise ValueError(f"cannot tell the hidden size of {type(model).__name__}")


class ScalarHead:
    """A linear map from hidden states to one number per position (zero-initialised)."""

    def __init__(self, hidden_size: int, device: Any, dtype: Any = None) -> None:
        import torch

        self.linear = torch.nn.Linear(hidden_size, 1, device=device, dtype=dtype)
        torch.nn.init.zeros_(self.linear.weight)
        torch.nn.init.zeros_(self.linear.bias)

    @classmethod
    def for_model(cls, model: Any) -> ScalarHead:
        p = next(model.parameters())
        return cls(_hidden_size(model), p.device, p.dtype)

    def __call__(self, hidden: Any) -> Any:
        return self.linear(hidden).squeeze(-1).float()

    def parameters(self) -> Iterator[Any]:
        return iter(self.linear.parameters())

    def state_dict(self) -> dict[str, Any]:
        return dict(self.linear.state_dict())

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.linear.load_state_dict(state)


class ValueModel:
    """The critic: a trainable copy of the policy's initial backbone plus a scalar head.

    `values(input_ids, attention_mask)` gives `V` at every position: the value of the context
    up to and including that token.
    """

    def __init__(self, policy: Any) -> None:
        base = policy.get_base_model() if is_peft(policy) else policy
        self.backbone = copy.deepcopy(base)
        for p in self.backbone.parameters():
            p.requires_grad_(True)
        self.head = ScalarHead.for_model(self.backbone)

    def parameters(self) -> list[Any]:
        return [*self.backbone.parameters(), *self.head.parameters()]

    def values(self, input_ids: Any, attention_mask: Any) -> Any:
        out = self.backbone(
            input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True,
            use_cache=False,
        )  # fmt: skip
        return self.head(out.hidden_states[-1])

    def train(self, mode: bool = True) -> None:
        self.backbone.train(mode)

    def state_dict(self) -> dict[str, Any]:
        return {"backbone": self.backbone.state_dict(), "head": self.head.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.backbone.load_state_dict(state["backbone"])
        self.head.load_state_dict(state["head"])
