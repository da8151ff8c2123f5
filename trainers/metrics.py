"""Training metrics: one logger for the JSONL file, TensorBoard, W&B and the console; and a plot.

`MetricsLogger.log(step, {"rollout/success_rate": 0.5, "loss/policy": 0.013})` writes the values

* to `out_dir/metrics.jsonl`, one JSON object per call, appended and flushed at once (a killed run
  keeps every line it logged; a non-finite value is written as `null`);
* to TensorBoard scalars under `out_dir/tensorboard` (when tensorboard is installed, or required);
* to Weights & Biases (when wandb is installed and configured, or required);
* to the console, as one compact line per call, grouped by namespace.

Metric names are namespaced `prefix/name`: `rollout/…`, `reward/…`, `loss/…`, `perf/…`,
`eval/…` (any prefix is allowed; a name without one is an error). `read_metrics` reads the file
back and `plot_learning_curve` draws success rate (or any keys) against the step.

Importing this module imports neither torch, matplotlib, tensorboard, wandb nor rich: each is
imported when first needed. See docs/trainers/metrics.md.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal, TypeAlias

from turnwise.files import atomic_write, atomic_write_text

__all__ = [
    "NAMESPACES",
    "MetricsLogger",
    "format_metrics_line",
    "plot_learning_curve",
    "read_metrics",
]

NAMESPACES: tuple[str, ...] = ("rollout", "reward", "loss", "perf", "eval")
"""The usual metric prefixes, in the order the console line shows them (others follow)."""

METRICS_FILE = "metrics.jsonl"
CONFIG_FILE = "config.json"
TENSORBOARD_DIR = "tensorboard"

Backend: TypeAlias = bool | Literal["auto"]


def _check_backend(name: str, value: object) -> None:
    if value is not True and value is not False and value != "auto":
        raise ValueError(f"{name} must be True, False or 'auto', not {value!r}")


def _check_name(name: object) -> str:
    if not isinstance(name, str):
        raise TypeError(f"metric names are strings, not {type(name).__name__} ({name!r})")
    prefix, sep, rest = name.partition("/")
    if not sep or not prefix or not rest:
        raise ValueError(
            f"metric name {name!r} needs a namespace prefix, as in 'rollout/success_rate' or "
            f"'loss/policy' (one of {', '.join(p + '/' for p in NAMESPACES)} or your own)"
        )
    return name


def _number(name: str, value: object) -> int | float:
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, (str, bytes)):
        raise TypeError(f"metric {name!r} must be a number, not {type(value).__name__}")
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise TypeError(
            f"metric {name!r} must be a number (int, float or a one-element array), "
            f"not {type(value).__name__}"
        ) from None


def _fmt(value: float | int | None) -> str:
    """About three significant digits, never an exponent between 1e-3 and 1e6."""
    if value is None:
        return "nan"
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        return str(value)
    if value == 0:
        return "0"
    if 100 <= abs(value) < 1e6:
        return f"{value:.0f}"
    return f"{value:.3g}"


def _grouped(metrics: Mapping[str, float | int | None]) -> list[tuple[str, list[tuple[str, Any]]]]:
    groups: dict[str, list[tuple[str, Any]]] = {}
    for name, value in metrics.items():
        prefix, _, rest = name.partition("/")
        groups.setdefault(prefix, []).append((rest, value))
    order = [p for p in NAMESPACES if p in groups] + [p for p in groups if p not in NAMESPACES]
    return [(p, groups[p]) for p in order]


def format_metrics_line(step: int, metrics: Mapping[str, float | int | None]) -> str:
    """The console line of one step: values grouped by prefix, ~3 significant digits.

    Known prefixes come first, in the order of `NAMESPACES`; others follow in the order they
    were given. Within a prefix the order is that of `metrics`.

    Example:
        >>> format_metrics_line(3, {"loss/policy": 0.01312, "rollout/success_rate": 0.5,
        ...                         "rollout/turns": 4.25, "perf/tok_per_s": 1234.5})
        'iter 3 | rollout success_rate 0.5 turns 4.25 | loss policy 0.0131 | perf tok_per_s 1234'
    """
    parts = [f"iter {step}"]
    for prefix, items in _grouped(metrics):
        parts.append(" ".join([prefix, *(f"{name} {_fmt(value)}" for name, value in items)]))
    return " | ".join(parts)


class MetricsLogger:
    """Log training metrics to `out_dir/metrics.jsonl`, TensorBoard, W&B and the console.

    Args:
        out_dir: The run's folder (created if missing). `metrics.jsonl`, `config.json` and
            `tensorboard/` go here.
        console: Print one line per `log` call (with rich colours when stdout is a terminal,
            plain `print` otherwise).
        tensorboard: `"auto"` writes TensorBoard scalars when tensorboard (and torch) can be
            imported; `True` requires them (ImportError otherwise); `False` writes none.
        wandb: `"auto"` logs to Weights & Biases when wandb can be imported and `WANDB_MODE` or
            `WANDB_API_KEY` is set; `True` requires wandb (ImportError otherwise); `False` never.
        run_name: The W&B run's name.
        config: The run's configuration: written once to `out_dir/config.json` (values JSON
            cannot hold are written as their `str`), and given to `wandb.init`.
        resume_from_step: When resuming from the checkpoint of step N: keep the existing
            `metrics.jsonl` but drop its lines with `step >= N` (a crashed run may have logged
            steps past its last checkpoint), and hide TensorBoard events from step N on.
            Without it, an existing file is appended to.

    Example:
        >>> import tempfile
        >>> run = tempfile.mkdtemp()
        >>> with MetricsLogger(run, tensorboard=False, wandb=False) as logger:
        ...     logger.log(0, {"rollout/success_rate": 0.25, "loss/policy": 0.0131})
        ...     logger.log(1, {"rollout/success_rate": 0.5, "eval/success_rate": 0.4})
        iter 0 | rollout success_rate 0.25 | loss policy 0.0131
        iter 1 | rollout success_rate 0.5 | eval success_rate 0.4
        >>> [(m["step"], m["rollout/success_rate"]) for m in read_metrics(run)]
        [(0, 0.25), (1, 0.5)]
    """

    def __init__(
        self,
        out_dir: str | os.PathLike[str],
        *,
        console: bool = True,
        tensorboard: Backend = "auto",
        wandb: Backend = "auto",
        run_name: str | None = None,
        config: Mapping[str, Any] | None = None,
        resume_from_step: int | None = None,
    ) -> None:
        _check_backend("tensorboard", tensorboard)
        _check_backend("wandb", wandb)
        if resume_from_step is not None and (
            not isinstance(resume_from_step, int) or isinstance(resume_from_step, bool)
        ):
            raise TypeError(f"resume_from_step must be an int, not {resume_from_step!r}")
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.metrics_path = self.out_dir / METRICS_FILE
        self.console = console
        self._warned_non_finite = False
        self._closed = False
        self._rich_console: Any = None

        if config is not None:
            text = json.dumps(dict(config), indent=2, default=str, allow_nan=True) + "\n"
            atomic_write_text(self.out_dir / CONFIG_FILE, text)
        self._prepare_metrics_file(resume_from_step)
        self._file: IO[str] | None = open(self.metrics_path, "a", encoding="utf-8")  # noqa: SIM115

        self._tb_writer: Any = None
        self._wandb_run: Any = None
        try:
            self._tb_writer = self._open_tensorboard(tensorboard, resume_from_step)
            self._wandb_run = self._open_wandb(wandb, run_name, config)
        except BaseException:
            self.close()
            raise

    # -- setup --------------------------------------------------------------------------------

    def _prepare_metrics_file(self, resume_from_step: int | None) -> None:
        if not self.metrics_path.exists():
            return
        text = self.metrics_path.read_text(encoding="utf-8")
        if resume_from_step is not None:
            kept = [
                json.dumps(record, allow_nan=False)
                for record in _parse_lines(text, self.metrics_path)
                if record.get("step", resume_from_step) < resume_from_step
            ]
            atomic_write_text(self.metrics_path, "".join(line + "\n" for line in kept))
        elif text and not text.endswith("\n"):
            # A killed run's half-written last line: drop it so the next line starts clean.
            atomic_write_text(self.metrics_path, text[: text.rfind("\n") + 1])

    def _open_tensorboard(self, tensorboard: Backend, resume_from_step: int | None) -> Any:
        if tensorboard is False:
            return None
        try:
            import tensorboard as _tensorboard  # noqa: F401  (torch's writer needs it)
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:
            if tensorboard == "auto":
                return None
            raise ImportError(
                "MetricsLogger(tensorboard=True) needs tensorboard and torch: "
                "pip install tensorboard (or pip install 'turnwise[train]'), "
                f"or pass tensorboard=False ({exc})"
            ) from exc
        return SummaryWriter(str(self.out_dir / TENSORBOARD_DIR), purge_step=resume_from_step)

    def _open_wandb(
        self, wandb: Backend, run_name: str | None, config: Mapping[str, Any] | None
    ) -> Any:
        if wandb is False:
            return None
        if wandb == "auto" and not (
            os.environ.get("WANDB_MODE") or os.environ.get("WANDB_API_KEY")
        ):
            return None
        try:
            import wandb as _wandb
        except ImportError as exc:
            if wandb == "auto":
                return None
            raise ImportError(
                "MetricsLogger(wandb=True) needs Weights & Biases: pip install wandb "
                f"(then wandb login, or set WANDB_MODE=offline), or pass wandb=False ({exc})"
            ) from exc
        return _wandb.init(
            project="turnwise",
            name=run_name,
            config=dict(config) if config is not None else None,
            dir=str(self.out_dir),
        )

    # -- state --------------------------------------------------------------------------------

    @property
    def uses_tensorboard(self) -> bool:
        """Whether scalars go to TensorBoard (under `out_dir/tensorboard`)."""
        return self._tb_writer is not None

    @property
    def uses_wandb(self) -> bool:
        """Whether metrics go to a W&B run."""
        return self._wandb_run is not None

    # -- logging ------------------------------------------------------------------------------

    def log(
        self, step: int, metrics: Mapping[str, float | int], *, commit_time: bool = True
    ) -> None:
        """Log the metrics of one step everywhere this logger writes.

        Args:
            step: The training iteration (an int >= 0). A step may be logged more than once
                (say, training metrics and then eval metrics): each call is its own line.
            metrics: Namespaced names (`"rollout/success_rate"`) → numbers. Ints stay ints;
                anything else is turned into a float (numpy scalars, one-element tensors).
                NaN and ±inf are written to the JSONL file as `null` (with a warning, once per
                logger) and passed on unchanged to TensorBoard and W&B.
            commit_time: Stamp the line with `"time"`, the wall-clock Unix time in seconds.

        Raises:
            ValueError: A name has no `prefix/`, or `step` is negative.
            TypeError: `step` is not an int, or a value is not a number.
            RuntimeError: The logger was closed.

        Example:
            >>> import tempfile
            >>> logger = MetricsLogger(tempfile.mkdtemp(), console=False, tensorboard=False,
            ...                        wandb=False)
            >>> logger.log(2, {"rollout/success_rate": 0.5}, commit_time=False)
            >>> logger.metrics_path.read_text()
            '{"step": 2, "rollout/success_rate": 0.5}\\n'
            >>> logger.log(3, {"success_rate": 0.5})  # doctest: +ELLIPSIS
            Traceback (most recent call last):
            ...
            ValueError: metric name 'success_rate' needs a namespace prefix, ...
            >>> logger.close()
        """
        if self._closed or self._file is None:
            raise RuntimeError("this MetricsLogger is closed")
        if not isinstance(step, numbers.Integral) or isinstance(step, bool):
            raise TypeError(f"step must be an int, not {type(step).__name__} ({step!r})")
        step = int(step)
        if step < 0:
            raise ValueError(f"step must be >= 0, not {step}")
        values = {_check_name(name): _number(name, value) for name, value in metrics.items()}

        record: dict[str, Any] = {"step": step}
        if commit_time:
            record["time"] = round(time.time(), 3)
        for name, value in values.items():
            if isinstance(value, float) and not math.isfinite(value):
                self._warn_non_finite(name, value, step)
                record[name] = None
            else:
                record[name] = value
        self._file.write(json.dumps(record, allow_nan=False) + "\n")
        self._file.flush()

        if self._tb_writer is not None:
            for name, value in values.items():
                self._tb_writer.add_scalar(name, value, global_step=step)
            self._tb_writer.flush()
        if self._wandb_run is not None:
            self._wandb_run.log(dict(values), step=step)
        if self.console:
            self._print(step, values)

    def _warn_non_finite(self, name: str, value: float, step: int) -> None:
        if self._warned_non_finite:
            return
        self._warned_non_finite = True
        warnings.warn(
            f"metric {name!r} is {value} at step {step}; written as null to {METRICS_FILE} "
            "(later non-finite values are not reported)",
            RuntimeWarning,
            stacklevel=3,
        )

    def _print(self, step: int, values: Mapping[str, float | int]) -> None:
        stdout = sys.stdout
        isatty = getattr(stdout, "isatty", None)
        if not (callable(isatty) and isatty()):
            print(format_metrics_line(step, values), file=stdout, flush=True)
            return
        from rich.console import Console
        from rich.text import Text

        if self._rich_console is None or self._rich_console.file is not stdout:
            self._rich_console = Console(file=stdout, highlight=False)
        line = Text()
        line.append(f"iter {step}", style="bold")
        for prefix, items in _grouped(values):
            line.append(" | ", style="dim")
            line.append(prefix, style="cyan")
            for name, value in items:
                line.append(f" {name} ", style="dim")
                line.append(_fmt(value))
        self._rich_console.print(line, soft_wrap=True)

    # -- closing ------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the JSONL file, the TensorBoard writer and the W&B run (calling it again is a no-op)."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._file is not None:
                self._file.close()
                self._file = None
            if self._tb_writer is not None:
                self._tb_writer.close()
        finally:
            if self._wandb_run is not None:
                self._wandb_run.finish()

    def __enter__(self) -> MetricsLogger:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _parse_lines(text: str, path: Path) -> list[dict[str, Any]]:
    lines = text.split("\n")
    records: list[dict[str, Any]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            if number == len(lines):  # the unterminated last line of a killed run
                break
            raise ValueError(f"{path}:{number}: not a JSON line ({exc})") from exc
        if not isinstance(record, dict):
            raise ValueError(f"{path}:{number}: expected a JSON object, got {line[:80]!r}")
        records.append(record)
    return records


def read_metrics(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The records of a `metrics.jsonl` file (or of a run folder holding one), in order.

    Non-finite values read back as `None`. A half-written last line (from a run that was killed
    mid-write) is skipped without error; a bad line anywhere else raises ValueError.

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "metrics.jsonl"
        >>> _ = path.write_text('{"step": 0, "loss/policy": 0.5}\\n{"step": 1, "loss/po')
        >>> read_metrics(path)
        [{'step': 0, 'loss/policy': 0.5}]
    """
    path = Path(path)
    if path.is_dir():
        path = path / METRICS_FILE
    return _parse_lines(path.read_text(encoding="utf-8"), path)


