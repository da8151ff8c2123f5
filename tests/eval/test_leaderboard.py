"""Tests of the leaderboard: summaries read and compared, the Markdown table, the static page.

The page itself is checked in headless Chromium (tests marked `browser`): every entry is a row,
the default order is overall success, clicking a header sorts and clicking again reverses, the
hostile label shows as text and runs nothing, and version warnings are shown.
"""

from __future__ import annotations

import copy
import json
import struct
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from turnwise.eval.leaderboard import (
    build_site,
    compare_versions,
    load_summary,
    markdown_table,
    screenshot,
)

HOSTILE = "<img src=x onerror=alert(1)>|pipe"
SCRIPT_POLICY = "openai:</script><script>alert(2)</script>"
ENGINES = {"turnwise": "0.1.0", "textworld": "1.6.2", "alfworld": None, "playwright": "1.48.0"}
DIGEST = "sha256:" + "ab" * 32


def stats(rate: float, low: float, high: float, turns: float, episodes: int = 40) -> dict[str, Any]:
    return {
        "episodes": episodes,
        "success_rate": rate,
        "ci_low": low,
        "ci_high": high,
        "reward_mean": rate + 0.05,
        "turns_mean": turns,
        "tokens": 1000 * episodes,
        "wall_seconds": 2.5 * episodes,
        "errors": 0,
    }


