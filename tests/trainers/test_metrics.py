"""Tests for `turnwise.trainers.metrics`: the JSONL file, TensorBoard, W&B, console and the plot."""

from __future__ import annotations

import io
import json
import math
import re
import sys
import time
import types
import warnings
from pathlib import Path
from typing import Any

import pytest

from turnwise.trainers.metrics import (
    MetricsLogger,
    format_metrics_line,
    plot_learning_curve,
    read_metrics,
)


def quiet(out_dir: Path, **kwargs: Any) -> MetricsLogger:
    """A logger writing only the JSONL file (plus whatever `kwargs` switch on)."""
    options: dict[str, Any] = {"console": False, "tensorboard": False, "wandb": False}
    options.update(kwargs)
    return MetricsLogger(out_dir, **options)


# -- the JSONL file --------------------------------------------------------------------------


def test_each_call_is_one_flushed_json_line(tmp_path: Path) -> None:
    before = time.time()
    logger = quiet(tmp_path)
    logger.log(0, {"rollout/success_rate": 0.25, "rollout/turns": 4, "loss/policy": 0.013})
    logger.log(1, {"eval/success_rate": 0.5})
    # Read while the logger is still open: every line is already on disk.
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2
    first = json.loads(lines[0])
    assert list(first) == ["step", "time", "rollout/success_rate", "rollout/turns", "loss/policy"]
    assert (
        first["step"] == 0
        and first["rollout/turns"] == 4
        and isinstance(first["rollout/turns"], int)
    )
    assert before - 1 <= first["time"] <= time.time() + 1
    assert read_metrics(tmp_path / "metrics.jsonl")[1]["eval/success_rate"] == 0.5
    logger.close()
    logger.close()  # a second close is a no-op


def test_numpy_values_and_no_time(tmp_path: Path) -> None:
    np = pytest.importorskip("numpy", reason="numpy scalars are what trainers log")
    with quiet(tmp_path) as logger:
        logger.log(
            np.int64(5), {"perf/tokens": np.int64(7), "loss/kl": np.float32(0.5)}, commit_time=False
        )
    assert read_metrics(tmp_path) == [{"step": 5, "perf/tokens": 7, "loss/kl": 0.5}]


def test_non_finite_values_are_null_with_one_warning(tmp_path: Path) -> None:
    with quiet(tmp_path) as logger, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        logger.log(0, {"loss/policy": math.nan, "loss/kl": 0.1})
        logger.log(1, {"loss/policy": math.inf, "loss/kl": -math.inf})
    assert [str(w.message) for w in caught if w.category is RuntimeWarning] == [
        "metric 'loss/policy' is nan at step 0; written as null to metrics.jsonl "
        "(later non-finite values are not reported)"
    ]
    text = (tmp_path / "metrics.jsonl").read_text()
    assert "NaN" not in text and "Infinity" not in text
    records = read_metrics(tmp_path)
    assert records[0]["loss/policy"] is None and records[0]["loss/kl"] == 0.1
    assert records[1]["loss/policy"] is None and records[1]["loss/kl"] is None


@pytest.mark.parametrize("name", ["success_rate", "/success_rate", "rollout/"])
def test_a_name_without_a_prefix_is_rejected(tmp_path: Path, name: str) -> None:
    with (
        quiet(tmp_path) as logger,
        pytest.raises(ValueError, match="needs a namespace prefix, as in 'rollout/success_rate'"),
    ):
        logger.log(0, {"rollout/turns": 3, name: 0.5})
    assert (tmp_path / "metrics.jsonl").read_text() == ""  # nothing half-logged


def test_bad_steps_and_values_are_rejected(tmp_path: Path) -> None:
    logger = quiet(tmp_path)
    with pytest.raises(TypeError, match="must be a number"):
        logger.log(0, {"eval/note": "good"})
    with pytest.raises(TypeError, match="step must be an int"):
        logger.log(1.5, {"loss/policy": 1.0})
    with pytest.raises(ValueError, match="step must be >= 0"):
        logger.log(-1, {"loss/policy": 1.0})
    logger.close()
    with pytest.raises(RuntimeError, match="closed"):
        logger.log(0, {"loss/policy": 1.0})
    with pytest.raises(ValueError, match="tensorboard must be True, False or 'auto'"):
        MetricsLogger(tmp_path, tensorboard="yes")


def test_config_is_written_once(tmp_path: Path) -> None:
    with quiet(tmp_path, config={"lr": 1e-6, "algo": "grpo", "out": tmp_path}):
        pass
    config = json.loads((tmp_path / "config.json").read_text())
    assert config == {"lr": 1e-6, "algo": "grpo", "out": str(tmp_path)}
    with quiet(tmp_path / "other"):
        pass
    assert not (tmp_path / "other" / "config.json").exists()


