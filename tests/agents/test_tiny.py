"""`turnwise.agents.tiny`: the offline tokenizer and model are deterministic, complete and loadable."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="needs torch (pip install 'turnwise[agents]')")
transformers = pytest.importorskip("transformers", reason="needs transformers")

import turnwise  # noqa: E402
from turnwise.agents import tiny  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    # Two torch threads on a shared two-core machine spin against each other and everyone else.
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return tiny.corpus(episodes=16)


@pytest.fixture(scope="module")
def tokenizer(texts: list[str]) -> transformers.PreTrainedTokenizerFast:
    return tiny.build_tokenizer(texts)


def test_corpus_holds_env_text_and_agent_scaffolding(texts: list[str]) -> None:
    joined = "\n".join(texts)
    for phrase in ("You are in the", "Exits:", "Admissible actions:", "Task complete!"):
        assert phrase in joined
    assert "Invalid action:" in joined  # random play tries invalid commands
    for word in ("<think>", "</think>", "<action>", "</action>", "system", "assistant"):
        assert word in joined
    assert texts == tiny.corpus(episodes=16)
    assert texts != tiny.corpus(episodes=16, seed=1)


def test_special_tokens_have_fixed_ids_and_roles(
    tokenizer: transformers.PreTrainedTokenizerFast,
) -> None:
    assert tokenizer.convert_tokens_to_ids(list(tiny.SPECIAL_TOKENS)) == [0, 1, 2]
    assert (tokenizer.eos_token, tokenizer.pad_token) == ("<|im_end|>", "<|endoftext|>")
    assert tokenizer("<|im_start|>user")["input_ids"][0] == 1  # one token, not split
    assert 300 < len(tokenizer) <= 1024


def test_tokenizer_covers_env_text_it_was_not_trained_on(
    tokenizer: transformers.PreTrainedTokenizerFast,
) -> None:
    env = turnwise.make("turnwise/KeyDoor-v0", difficulty="hard")
    obs, info = env.reset(seed=12_345)
    fresh = [obs["text"], *info["admissible_actions"], "Ünïcödé → 🚪 never seen"]
    for _ in range(5):
        obs, *_ = env.step(env.unwrapped.expert_action())
        fresh.append(obs["text"])
    for text in fresh:
        ids = tokenizer(text)["input_ids"]
        assert None not in ids and all(0 <= i < len(tokenizer) for i in ids)
        assert tokenizer.decode(ids) == text  # byte-level: nothing unknown, nothing lost
    # Trained on this text, it compresses it well (words, not bytes).
    observation = fresh[0]
    assert len(tokenizer(observation)["input_ids"]) < len(observation) / 3


def test_chat_template_renders_chatml(tokenizer: transformers.PreTrainedTokenizerFast) -> None:
    messages = [
        {"role": "system", "content": "Play."},
        {"role": "user", "content": "You are in the hall."},
    ]
    plain = tokenizer.apply_chat_template(messages, tokenize=False)
    assert plain == (
        "<|im_start|>system\nPlay.<|im_end|>\n<|im_start|>user\nYou are in the hall.<|im_end|>\n"
    )
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert prompt == plain + "<|im_start|>assistant\n"
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    assert ids.count(tokenizer.convert_tokens_to_ids("<|im_start|>")) == 3
    assert ids.count(tokenizer.eos_token_id) == 2


def test_presets_span_the_advertised_sizes(tokenizer: transformers.PreTrainedTokenizerFast) -> None:
    def size(preset: str, **overrides: int) -> int:
        with torch.device("meta"):  # shapes only: no memory, no init time
            model = tiny.build_model(tokenizer, preset, **overrides)
        return sum(p.numel() for p in model.parameters())

    assert 0.05e6 < size("nano") < 0.2e6
    assert size("nano") < size("tiny") < size("small") < size("base") < size("medium")
    assert 10e6 < size("medium") < 20e6
    assert size("tiny", num_hidden_layers=4) > size("tiny")
    with pytest.raises(ValueError, match="unknown preset"):
        tiny.build_model(tokenizer, "huge")


def _files(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


def test_build_is_deterministic_by_seed(tmp_path: Path) -> None:
    kwargs = {"preset": "nano", "episodes": 8}
    first = _files(tiny.build(tmp_path / "a", seed=3, **kwargs))
    second = _files(tiny.build(tmp_path / "b", seed=3, **kwargs))
    assert first == second  # every file, byte for byte, weights included
    other = _files(tiny.build(tmp_path / "c", seed=4, **kwargs))
    assert other["model.safetensors"] != first["model.safetensors"]


def test_checkpoint_round_trips_through_auto_classes(tmp_path: Path) -> None:
    texts = tiny.corpus(episodes=8)
    tokenizer = tiny.build_tokenizer(texts)
    model = tiny.build_model(tokenizer, "nano", seed=5)
    path = tiny.build(tmp_path, preset="nano", seed=5, texts=texts)
    assert (path / "model.safetensors").is_file() and (path / tiny.MANIFEST).is_file()

    loaded_tok = transformers.AutoTokenizer.from_pretrained(path)
    loaded = transformers.AutoModelForCausalLM.from_pretrained(path)
    sample = "You are in the kitchen. Exits: north."
    assert loaded_tok(sample)["input_ids"] == tokenizer(sample)["input_ids"]
    assert loaded_tok.chat_template == tiny.CHAT_TEMPLATE
    assert (loaded_tok.eos_token_id, loaded_tok.pad_token_id) == (2, 0)
    assert loaded.generation_config.eos_token_id == 2
    ids = torch.tensor([tokenizer(sample)["input_ids"]])
    with torch.no_grad():
        assert torch.equal(loaded(ids).logits, model(ids).logits)


def test_default_checkpoint_is_built_once_and_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TURNWISE_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(tiny, "_DEFAULTS", {})
    path = tiny.default_checkpoint("nano")
    assert path.parent == tmp_path / "tiny" and (path / tiny.MANIFEST).is_file()
    stamp = (path / "model.safetensors").stat().st_mtime_ns
    monkeypatch.setattr(tiny, "_DEFAULTS", {})  # a new process: found on disk, not rebuilt
    assert tiny.default_checkpoint("nano") == path
    assert (path / "model.safetensors").stat().st_mtime_ns == stamp
    assert tiny.default_checkpoint("nano", seed=1) != path
    assert [p.name for p in (tmp_path / "tiny").iterdir() if p.name.startswith(".")] == []