def summary(
    label: str, policy: str, overall: dict[str, Any], families: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    return {
        "schema": "turnwise-eval/1",
        "suite": {
            "id": "turnwise-mixed-v0",
            "name": "turnwise-mixed",
            "version": 0,
            "digest": DIGEST,
        },
        "policy": policy,
        "label": label,
        "engines": dict(ENGINES),
        "created": "2026-11-21T10:00:00+00:00",
        "overall": overall,
        "families": families,
        "envs": {},
    }


@pytest.fixture
def summaries() -> list[dict[str, Any]]:
    """Four entries: families text and web for most, gui for one, text only for another."""
    return [
        summary(
            "alpha",
            "hf:/ckpt/alpha",
            stats(0.62, 0.50, 0.74, 9.5, 80),
            {"text": stats(0.70, 0.55, 0.85, 8.0), "web": stats(0.54, 0.38, 0.70, 11.0)},
        ),
        summary(
            HOSTILE,
            SCRIPT_POLICY,
            stats(0.80, 0.70, 0.90, 7.25, 120),
            {
                "text": stats(0.85, 0.72, 0.95, 6.0),
                "web": stats(0.75, 0.60, 0.88, 8.5),
                "gui": stats(0.80, 0.65, 0.92, 7.25),
            },
        ),
        summary(
            "gamma",
            "hf:/ckpt/gamma\nsecond line",
            stats(0.35, 0.22, 0.48, 12.0, 40),
            {"text": stats(0.35, 0.22, 0.48, 12.0)},
        ),
        summary(
            "delta",
            "random",
            stats(0.50, 0.38, 0.62, 10.0, 80),
            {"text": stats(0.55, 0.40, 0.70, 4.0), "web": stats(0.45, 0.30, 0.60, 16.0)},
        ),
    ]


BY_SUCCESS = [HOSTILE, "alpha", "delta", "gamma"]


# --------------------------------------------------------------------------------------------
# The Markdown table


def test_markdown_table_ranks_by_overall_success_and_formats_intervals(
    summaries: list[dict[str, Any]],
) -> None:
    lines = markdown_table(summaries).splitlines()
    assert lines[0] == "| rank | label | policy | overall | text | web | gui | turns | episodes |"
    assert lines[1] == "|---:|---|---|---|---|---|---|---:|---:|"
    assert len(lines) == 2 + len(summaries)
    assert [line.split(" | ")[1] for line in lines[2:]] == [
        "&lt;img src=x onerror=alert(1)&gt;\\|pipe",
        "alpha",
        "delta",
        "gamma",
    ]
    assert lines[3] == (
        "| 2 | alpha | hf:/ckpt/alpha | 0.62 [0.50, 0.74] | 0.70 [0.55, 0.85] "
        "| 0.54 [0.38, 0.70] | \u2014 | 9.5 | 80 |"
    )


def test_markdown_table_escapes_pipes_newlines_and_html(summaries: list[dict[str, Any]]) -> None:
    table = markdown_table(summaries)
    rows = table.splitlines()[2:]
    # Every row has exactly as many cell separators as the header: no pipe leaked from a label.
    separators = table.splitlines()[0].count("|")
    assert all(row.replace("\\|", "").count("|") == separators for row in rows)
    assert "hf:/ckpt/gamma second line" in rows[3]
    assert "<" not in table and ">" not in table
    assert "&lt;/script&gt;" in rows[0]


def test_markdown_table_gives_ties_the_same_rank(summaries: list[dict[str, Any]]) -> None:
    summaries[2]["overall"] = stats(0.50, 0.40, 0.60, 10.0)  # gamma ties with delta
    ranks = [line.split(" | ")[0] for line in markdown_table(summaries).splitlines()[2:]]
    assert ranks == ["| 1", "| 2", "| 3", "| 3"]


# --------------------------------------------------------------------------------------------
# Comparing versions


def test_consistent_summaries_give_no_warning(summaries: list[dict[str, Any]]) -> None:
    assert compare_versions(summaries) == []


def test_a_changed_suite_digest_is_a_warning(summaries: list[dict[str, Any]]) -> None:
    summaries[0]["suite"]["digest"] = "sha256:" + "cd" * 32
    (warning,) = compare_versions(summaries)
    assert "suite turnwise-mixed-v0 changed between runs" in warning
    assert "sha256:cdcdcdcdcdcd (alpha)" in warning
    assert f"sha256:abababababab ({HOSTILE}, gamma, delta)" in warning


def test_a_different_suite_is_a_warning(summaries: list[dict[str, Any]]) -> None:
    summaries[3]["suite"] = {"id": "turnwise-web-v0", "digest": DIGEST}
    (warning,) = compare_versions(summaries)
    assert "different suites" in warning
    assert "turnwise-web-v0 (delta)" in warning


def test_a_different_engine_version_is_a_warning_naming_the_engine(
    summaries: list[dict[str, Any]],
) -> None:
    summaries[2]["engines"]["textworld"] = "1.6.3"
    summaries[3]["engines"]["alfworld"] = "0.4.2"
    warnings = compare_versions(summaries)
    assert warnings == [
        f"engine textworld differs between runs: 1.6.2 (alpha, {HOSTILE}, delta); 1.6.3 (gamma)",
        f"engine alfworld differs between runs: not installed (alpha, {HOSTILE}, gamma); "
        "0.4.2 (delta)",
    ]


# --------------------------------------------------------------------------------------------
# Loading summaries


def test_load_summary_reads_a_file_or_its_folder(
    tmp_path: Path, summaries: list[dict[str, Any]]
) -> None:
    (tmp_path / "summary.json").write_text(json.dumps(summaries[0]))
    assert load_summary(tmp_path) == summaries[0]
    assert load_summary(tmp_path / "summary.json") == summaries[0]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, r"no evaluation summary at .*summary\.json"),
        ("{not json", r"summary\.json is not valid JSON \(line 1, column 2"),
        ("[1, 2]", r"holds a JSON list, not a summary object"),
        ('{"schema": "other/1"}', r"not a turnwise evaluation summary: its schema is 'other/1'"),
        ('{"policy": "p"}', r"its schema is None, expected 'turnwise-eval/1'"),
        ('{"schema": "turnwise-eval/1", "policy": "p"}', r"lacks required keys: suite, engines"),
    ],
    ids=["missing", "bad-json", "not-an-object", "wrong-schema", "no-schema", "missing-keys"],
)
def test_load_summary_rejects_bad_files_with_one_clear_line(
    tmp_path: Path, content: str | None, message: str
) -> None:
    if content is not None:
        (tmp_path / "summary.json").write_text(content)
    with pytest.raises(ValueError, match=message) as info:
        load_summary(tmp_path)
    assert "\n" not in str(info.value)


def test_load_summary_rejects_statistics_that_are_not_numbers(
    tmp_path: Path, summaries: list[dict[str, Any]]
) -> None:
    del summaries[0]["families"]["web"]["ci_high"]
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(summaries[0]))
    with pytest.raises(ValueError, match=r"family 'web' lacks numbers for: ci_high"):
        load_summary(path)


# --------------------------------------------------------------------------------------------
# The site, without a browser


