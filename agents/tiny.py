"""Tiny offline models: a byte-level BPE tokenizer trained on env text and a small random Llama.

No hub weights can be downloaded where turnwise is tested, yet agents, the `hf` backend and the
trainers need a real tokenizer and a real causal LM. This module makes both from nothing, in
seconds, deterministically by seed:

* `corpus` plays expert and random agents in envs (KeyDoor by default) and gathers the text an
  agent sees and writes: instructions, observations, admissible actions, error messages, and the
  prompt scaffolding (`<think>`, `<action>`, format instructions, role names);
* `build_tokenizer` trains a byte-level BPE on it (so any text encodes, nothing is unknown) and
  wraps it as a `PreTrainedTokenizerFast` with a ChatML chat template; `<|im_end|>` is the EOS
  and `<|endoftext|>` the pad token;
* `build_model` makes a randomly initialised `LlamaForCausalLM` from a named size preset
  (`PRESETS`, ~0.1M to ~15M parameters) plus explicit `LlamaConfig` overrides;
* `build` writes both as an ordinary HF checkpoint (safetensors) that
  `AutoTokenizer.from_pretrained` / `AutoModelForCausalLM.from_pretrained` load;
* `default_checkpoint` builds one into `turnwise.paths.cache_dir("tiny", ...)` once and reuses it.

The weights are random: the model emits fluent-looking token soup, which is what tests, demos and
benchmarks need (real shapes, real tokenizer, real generation code paths).

torch and transformers are imported inside the functions, so `import turnwise.agents.tiny` stays
light.

Example:
    >>> from turnwise.agents import tiny
    >>> texts = tiny.corpus(episodes=4)
    >>> any("<action>" in t for t in texts) and any("You are in the" in t for t in texts)
    True
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from turnwise.files import build_folder_once
from turnwise.paths import cache_dir

if TYPE_CHECKING:
    from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

__all__ = [
    "CHAT_TEMPLATE",
    "EOS_TOKEN",
    "PAD_TOKEN",
    "PRESETS",
    "SPECIAL_TOKENS",
    "build",
    "build_model",
    "build_tokenizer",
    "corpus",
    "default_checkpoint",
]

FORMAT_VERSION = 1
"""Bumped whenever `build` would write something different for the same arguments."""

PAD_TOKEN = "<|endoftext|>"
BOS_TOKEN = PAD_TOKEN
IM_START = "<|im_start|>"
EOS_TOKEN = "<|im_end|>"
SPECIAL_TOKENS = (PAD_TOKEN, IM_START, EOS_TOKEN)
"""Ids 0, 1, 2 in every tiny tokenizer, in this order."""

CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\n' }}{%- endif -%}"
)
"""ChatML: `<|im_start|>role\\ncontent<|im_end|>\\n` per message, then `<|im_start|>assistant\\n`."""

PRESETS: Mapping[str, Mapping[str, int]] = {
    # Parameter counts with the KeyDoor vocabulary (~600 tokens) and untied embeddings.
    "nano": {  # ~0.1M
        "hidden_size": 48,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 2,
    },
    "tiny": {  # ~0.2M
        "hidden_size": 64,
        "intermediate_size": 192,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
    },
    "small": {  # ~1M
        "hidden_size": 128,
        "intermediate_size": 384,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
    },
    "base": {  # ~5M
        "hidden_size": 256,
        "intermediate_size": 768,
        "num_hidden_layers": 6,
        "num_attention_heads": 8,
        "num_key_value_heads": 4,
    },
    "medium": {  # ~15M
        "hidden_size": 384,
        "intermediate_size": 1152,
        "num_hidden_layers": 8,
        "num_attention_heads": 6,
        "num_key_value_heads": 3,
    },
}
"""Named model sizes; `build_model(tok, preset, **overrides)` starts from one of these."""

# The scaffolding an agent's prompt and reply use. The agent layer owns the real templates; these
# only have to put the same words in the tokenizer's training text so they get compact tokens.
_SYSTEM_PROMPTS = (
    "You are an agent playing a text game. Each turn you read an observation and reply with one "
    "command. Think step by step inside <think></think>, then give exactly one command inside "
    "<action></action>.",
    "Respond in the format <think>your reasoning</think><action>your command</action>. "
    "Choose one of the admissible actions.",
)
_THOUGHTS = (
    "I need the key before I can open the locked door.",
    "The coin must be in another room; I should explore.",
    "Let me look around first.",
    "I have not been there yet, so I will go that way.",
    "That did not work; I should try something else.",
    "I will take it.",
)
_INVALID = (
    "go up",
    "open door",
    "take the key",
    "unlock door",
    "jump",
    "go",
    "take",
    "look around",
)
_FORMAT_ERROR = "Your reply had no <action></action> tag. Reply with <action>command</action>."


# --------------------------------------------------------------------------- corpus
def _observation_text(obs: object) -> str:
    if isinstance(obs, Mapping):
        return str(obs.get("text", ""))
    return str(obs)


def corpus(
    env_ids: Sequence[str] = ("turnwise/KeyDoor-v0",),
    *,
    episodes: int = 64,
    seed: int = 0,
    env_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[str]:
    """Text gathered offline by playing `episodes` episodes of each env with expert and random agents.

    `env_kwargs` maps an env id to its constructor keyword arguments (the train split is played
    unless they name another).

    Even episodes follow the env's expert (when it has one), odd ones play random admissible
    actions with an occasional invalid command, so success, failure and error messages all appear.
    Each turn yields a user message (instruction, observation, admissible actions) and an
    assistant reply in the `<think>…</think><action>…</action>` format; the role names, system
    prompts and a format-error message are added once. Deterministic in `seed`.

    Example:
        >>> texts = corpus(episodes=2, seed=1)
        >>> texts == corpus(episodes=2, seed=1)
        True
    """
    import turnwise  # the registry, imported late: tiny is imported by turnwise.agents users

    rng = random.Random(seed)
    texts: list[str] = ["system", "user", "assistant", *_SYSTEM_PROMPTS, _FORMAT_ERROR]
    for env_id in env_ids:
        env = turnwise.make(env_id, **dict((env_kwargs or {}).get(env_id, {})))
        try:
            for episode in range(episodes):
                obs, info = env.reset(seed=seed * 100_003 + episode)
                expert = getattr(env.unwrapped, "expert_action", None)
                use_expert = episode % 2 == 0 and callable(expert)
                done = False
                while not done:
                    actions = list(info.get("admissible_actions") or [])
                    action = expert() if use_expert and expert is not None else None
                    if action is None:
                        if actions and rng.random() > 0.15:
                            action = rng.choice(actions)
                        else:
                            action = rng.choice(_INVALID)
                    lines = [str(info.get("instruction", "")), _observation_text(obs)]
                    if actions:
                        lines.append("Admissible actions: " + ", ".join(actions))
                    texts.append("\n".join(line for line in lines if line))
                    texts.append(
                        f"<think>{rng.choice(_THOUGHTS)}</think>\n<action>{action}</action>"
                    )
                    obs, _, terminated, truncated, info = env.step(action)
                    done = terminated or truncated
                texts.append(_observation_text(obs))
        finally:
            env.close()
    # Observations repeat a lot; duplicates only slow the BPE trainer down (order is kept, so
    # the result stays deterministic).
    return list(dict.fromkeys(texts))


# --------------------------------------------------------------------------- tokenizer
def build_tokenizer(
    texts: Iterable[str], *, vocab_size: int = 1024, min_frequency: int = 2
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE on `texts` and wrap it as a ChatML `PreTrainedTokenizerFast`.

    The first 256 non-special ids are the byte alphabet, so every string encodes and decodes
    back exactly. Training is deterministic for the same texts. The vocabulary can come out
    smaller than `vocab_size` when the texts run out of pairs to merge.

    Example:
        >>> tok = build_tokenizer(["go north", "take red key"] * 10, vocab_size=300)
        >>> tok.decode(tok("go north!")["input_ids"])
        'go north!'
        >>> tok.eos_token, tok.pad_token
        ('<|im_end|>', '<|endoftext|>')
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    if vocab_size < 256 + len(SPECIAL_TOKENS):
        raise ValueError(
            f"vocab_size must be at least {256 + len(SPECIAL_TOKENS)}, got {vocab_size}"
        )
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    # Offsets only; byte-level BPE adds no BOS/EOS, the chat template supplies the structure.
    backend.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(list(texts), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=None,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        unk_token=None,
        chat_template=CHAT_TEMPLATE,
        model_max_length=4096,
        padding_side="left",
        clean_up_tokenization_spaces=False,
    )


# --------------------------------------------------------------------------- model
def build_model(
    tokenizer: PreTrainedTokenizerFast, preset: str = "tiny", *, seed: int = 0, **overrides: Any
) -> LlamaForCausalLM:
    """A randomly initialised `LlamaForCausalLM` sized by `preset`, for `tokenizer`'s vocabulary.

    `overrides` are `LlamaConfig` fields (`hidden_size=48`, `num_hidden_layers=3`, ...). The
    initialisation uses its own RNG seeded by `seed`, so the global torch RNG is untouched and the
    same arguments give bit-identical weights.

    Example:
        >>> tok = build_tokenizer(["go north"] * 4, vocab_size=300)
        >>> model = build_model(tok, "nano", num_hidden_layers=1)
        >>> model.config.num_hidden_layers, model.config.eos_token_id == tok.eos_token_id
        (1, True)
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    fields: dict[str, Any] = {
        "vocab_size": len(tokenizer),
        "max_position_embeddings": 4096,
        "tie_word_embeddings": False,
        "bos_token_id": tokenizer.convert_tokens_to_ids(BOS_TOKEN),
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        **PRESETS[preset],
        **overrides,
    }
    config = LlamaConfig(**fields)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.bos_token_id = fields["bos_token_id"]
    return model.eval()