# -- resuming and reading back ---------------------------------------------------------------


def write_run(path: Path, steps: range, tail: str = "") -> None:
    lines = "".join(json.dumps({"step": s, "rollout/success_rate": s / 10}) + "\n" for s in steps)
    path.write_text(lines + tail)


def test_resume_drops_the_steps_after_the_checkpoint(tmp_path: Path) -> None:
    write_run(tmp_path / "metrics.jsonl", range(6), tail='{"step": 6, "rollout/succ')
    with quiet(tmp_path, resume_from_step=3) as logger:
        assert [r["step"] for r in read_metrics(tmp_path)] == [0, 1, 2]
        logger.log(3, {"rollout/success_rate": 0.9})
    records = read_metrics(tmp_path)
    assert [r["step"] for r in records] == [0, 1, 2, 3]
    assert records[2]["rollout/success_rate"] == 0.2 and records[3]["rollout/success_rate"] == 0.9
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.jsonl"]  # no temp file left


def test_without_resume_the_file_is_appended_to_past_a_torn_line(tmp_path: Path) -> None:
    write_run(tmp_path / "metrics.jsonl", range(2), tail='{"step": 2, "roll')
    with quiet(tmp_path) as logger:
        logger.log(2, {"rollout/success_rate": 0.7})
    assert [r["step"] for r in read_metrics(tmp_path)] == [0, 1, 2]