def _series(records: Sequence[Mapping[str, Any]], key: str) -> tuple[list[float], list[float]]:
    points = sorted(
        (float(r["step"]), float(r[key]))
        for r in records
        if r.get(key) is not None and r.get("step") is not None
    )
    return [x for x, _ in points], [y for _, y in points]


def plot_learning_curve(
    metrics: str | os.PathLike[str] | Sequence[Mapping[str, Any]],
    out_png: str | os.PathLike[str],
    *,
    keys: Sequence[str] = ("rollout/success_rate", "eval/success_rate"),
    title: str | None = None,
) -> Path:
    """Draw the given metrics against the step, as a PNG.

    One line per key present in `metrics` (keys that were never logged are left out). Sparse
    series, such as an eval run every few iterations, get markers. When `KEY_ci_low` and
    `KEY_ci_high` were logged too (say `eval/success_rate_ci_low`), the band between them is
    shaded. The y axis spans [0, 1] when every value does. The file is written atomically.

    Args:
        metrics: A `metrics.jsonl` path, a run folder, or the records of `read_metrics`.
        out_png: Where to write the picture.
        keys: The metrics to draw.
        title: The picture's title; by default the run folder's name when `metrics` is a path.

    Returns:
        The path of the PNG.

    Raises:
        ValueError: None of `keys` has a value in `metrics`.

    Example:
        >>> import tempfile, pathlib
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> records = [{"step": s, "rollout/success_rate": s / 10} for s in range(10)]
        >>> records[9]["eval/success_rate"] = 0.8
        >>> plot_learning_curve(records, folder / "curve.png").stat().st_size > 0
        True
        >>> plot_learning_curve(records, folder / "x.png", keys=["loss/policy"])  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: none of the keys ['loss/policy'] is in the metrics (they have: ...)
    """
    if isinstance(metrics, (str, os.PathLike)):
        source = Path(metrics)
        records: Sequence[Mapping[str, Any]] = read_metrics(source)
        if title is None:
            title = (source if source.is_dir() else source.parent).resolve().name
    else:
        records = metrics
    keys = list(keys)
    series = {key: _series(records, key) for key in keys}
    series = {key: xy for key, xy in series.items() if xy[0]}
    if not series:
        present = sorted({k for r in records for k in r if k not in ("step", "time")})
        shown = ", ".join(present[:20]) + (", …" if len(present) > 20 else "")
        raise ValueError(
            f"none of the keys {keys} is in the metrics (they have: {shown or 'nothing'})"
        )

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(8, 4.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    densest = max(len(xs) for xs, _ in series.values())
    all_values: list[float] = []
    for key, (xs, ys) in series.items():
        sparse = len(xs) <= 30 or len(xs) < densest / 2
        (line,) = ax.plot(xs, ys, marker="o" if sparse else None, markersize=4, label=key)
        all_values.extend(ys)
        low_x, low = _series(records, key + "_ci_low")
        high_x, high = _series(records, key + "_ci_high")
        if low_x and high_x:
            lows = dict(zip(low_x, low, strict=True))
            band = [(x, lows[x], h) for x, h in zip(high_x, high, strict=True) if x in lows]
            if band:
                ax.fill_between(
                    [b[0] for b in band],
                    [b[1] for b in band],
                    [b[2] for b in band],
                    color=line.get_color(),
                    alpha=0.2,
                    linewidth=0,
                    label=f"{key} CI",
                )
                all_values.extend(v for b in band for v in b[1:])
    finite = [v for v in all_values if math.isfinite(v)]
    if finite and all(0.0 <= v <= 1.0 for v in finite):
        ax.set_ylim(-0.02, 1.02)
    names = {key.partition("/")[2] or key for key in series}
    ax.set_xlabel("step")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(names.pop().replace("_", " ") if len(names) == 1 else "value")
    if title:
        ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best")
    fig.tight_layout()
    return atomic_write(out_png, lambda tmp: fig.savefig(tmp, format="png"))
