"""Leaderboards from evaluation summaries: a Markdown table and a static, self-contained web page.

`turnwise eval` writes `DIR/summary.json` (schema `turnwise-eval/1`): the suite it ran, the
policy, the engine versions, and success statistics overall, per env family and per env. This
module reads such summaries (`load_summary`), says when they are not comparable as they stand
(`compare_versions`: another suite, a changed suite file, other engine versions), and renders
them: `markdown_table` for a README, `build_site` for a page that works offline and from
`file://` (inline CSS, a little inline JavaScript for sorting, an inline SVG chart, no external
URL), and `screenshot` to keep a picture of that page.

Every string taken from a summary is HTML-escaped (labels are user input), and the page's script
reads only `data-` attributes, so no summary text ever reaches it as code.

Example:
    >>> stats = {"episodes": 50, "success_rate": 0.62, "ci_low": 0.5, "ci_high": 0.74,
    ...          "reward_mean": 0.7, "turns_mean": 9.5}
    >>> summary = {"schema": "turnwise-eval/1", "suite": {"id": "s-v0", "digest": "sha256:0"},
    ...            "policy": "hf:ckpt", "label": "mine", "engines": {"turnwise": "0.1.0"},
    ...            "overall": stats, "families": {"text": stats}}
    >>> print(markdown_table([summary]), end="")
    | rank | label | policy | overall | text | turns | episodes |
    |---:|---|---|---|---|---:|---:|
    | 1 | mine | hf:ckpt | 0.62 [0.50, 0.74] | 0.62 [0.50, 0.74] | 9.5 | 50 |
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from turnwise.files import atomic_write_text

__all__ = [
    "SCHEMA_PREFIX",
    "build_site",
    "compare_versions",
    "load_summary",
    "markdown_table",
    "screenshot",
]

#: Every evaluation summary's `schema` starts with this (then the format's version).
SCHEMA_PREFIX = "turnwise-eval/"

_REQUIRED = ("schema", "suite", "policy", "engines", "overall", "families")
_REQUIRED_STATS = ("episodes", "success_rate", "ci_low", "ci_high", "reward_mean", "turns_mean")
_MISSING = "\u2014"  # an em dash: a family this entry was not evaluated on

Summary = Mapping[str, Any]


# --------------------------------------------------------------------------------------------
# Reading and checking summaries


def load_summary(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read an evaluation summary: a `summary.json` file, or a folder that holds one.

    Args:
        path: the file, or the evaluation's output folder.

    Returns:
        The summary as written by `turnwise eval`.

    Raises:
        ValueError: the file is missing, is not JSON, is not a turnwise evaluation summary (its
            `schema` does not start with `turnwise-eval/`), or lacks a required key. The message
            is one line naming the file and the problem.
    """
    file = Path(path)
    if file.is_dir():
        file = file / "summary.json"
    if not file.is_file():
        raise ValueError(f"no evaluation summary at {file} (run `turnwise eval` to write one)")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{file} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from exc
    except UnicodeDecodeError as exc:
        raise ValueError(f"{file} is not valid JSON (not UTF-8 text)") from exc
    _check_summary(data, str(file))
    return data


def _check_summary(data: object, source: str) -> None:
    """Raise ValueError (one line, naming `source`) unless `data` looks like a summary."""
    if not isinstance(data, dict):
        raise ValueError(f"{source} holds a JSON {type(data).__name__}, not a summary object")
    schema = data.get("schema")
    if not isinstance(schema, str) or not schema.startswith(SCHEMA_PREFIX):
        raise ValueError(
            f"{source} is not a turnwise evaluation summary: its schema is {schema!r}, "
            f"expected {SCHEMA_PREFIX + '1'!r}"
        )
    absent = [key for key in _REQUIRED if key not in data]
    if absent:
        raise ValueError(f"{source} lacks required keys: {', '.join(absent)}")
    if not isinstance(data["suite"], dict) or "id" not in data["suite"]:
        raise ValueError(f"{source}: 'suite' must be an object with an 'id'")
    for key in ("engines", "families"):
        if not isinstance(data[key], dict):
            raise ValueError(f"{source}: {key!r} must be an object")
    _check_stats(data["overall"], f"{source}: 'overall'")
    for family, stats in data["families"].items():
        _check_stats(stats, f"{source}: family {family!r}")