# --------------------------------------------------------------------------- checkpoints
MANIFEST = "turnwise_tiny.json"
"""Written last into a built checkpoint: what it was built from. Its presence marks completion."""


def build(
    out_dir: str | os.PathLike[str],
    *,
    preset: str = "tiny",
    seed: int = 0,
    env_ids: Sequence[str] = ("turnwise/KeyDoor-v0",),
    episodes: int = 64,
    vocab_size: int = 1024,
    texts: Sequence[str] | None = None,
    env_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
    **overrides: Any,
) -> Path:
    """Build a tokenizer and model and save them as an HF checkpoint in `out_dir`; return it.

    The corpus is played in `env_ids`, made with `env_kwargs[env_id]` where given; `texts`
    replaces the env corpus when given. Same arguments, same files (byte for byte).

    Example:
        >>> import tempfile
        >>> from transformers import AutoModelForCausalLM, AutoTokenizer
        >>> scratch = tempfile.TemporaryDirectory()
        >>> path = build(scratch.name, preset="nano", episodes=2, vocab_size=300)
        >>> AutoTokenizer.from_pretrained(path).eos_token
        '<|im_end|>'
        >>> AutoModelForCausalLM.from_pretrained(path).config.hidden_size
        48
        >>> scratch.cleanup()
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if texts is None:
        texts = corpus(env_ids, episodes=episodes, seed=seed, env_kwargs=env_kwargs)
    texts = list(texts)
    tokenizer = build_tokenizer(texts, vocab_size=vocab_size)
    model = build_model(tokenizer, preset, seed=seed, **overrides)
    tokenizer.save_pretrained(out)
    _make_portable(out)
    model.save_pretrained(out)
    manifest = {
        "format_version": FORMAT_VERSION,
        "preset": preset,
        "overrides": overrides,
        "seed": seed,
        "vocab_size": len(tokenizer),
        "num_parameters": sum(p.numel() for p in model.parameters()),
        "corpus_sha256": _digest(texts),
        "corpus_texts": len(texts),
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return out


def _make_portable(out: Path) -> None:
    """Name the tokenizer class and template in `tokenizer_config.json` the way transformers 4.x
    reads them too (vLLM often pins 4.x): v5 writes `TokenizersBackend` and a separate
    `chat_template.jinja` only."""
    path = out / "tokenizer_config.json"
    config = json.loads(path.read_text())
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    config["chat_template"] = CHAT_TEMPLATE
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def _digest(texts: Sequence[str]) -> str:
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode())
        digest.update(b"\0")
    return digest.hexdigest()


_DEFAULTS: dict[str, Path] = {}
"""`default_checkpoint` answers already given in this process: skips re-playing the corpus."""


def default_checkpoint(preset: str = "tiny", *, seed: int = 0, **overrides: Any) -> Path:
    """The cached tiny checkpoint for these settings, built on first use (a few seconds).

    It lives under `cache_dir("tiny", ...)` in a folder named by a hash of everything it is built
    from (including the corpus text, so a change to the env's wording makes a fresh one). A build
    goes to a temporary folder that is renamed into place, so concurrent first uses are safe.

    Example:
        >>> path = default_checkpoint()
        >>> (path / "model.safetensors").is_file() and path == default_checkpoint()
        True
    """
    memo_key = json.dumps([preset, seed, sorted(overrides.items())], default=str)
    known = _DEFAULTS.get(memo_key)
    if known is not None and (known / MANIFEST).is_file():
        return known
    texts = corpus(seed=seed)
    key = json.dumps(
        [FORMAT_VERSION, preset, seed, sorted(overrides.items()), _digest(texts)], default=str
    )
    name = f"{preset}-s{seed}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"
    root = cache_dir("tiny")
    final = root / name
    _DEFAULTS[memo_key] = final
    return build_folder_once(
        final,
        lambda tmp: build(tmp, preset=preset, seed=seed, texts=texts, **overrides),
        done=MANIFEST,
    )