def test_read_metrics_skips_a_truncated_last_line(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    write_run(path, range(3), tail='{"step": 3, "rollout/success_rate": 0.')
    assert [r["step"] for r in read_metrics(path)] == [0, 1, 2]
    assert read_metrics(tmp_path) == read_metrics(path)  # a run folder works too
    write_run(path, range(3), tail="\n\n")
    assert len(read_metrics(path)) == 3
    path.write_text('{"step": 0}\n{"step": 1, "rollo\n{"step": 2}\n')
    with pytest.raises(ValueError, match=r"metrics\.jsonl:2: not a JSON line"):
        read_metrics(path)


# -- TensorBoard -----------------------------------------------------------------------------


def test_tensorboard_scalars_read_back(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard", reason="TensorBoard logging needs tensorboard")
    pytest.importorskip("torch", reason="TensorBoard logging uses torch's SummaryWriter")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    with MetricsLogger(tmp_path, console=False, tensorboard=True, wandb=False) as logger:
        assert logger.uses_tensorboard
        logger.log(0, {"rollout/success_rate": 0.25, "loss/policy": 0.013})
        logger.log(1, {"rollout/success_rate": 0.5})
        with pytest.warns(RuntimeWarning, match="written as null"):
            logger.log(2, {"rollout/success_rate": 0.75, "loss/policy": math.nan})
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert set(events.Tags()["scalars"]) == {"rollout/success_rate", "loss/policy"}
    scalars = events.Scalars("rollout/success_rate")
    assert [s.step for s in scalars] == [0, 1, 2]
    assert [s.value for s in scalars] == pytest.approx([0.25, 0.5, 0.75])
    policy = events.Scalars("loss/policy")
    assert policy[0].value == pytest.approx(0.013) and math.isnan(policy[1].value)


def test_tensorboard_false_writes_no_folder(tmp_path: Path) -> None:
    with quiet(tmp_path, tensorboard=False) as logger:
        logger.log(0, {"loss/policy": 1.0})
        assert not logger.uses_tensorboard
    assert not (tmp_path / "tensorboard").exists()


def test_tensorboard_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # as if not installed
    with quiet(tmp_path, tensorboard="auto") as logger:
        assert not logger.uses_tensorboard
    assert not (tmp_path / "tensorboard").exists()
    with pytest.raises(ImportError, match="pip install tensorboard"):
        quiet(tmp_path, tensorboard=True)


# -- Weights & Biases ------------------------------------------------------------------------


class FakeRun:
    def __init__(self, **kwargs: Any) -> None:
        self.init_kwargs = kwargs
        self.logged: list[tuple[dict[str, Any], int]] = []
        self.finished = False

    def log(self, data: dict[str, Any], step: int) -> None:
        self.logged.append((data, step))

    def finish(self) -> None:
        self.finished = True


def fake_wandb(runs: list[FakeRun]) -> types.ModuleType:
    module = types.ModuleType("wandb")

    def init(**kwargs: Any) -> FakeRun:
        runs.append(FakeRun(**kwargs))
        return runs[-1]

    module.init = init  # type: ignore[attr-defined]
    return module


def test_wandb_absent_is_off_and_required_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "wandb", None)  # as if not installed
    monkeypatch.setenv("WANDB_MODE", "offline")
    with quiet(tmp_path, wandb="auto") as logger:
        assert not logger.uses_wandb
    with pytest.raises(ImportError, match="pip install wandb"):
        quiet(tmp_path, wandb=True)


def test_wandb_auto_needs_an_env_var(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runs: list[FakeRun] = []
    monkeypatch.setitem(sys.modules, "wandb", fake_wandb(runs))
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    with quiet(tmp_path, wandb="auto") as logger:
        assert not logger.uses_wandb
    assert runs == []

    monkeypatch.setenv("WANDB_API_KEY", "not-a-real-key")
    config = {"algo": "grpo"}
    with quiet(tmp_path, wandb="auto", run_name="r1", config=config) as logger:
        assert logger.uses_wandb
        logger.log(4, {"rollout/success_rate": 0.5})
    (run,) = runs
    assert run.init_kwargs == {
        "project": "turnwise",
        "name": "r1",
        "config": config,
        "dir": str(tmp_path),
    }
    assert run.logged == [({"rollout/success_rate": 0.5}, 4)]
    assert run.finished


# -- the console line ------------------------------------------------------------------------


def test_console_line_when_not_a_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with quiet(tmp_path, console=True) as logger:
        logger.log(
            3,
            {
                "perf/tok_per_s": 12.34,
                "loss/policy": 0.01312,
                "rollout/success_rate": 0.5,
                "rollout/turns": 4.2,
                "loss/kl": 0.002,
                "custom/thing": 7,
            },
        )
        with pytest.warns(RuntimeWarning, match="written as null"):
            logger.log(4, {"loss/policy": math.nan, "perf/tokens": 123456.7, "perf/lr": 1e-6})
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "iter 3 | rollout success_rate 0.5 turns 4.2 | loss policy 0.0131 kl 0.002 "
        "| perf tok_per_s 12.3 | custom thing 7",
        "iter 4 | loss policy nan | perf tokens 123457 lr 1e-06",
    ]


def test_console_uses_rich_on_a_terminal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    with quiet(tmp_path, console=True) as logger:
        logger.log(1, {"rollout/success_rate": 0.5, "loss/policy": 0.25})
    text = terminal.getvalue()
    assert "\x1b[" in text  # styled
    plain = re.sub(r"\x1b\[[0-9;]*m", "", text)
    assert (
        plain == format_metrics_line(1, {"rollout/success_rate": 0.5, "loss/policy": 0.25}) + "\n"
    )


# -- the learning curve ----------------------------------------------------------------------


def curve_records() -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for step in range(60):
        records.append({"step": step, "rollout/success_rate": min(1.0, step / 50)})
        if step % 10 == 9:
            rate = step / 70
            records.append(
                {
                    "step": step,
                    "eval/success_rate": rate,
                    "eval/success_rate_ci_low": max(0.0, rate - 0.1),
                    "eval/success_rate_ci_high": min(1.0, rate + 0.1),
                }
            )
    return records


def test_learning_curve_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="plot_learning_curve draws with matplotlib")
    image = pytest.importorskip("PIL.Image", reason="the test opens the PNG with Pillow")
    out = plot_learning_curve(curve_records(), tmp_path / "curves" / "curve.png", title="run 1")
    assert out == tmp_path / "curves" / "curve.png"
    with image.open(out) as picture:
        assert picture.format == "PNG"
        assert picture.size == (800, 450)
        assert len(picture.convert("RGB").getcolors(1 << 20) or []) > 10  # not blank
    assert [p.name for p in out.parent.iterdir()] == ["curve.png"]  # no temp file left


def test_learning_curve_from_a_run_folder(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="plot_learning_curve draws with matplotlib")
    with quiet(tmp_path / "run") as logger:
        for step in range(5):
            logger.log(step, {"rollout/success_rate": step / 4, "loss/policy": 10.0 - step})
    out = plot_learning_curve(
        tmp_path / "run", tmp_path / "a.png", keys=["loss/policy", "missing/key"]
    )
    assert out.stat().st_size > 1000
    out = plot_learning_curve(tmp_path / "run" / "metrics.jsonl", tmp_path / "b.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_learning_curve_without_any_key_raises(tmp_path: Path) -> None:
    records = [{"step": 0, "loss/policy": 0.5}, {"step": 1, "rollout/success_rate": None}]
    with pytest.raises(
        ValueError, match=r"none of the keys \['rollout/success_rate', 'eval/success_rate'\]"
    ):
        plot_learning_curve(records, tmp_path / "curve.png")
    with pytest.raises(ValueError, match=r"they have: loss/policy, rollout/success_rate"):
        plot_learning_curve(records, tmp_path / "curve.png")
    assert not (tmp_path / "curve.png").exists()