def _check_stats(stats: object, where: str) -> None:
    if not isinstance(stats, dict):
        raise ValueError(f"{where} must be an object of statistics")
    bad = [
        key
        for key in _REQUIRED_STATS
        if not isinstance(stats.get(key), (int, float)) or isinstance(stats.get(key), bool)
    ]
    if bad:
        raise ValueError(f"{where} lacks numbers for: {', '.join(bad)}")


def _name(summary: Summary) -> str:
    """The entry's display name: its label, else its policy."""
    return str(summary.get("label") or summary["policy"])


def _grouped(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """`{value: [names...]}` from `(value, name)` pairs, in order of first appearance."""
    groups: dict[str, list[str]] = {}
    for value, name in pairs:
        groups.setdefault(value, []).append(name)
    return groups


def _describe(groups: Mapping[str, Sequence[str]]) -> str:
    """`'a (x, y); b (z)'`: each value with the entries that have it."""
    return "; ".join(f"{value} ({', '.join(names)})" for value, names in groups.items())


def _version(engines: Mapping[str, Any], engine: str) -> str:
    if engine not in engines:
        return "unknown"
    version = engines[engine]
    return "not installed" if version is None else str(version)


def _engine_versions(summaries: Sequence[Summary]) -> dict[str, dict[str, list[str]]]:
    """For each engine named in any summary: its versions, each with the entries that used it."""
    engines: list[str] = []
    for summary in summaries:
        engines += [engine for engine in summary["engines"] if engine not in engines]
    return {
        engine: _grouped((_version(s["engines"], engine), _name(s)) for s in summaries)
        for engine in engines
    }


def _short_digest(digest: str) -> str:
    algorithm, _, hexdigest = digest.partition(":")
    return f"{algorithm}:{hexdigest[:12]}" if hexdigest else digest[:12]


def compare_versions(summaries: Sequence[Summary]) -> list[str]:
    """Say why these summaries' scores may not be comparable as they stand.

    Args:
        summaries: evaluation summaries (as `load_summary` returns them).

    Returns:
        One human-readable warning per problem (empty when all is consistent): the entries ran
        different suites; they ran the same suite id from different suite files (different
        digests); or an engine's version differs between them (naming the engine and each
        version seen, with the entries that used it).
    """
    warnings = []
    suites = _grouped((str(s["suite"]["id"]), _name(s)) for s in summaries)
    if len(suites) > 1:
        warnings.append(
            f"entries ran different suites, so their scores are not comparable: {_describe(suites)}"
        )
    for suite_id in suites:
        digests = _grouped(
            (_short_digest(str(s["suite"].get("digest"))), _name(s))
            for s in summaries
            if str(s["suite"]["id"]) == suite_id
        )
        if len(digests) > 1:
            warnings.append(
                f"suite {suite_id} changed between runs (its file has different digests): "
                f"{_describe(digests)}"
            )
    for engine, versions in _engine_versions(summaries).items():
        if len(versions) > 1:
            warnings.append(f"engine {engine} differs between runs: {_describe(versions)}")
    return warnings


# --------------------------------------------------------------------------------------------
# Ranking and formatting


def _ranked(summaries: Sequence[Summary]) -> list[tuple[int, Summary]]:
    """Entries by overall success (best first, ties by name), each with its competition rank."""
    ordered = sorted(
        summaries, key=lambda s: (-float(s["overall"]["success_rate"]), _name(s).casefold())
    )
    rates = [float(s["overall"]["success_rate"]) for s in ordered]
    return [(1 + sum(r > rate for r in rates), s) for rate, s in zip(rates, ordered, strict=True)]


def _families(summaries: Sequence[Summary]) -> list[str]:
    """Every family in any summary, in order of first appearance (the suites' own order)."""
    families: list[str] = []
    for summary in summaries:
        families += [str(f) for f in summary["families"] if str(f) not in families]
    return families


def _interval(stats: Mapping[str, Any]) -> str:
    """`'[0.50, 0.74]'`: the 95% interval of the success rate."""
    return f"[{stats['ci_low']:.2f}, {stats['ci_high']:.2f}]"


def _markdown_cell(text: object) -> str:
    """Text safe in a Markdown table cell: no pipes, newlines or raw HTML."""
    escaped = html.escape(str(text), quote=False).replace("|", "\\|")
    return " ".join(escaped.split())


def markdown_table(summaries: Sequence[Summary]) -> str:
    """A GitHub Markdown table of the entries, best overall success first.

    Columns: rank (ties share one), label, policy, overall success with its 95% interval (as
    `0.62 [0.50, 0.74]`), the same for each family (`—` where an entry has no such family),
    overall mean turns and episodes. Labels and policies are escaped: `|` becomes `\\|`,
    newlines become spaces, and `<`, `>`, `&` become HTML entities.

    Args:
        summaries: evaluation summaries (as `load_summary` returns them).
    """
    families = _families(summaries)
    header = ["rank", "label", "policy", "overall", *map(_markdown_cell, families)]
    header += ["turns", "episodes"]
    align = ["---:", "---", "---", "---", *["---"] * len(families), "---:", "---:"]
    lines = [f"| {' | '.join(header)} |", f"|{'|'.join(align)}|"]
    for rank, summary in _ranked(summaries):
        overall = summary["overall"]
        cells = [str(rank), _markdown_cell(_name(summary)), _markdown_cell(summary["policy"])]
        cells.append(f"{overall['success_rate']:.2f} {_interval(overall)}")
        for family in families:
            stats = summary["families"].get(family)
            cells.append(
                _MISSING if stats is None else f"{stats['success_rate']:.2f} {_interval(stats)}"
            )
        cells += [f"{overall['turns_mean']:.1f}", str(int(overall["episodes"]))]
        lines.append(f"| {' | '.join(cells)} |")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# The web page

_CSS = """
:root { color-scheme: light dark; --fg: #1f2328; --muted: #656d76; --line: #d0d7de;
  --head: #f6f8fa; --bar: #3b82c4; --warn-bg: #fff8c5; --warn-line: #d4a72c; }
@media (prefers-color-scheme: dark) { :root { --fg: #e6edf3; --muted: #8d96a0; --line: #30363d;
  --head: #161b22; --bar: #58a6ff; --warn-bg: #3b2e00; --warn-line: #9e6a03; } }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg);
  margin: 2rem; }
header, #warnings, #about { max-width: 1100px; }
h1 { margin-bottom: .2rem; } h2 { font-size: 1.15rem; margin-top: 2rem; }
.muted, .built { color: var(--muted); }
code { font: 13px ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; }
#warnings { background: var(--warn-bg); border: 1px solid var(--warn-line); border-radius: 6px;
  padding: .6rem 1rem; margin: 1rem 0; }
#warnings h2 { margin: 0 0 .3rem; font-size: 1rem; }
#warnings ul { margin: 0; padding-left: 1.2rem; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; }
th, td { border: 1px solid var(--line); padding: .3rem .45rem; }
thead th { background: var(--head); white-space: nowrap; }
tr.groups th { text-align: center; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.success small { display: block; color: var(--muted); font-size: .8em; }
td.missing { color: var(--muted); text-align: center; }
td.text { min-width: 7rem; max-width: 20rem; overflow-wrap: break-word; }
colgroup.group { border-left: 2px solid var(--line); }
th button { font: inherit; font-weight: 600; color: inherit; background: none; border: 0;
  padding: 0; cursor: pointer; }
th .arrow::after { content: "\\2195"; opacity: .35; margin-left: .25rem; }
th[aria-sort="ascending"] .arrow::after { content: "\\25B2"; opacity: 1; }
th[aria-sort="descending"] .arrow::after { content: "\\25BC"; opacity: 1; }
#chart { width: 100%; max-width: 820px; height: auto; }
#chart text { fill: var(--fg); font-size: 12px; }
#chart .grid { stroke: var(--line); }
#chart .bar { fill: var(--bar); opacity: .8; }
#chart .ci { stroke: var(--fg); stroke-width: 1.5; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .3rem 1rem; }
dt { font-weight: 600; } dd { margin: 0; }
dd ul { margin: 0; padding-left: 1.1rem; }
.differs { font-weight: 600; }
"""

# Sorts the table when a column header is clicked. It reads only data- attributes: each column
# header has data-type ("number" or "text") and data-first (the first click's direction); each
# cell has data-value (none for a missing value, which sorts last either way); each row has
# data-order (its default position, which breaks ties).
_JS = """
(() => {
  const table = document.getElementById("leaderboard");
  const body = table.tBodies[0];
  const heads = Array.from(table.querySelectorAll("thead tr.columns th"));
  let current = heads.findIndex((th) => th.hasAttribute("aria-sort"));
  let direction = current < 0 ? "" : heads[current].getAttribute("aria-sort");
  function sortBy(column, dir) {
    const numeric = heads[column].dataset.type === "number";
    const sign = dir === "descending" ? -1 : 1;
    const rows = Array.from(body.rows);
    rows.sort((a, b) => {
      const x = a.cells[column].dataset.value;
      const y = b.cells[column].dataset.value;
      const order = Number(a.dataset.order) - Number(b.dataset.order);
      if (x === undefined || y === undefined) {
        return (x === undefined) - (y === undefined) || order;
      }
      const c = numeric ? Number(x) - Number(y) : x.localeCompare(y);
      return sign * c || order;
    });
    body.append(...rows);
    heads.forEach((th, i) => {
      if (i === column) th.setAttribute("aria-sort", dir);
      else th.removeAttribute("aria-sort");
    });
  }
  heads.forEach((th, column) => {
    th.querySelector("button").addEventListener("click", () => {
      direction = column === current
        ? (direction === "ascending" ? "descending" : "ascending")
        : th.dataset.first;
      current = column;
      sortBy(column, direction);
    });
  });
})();
"""

# The metrics of each column group: (data-metric, header, data-first, format).
_METRICS = (
    ("success", "success", "descending", None),
    ("reward", "reward", "descending", "{:.2f}"),
    ("turns", "turns", "ascending", "{:.1f}"),
)
_STAT_KEYS = {"success": "success_rate", "reward": "reward_mean", "turns": "turns_mean"}


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _th(
    metric: str, label: str, kind: str, first: str, *, group: str, family: str = "", sort: str = ""
) -> str:
    """A sortable column header (`sort`: its initial `aria-sort`, if the rows are so sorted)."""
    family_attr = f' data-family="{_e(family)}"' if family else ""
    sort_attr = f' aria-sort="{sort}"' if sort else ""
    return (
        f'<th scope="col"{sort_attr} data-group="{group}"{family_attr} data-metric="{metric}" '
        f'data-type="{kind}" data-first="{first}"><button type="button">{_e(label)}'
        f'<span class="arrow" aria-hidden="true"></span></button></th>'
    )


def _stat_cells(stats: Mapping[str, Any] | None) -> list[str]:
    """The success, reward and turns cells of one column group (missing cells if no stats)."""
    if stats is None:
        return ['<td class="missing">' + _MISSING + "</td>"] * len(_METRICS)
    cells = []
    for metric, _, _, fmt in _METRICS:
        value = float(stats[_STAT_KEYS[metric]])
        if fmt is None:
            shown = f'{value:.2f} <small class="ci">{_e(_interval(stats))}</small>'
            cells.append(f'<td class="num success" data-value="{value!r}">{shown}</td>')
        else:
            cells.append(f'<td class="num" data-value="{value!r}">{fmt.format(value)}</td>')
    return cells


def _table(summaries: Sequence[Summary]) -> str:
    families = _families(summaries)
    width = len(_METRICS)
    colgroups = ['<colgroup span="3" class="entry"></colgroup>']
    colgroups.append(f'<colgroup span="{width + 1}" class="group" data-group="overall"></colgroup>')
    colgroups += [
        f'<colgroup span="{width}" class="group" data-family="{_e(f)}"></colgroup>'
        for f in families
    ]
    groups = ['<th colspan="3" scope="colgroup">entry</th>']
    groups.append(f'<th colspan="{width + 1}" scope="colgroup" data-group="overall">overall</th>')
    groups += [
        f'<th colspan="{width}" scope="colgroup" data-family="{_e(f)}">{_e(f)}</th>'
        for f in families
    ]
    columns = [
        _th("rank", "#", "number", "ascending", group="entry"),
        _th("label", "label", "text", "ascending", group="entry"),
        _th("policy", "policy", "text", "ascending", group="entry"),
    ]
    # The rows are written in the default order: overall success, best first.
    for metric, label, first, _ in _METRICS:
        sort = "descending" if metric == "success" else ""
        columns.append(_th(metric, label, "number", first, group="overall", sort=sort))
    columns.append(_th("episodes", "episodes", "number", "descending", group="overall"))
    for family in families:
        for metric, label, first, _ in _METRICS:
            columns.append(_th(metric, label, "number", first, group="family", family=family))

    rows = []
    for order, (rank, summary) in enumerate(_ranked(summaries)):
        name, policy = _name(summary), str(summary["policy"])
        cells = [
            f'<td class="num" data-value="{rank}">{rank}</td>',
            f'<td class="text" data-value="{_e(name)}">{_e(name)}</td>',
            f'<td class="text" data-value="{_e(policy)}"><code>{_e(policy)}</code></td>',
            *_stat_cells(summary["overall"]),
        ]
        episodes = int(summary["overall"]["episodes"])
        cells.append(f'<td class="num" data-value="{episodes}">{episodes}</td>')
        for family in families:
            cells += _stat_cells(summary["families"].get(family))
        rows.append(
            f'<tr data-label="{_e(name)}" data-policy="{_e(policy)}" data-rank="{rank}" '
            f'data-order="{order}">{"".join(cells)}</tr>'
        )
    return (
        '<div class="scroll"><table id="leaderboard">'
        + "".join(colgroups)
        + f'<thead><tr class="groups">{"".join(groups)}</tr>'
        + f'<tr class="columns">{"".join(columns)}</tr></thead>'
        + f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def _truncate(text: str, length: int) -> str:
    return text if len(text) <= length else text[: length - 1] + "\u2026"


def _chart(summaries: Sequence[Summary]) -> str:
    """An SVG bar chart of overall success per entry, with the 95% interval as error bars."""
    left, plot, right, top, row = 210, 500, 110, 26, 28
    ranked = _ranked(summaries)
    height = top + row * len(ranked) + 8
    width = left + plot + right
    parts = [
        f'<svg id="chart" role="img" aria-labelledby="chart-title" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}">',
        '<title id="chart-title">Overall success rate per entry, with 95% intervals</title>',
    ]
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        x = left + tick * plot
        parts.append(
            f'<line class="grid" x1="{x:.1f}" y1="{top - 6}" x2="{x:.1f}" y2="{height - 8}"/>'
            f'<text x="{x:.1f}" y="{top - 10}" text-anchor="middle">{tick:g}</text>'
        )
    for index, (rank, summary) in enumerate(ranked):
        stats, name = summary["overall"], _name(summary)
        rate, low, high = (float(stats[k]) for k in ("success_rate", "ci_low", "ci_high"))
        y = top + index * row
        mid = y + row / 2
        x_low, x_high = left + low * plot, left + high * plot
        tip = f"{name}: {rate:.2f} {_interval(stats)}, {int(stats['episodes'])} episodes"
        parts.append(
            f'<g class="entry" data-label="{_e(name)}"><title>{_e(tip)}</title>'
            f'<text x="{left - 8}" y="{mid + 4:.1f}" text-anchor="end">'
            f"{rank}. {_e(_truncate(name, 28))}</text>"
            f'<rect class="bar" x="{left}" y="{y + 5}" width="{rate * plot:.1f}" '
            f'height="{row - 10}" data-value="{rate!r}"/>'
            f'<line class="ci" x1="{x_low:.1f}" y1="{mid:.1f}" x2="{x_high:.1f}" y2="{mid:.1f}"/>'
            f'<line class="ci" x1="{x_low:.1f}" y1="{mid - 5:.1f}" x2="{x_low:.1f}" '
            f'y2="{mid + 5:.1f}"/>'
            f'<line class="ci" x1="{x_high:.1f}" y1="{mid - 5:.1f}" x2="{x_high:.1f}" '
            f'y2="{mid + 5:.1f}"/>'
            f'<text class="value" x="{max(x_high, left + rate * plot) + 6:.1f}" y="{mid + 4:.1f}">'
            f"{rate:.2f} {_e(_interval(stats))}</text></g>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _about(summaries: Sequence[Summary], built: datetime) -> str:
    """Where the numbers come from: suites and digests, engine versions, and the build date."""
    suites = _grouped(
        (
            f"<code>{_e(s['suite']['id'])}</code> {_e(s['suite'].get('name', ''))} "
            f"v{_e(s['suite'].get('version', '?'))}, digest "
            f"<code>{_e(s['suite'].get('digest', 'unknown'))}</code>",
            _e(_name(s)),
        )
        for s in summaries
    )
    several = len(suites) > 1
    suite_items = "".join(
        f"<li>{suite}"
        + (f' <span class="muted">({", ".join(names)})</span>' if several else "")
        + "</li>"
        for suite, names in suites.items()
    )
    engine_items = []
    for engine, versions in _engine_versions(summaries).items():
        if len(versions) == 1:
            engine_items.append(f"<li>{_e(engine)} {_e(next(iter(versions)))}</li>")
        else:
            engine_items.append(f'<li class="differs">{_e(engine)} {_e(_describe(versions))}</li>')
    stamp = built.strftime("%Y-%m-%d %H:%M UTC")
    return (
        '<section id="about"><h2>About these results</h2><dl>'
        f'<dt>Suite</dt><dd><ul id="suites">{suite_items}</ul></dd>'
        f'<dt>Engines</dt><dd><ul id="engines">{"".join(engine_items)}</ul></dd>'
        f'<dt>Built</dt><dd><time id="built" datetime="{built.isoformat()}">{stamp}</time></dd>'
        "<dt>Data</dt><dd><code>results.json</code> (the summaries), "
        "<code>leaderboard.md</code> (this table in Markdown)</dd>"
        "</dl></section>"
    )


def _page(summaries: Sequence[Summary], title: str, built: datetime) -> str:
    warnings = compare_versions(summaries)
    warning_box = ""
    if warnings:
        items = "".join(f"<li>{_e(w)}</li>" for w in warnings)
        warning_box = (
            '<section id="warnings" role="alert"><h2>These results are not directly comparable'
            f"</h2><ul>{items}</ul></section>"
        )
    count = len(summaries)
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
        f'<header><h1>{_e(title)}</h1><p class="built">{count} '
        f"{'entry' if count == 1 else 'entries'}, built {built.strftime('%Y-%m-%d %H:%M UTC')}."
        " Success rates are shown with their 95% bootstrap intervals; click a column header to"
        f" sort by it.</p></header>{warning_box}"
        f'<section id="results"><h2>Results</h2>{_table(summaries)}</section>'
        f'<section id="chart-section"><h2>Overall success</h2>{_chart(summaries)}</section>'
        f"{_about(summaries, built)}"
        f"<script>{_JS}</script></body></html>\n"
    )


def build_site(
    summaries: Sequence[Summary],
    out_dir: str | os.PathLike[str],
    *,
    title: str = "turnwise leaderboard",
) -> Path:
    """Write a static leaderboard site: `index.html`, `leaderboard.md` and `results.json`.

    `index.html` is one self-contained page (inline CSS, JavaScript and SVG; no external URL, so
    it works offline and from `file://`): a table with one column group per env family plus an
    overall group, sortable by any column (default: overall success, best first); an SVG chart
    of overall success with 95% intervals; the suites, digests, engine versions and build date;
    and, prominently, any `compare_versions` warnings. `leaderboard.md` is `markdown_table`;
    `results.json` holds the summaries the site was built from.

    Args:
        summaries: evaluation summaries (as `load_summary` returns them); at least one.
        out_dir: the folder to write into (created if needed; these three files are replaced).
        title: the page's title and heading.

    Returns:
        The path of `index.html`.

    Raises:
        ValueError: no summaries, or one that is not a valid evaluation summary.
    """
    if not summaries:
        raise ValueError("no evaluation summaries to build a leaderboard from")
    for index, summary in enumerate(summaries):
        _check_summary(summary, f"summary #{index + 1}")
    out = Path(out_dir)
    built = datetime.now(timezone.utc).replace(microsecond=0)
    atomic_write_text(out / "results.json", json.dumps(list(summaries), indent=2) + "\n")
    atomic_write_text(out / "leaderboard.md", markdown_table(summaries))
    return atomic_write_text(out / "index.html", _page(summaries, title, built))


# The window width that shows the whole table (as wide as its left margin on both sides).
_TABLE_WIDTH = """() => {
  const table = document.getElementById("leaderboard");
  return table ? Math.ceil(table.offsetWidth + 2 * table.getBoundingClientRect().left) : 0;
}"""


def screenshot(
    index_html: str | os.PathLike[str], png_path: str | os.PathLike[str], *, width: int = 1280
) -> Path:
    """Save a full-page PNG of a leaderboard page, rendered by headless Chromium.

    Args:
        index_html: the page (as written by `build_site`).
        png_path: where to write the PNG (its folder is created if needed).
        width: the browser window's width in CSS pixels; widened if the table needs more.

    Returns:
        The path of the PNG.

    Raises:
        turnwise.sandboxes.browser.BrowserUnavailable: Playwright or Chromium is missing.
        playwright.sync_api.Error: called from a thread already running Playwright's sync API
            or an asyncio loop (Playwright allows one sync session per thread).
    """
    from turnwise.sandboxes.browser import (
        CHROMIUM_ARGS,
        INSTALL_HINT,
        BrowserUnavailable,
        find_chromium,
    )

    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        raise BrowserUnavailable(
            f"playwright is not installed (pip install 'turnwise[web]'); then {INSTALL_HINT}"
        ) from exc
    png = Path(png_path)
    png.parent.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=find_chromium(), headless=True, args=list(CHROMIUM_ARGS)
        )
        try:
            page = browser.new_page(viewport={"width": width, "height": 800})
            page.goto(Path(index_html).resolve().as_uri())
            needed = page.evaluate(_TABLE_WIDTH)
            if needed > width:
                page.set_viewport_size({"width": needed, "height": 800})
            page.screenshot(path=str(png), full_page=True)
        finally:
            browser.close()
    return png