def test_build_site_writes_a_self_contained_page_and_its_data(
    tmp_path: Path, summaries: list[dict[str, Any]]
) -> None:
    index = build_site(summaries, tmp_path / "site", title="My board")
    assert index == tmp_path / "site" / "index.html"
    page = index.read_text()
    assert "http://" not in page and "https://" not in page and "<link" not in page
    assert "<img" not in page and "<script>alert" not in page
    assert page.count("<script>") == 1
    assert json.loads((tmp_path / "site" / "results.json").read_text()) == summaries
    assert (tmp_path / "site" / "leaderboard.md").read_text() == markdown_table(summaries)


def test_build_site_needs_valid_summaries(tmp_path: Path, summaries: list[dict[str, Any]]) -> None:
    with pytest.raises(ValueError, match="no evaluation summaries"):
        build_site([], tmp_path)
    summaries[1]["schema"] = "nope"
    with pytest.raises(ValueError, match="summary #2 is not a turnwise evaluation summary"):
        build_site(summaries, tmp_path)


# --------------------------------------------------------------------------------------------
# The site, in headless Chromium


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    from turnwise.sandboxes.browser import CHROMIUM_ARGS, find_chromium

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=find_chromium(), headless=True, args=list(CHROMIUM_ARGS)
        )
        yield browser
        browser.close()


class Opened:
    """A leaderboard page open in Chromium, with the dialogs, errors and requests it caused."""

    def __init__(self, browser: Any, index: Path) -> None:
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page = browser.new_page()
        self.page.on("dialog", self._dialog)
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on("request", lambda request: self.requests.append(request.url))
        self.page.goto(index.resolve().as_uri())

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def labels(self) -> list[str]:
        """The rows' labels, top to bottom."""
        labels: list[str] = self.page.eval_on_selector_all(
            "#leaderboard tbody tr", "rows => rows.map((row) => row.dataset.label)"
        )
        return labels

    def header(self, selector: str) -> Any:
        return self.page.locator(f"#leaderboard thead tr.columns th{selector}")


def by(summaries: list[dict[str, Any]], family: str, key: str, reverse: bool) -> list[str]:
    """Labels sorted by a family's statistic; entries without that family last, by success."""
    having = [s for s in summaries if family in s["families"]]
    having.sort(key=lambda s: s["families"][family][key], reverse=reverse)
    labels = [s["label"] for s in having]
    return labels + [label for label in BY_SUCCESS if label not in labels]


@pytest.mark.browser
def test_the_page_renders_every_entry_sorted_by_overall_success(
    chromium: Any, tmp_path: Path, summaries: list[dict[str, Any]]
) -> None:
    opened = Opened(chromium, build_site(summaries, tmp_path, title="My board"))
    page = opened.page
    assert page.title() == "My board"
    assert opened.labels() == BY_SUCCESS
    assert page.locator("#leaderboard tbody tr").count() == len(summaries)
    assert (
        opened.header('[data-group="overall"][data-metric="success"]').get_attribute("aria-sort")
        == "descending"
    )
    # Two header rows: the groups (entry, overall, one per family) and the columns.
    groups = page.locator("#leaderboard thead tr.groups th").all_inner_texts()
    assert groups == ["entry", "overall", "text", "web", "gui"]
    assert page.locator("#leaderboard colgroup").count() == 5
    assert page.locator("#leaderboard thead tr.columns th").count() == 3 + 4 + 3 * 3
    # The best entry's overall success cell shows its interval in smaller text.
    cell = page.locator("#leaderboard tbody tr").first.locator("td.success").first
    assert cell.get_attribute("data-value") == "0.8"
    assert " ".join(cell.inner_text().split()) == "0.80 [0.70, 0.90]"
    # The chart: one bar and one interval (three lines) per entry, in the table's order.
    bars = page.locator("#chart rect.bar")
    assert bars.count() == len(summaries)
    assert page.locator("#chart line.ci").count() == 3 * len(summaries)
    chart_labels = page.eval_on_selector_all(
        "#chart g.entry", "groups => groups.map((g) => g.dataset.label)"
    )
    assert chart_labels == BY_SUCCESS
    assert page.locator("#chart").is_visible()
    assert page.locator("#suites li").all_inner_texts() == [
        f"turnwise-mixed-v0 turnwise-mixed v0, digest {DIGEST}"
    ]
    assert "textworld 1.6.2" in page.locator("#engines").inner_text()
    assert page.locator("#built").get_attribute("datetime")
    assert page.locator("#warnings").count() == 0
    assert opened.errors == []
    assert opened.requests == [page.url]  # nothing fetched but the page itself


@pytest.mark.browser
def test_clicking_a_header_sorts_and_clicking_again_reverses(
    chromium: Any, tmp_path: Path, summaries: list[dict[str, Any]]
) -> None:
    opened = Opened(chromium, build_site(summaries, tmp_path))
    turns = opened.header('[data-family="text"][data-metric="turns"]')
    turns.click()  # fewer turns is better, so the first click sorts ascending
    assert opened.labels() == by(summaries, "text", "turns_mean", reverse=False)
    assert turns.get_attribute("aria-sort") == "ascending"
    assert turns.locator(".arrow").evaluate("e => getComputedStyle(e, '::after').content") == '"▲"'
    turns.click()
    assert opened.labels() == by(summaries, "text", "turns_mean", reverse=True)
    assert turns.get_attribute("aria-sort") == "descending"
    assert turns.locator(".arrow").evaluate("e => getComputedStyle(e, '::after').content") == '"▼"'
    overall = opened.header('[data-group="overall"][data-metric="success"]')
    assert overall.get_attribute("aria-sort") is None

    # Entries without the family sort last in either direction.
    web = opened.header('[data-family="web"][data-metric="success"]')
    web.click()
    assert opened.labels() == by(summaries, "web", "success_rate", reverse=True)
    web.click()
    assert opened.labels() == by(summaries, "web", "success_rate", reverse=False)
    assert opened.labels()[-1] == "gamma"

    opened.header('[data-metric="label"]').click()
    assert opened.labels() == sorted(BY_SUCCESS, key=lambda label: label.casefold())
    overall.click()
    assert opened.labels() == BY_SUCCESS
    assert opened.errors == []


@pytest.mark.browser
def test_a_hostile_label_is_shown_as_text_and_runs_nothing(
    chromium: Any, tmp_path: Path, summaries: list[dict[str, Any]]
) -> None:
    opened = Opened(chromium, build_site(summaries, tmp_path))
    page = opened.page
    first = page.locator("#leaderboard tbody tr").first
    assert first.get_attribute("data-label") == HOSTILE
    assert first.locator("td").nth(1).inner_text() == HOSTILE
    assert first.locator("td").nth(2).inner_text() == SCRIPT_POLICY
    assert HOSTILE in page.locator("#chart g.entry title").first.text_content()
    opened.header('[data-metric="policy"]').click()  # sorting moves the cells, runs nothing
    assert page.locator("img").count() == 0
    assert page.locator("script").count() == 1
    assert opened.dialogs == [] and opened.errors == []


@pytest.mark.browser
def test_version_differences_are_shown_prominently(
    chromium: Any, tmp_path: Path, summaries: list[dict[str, Any]]
) -> None:
    changed = copy.deepcopy(summaries)
    changed[2]["engines"]["textworld"] = "1.6.3"
    changed[3]["suite"]["digest"] = "sha256:" + "cd" * 32
    opened = Opened(chromium, build_site(changed, tmp_path))
    warnings = opened.page.locator("#warnings")
    assert warnings.is_visible()
    items = warnings.locator("li").all_inner_texts()
    assert items == compare_versions(changed)
    assert any("textworld" in item and "1.6.3 (gamma)" in item for item in items)
    assert any("suite turnwise-mixed-v0 changed" in item for item in items)
    assert len(opened.page.locator("#suites li").all_inner_texts()) == 2
    assert opened.page.locator("#engines li.differs").inner_text().startswith("textworld")


@pytest.mark.browser
def test_screenshot_writes_a_full_page_png(tmp_path: Path, summaries: list[dict[str, Any]]) -> None:
    index = build_site(summaries, tmp_path / "site")
    # Another thread: this one may hold the `chromium` fixture's Playwright session, and
    # Playwright's sync API allows one per thread.
    with ThreadPoolExecutor(1) as pool:
        shot = pool.submit(screenshot, index, tmp_path / "shots" / "leaderboard.png", width=1000)
        png = shot.result(timeout=120)
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert width > 1000 and height > 500  # widened to show the whole table (16 columns)
