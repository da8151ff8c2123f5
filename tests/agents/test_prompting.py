"""Templates per family, history truncation under a token budget, and the parsers."""

from __future__ import annotations

import numpy as np
import pytest

import turnwise
from turnwise.agents.prompting import (
    Exchange,
    GUITemplate,
    PromptTemplate,
    SocialTemplate,
    SWETemplate,
    TextTemplate,
    WebTemplate,
    build_messages,
    message_counter,
    parse_plain,
    template_for,
)


def history(n: int) -> list[Exchange]:
    return [Exchange(f"observation {i} " + "x" * 40, f"<action>act {i}</action>") for i in range(n)]


# ---------------------------------------------------------------------- templates
@pytest.mark.parametrize(
    ("target", "cls"),
    [
        ("text", TextTemplate),
        ("web", WebTemplate),
        ("gui", GUITemplate),
        ("swe", SWETemplate),
        ("social", SocialTemplate),
        ("other", PromptTemplate),
        ("turnwise/KeyDoor-v0", TextTemplate),
    ],
)
def test_template_for_family_or_id(target, cls) -> None:
    assert type(template_for(target)) is cls


def test_template_for_an_env_and_unknown_family(counter_env) -> None:
    env = turnwise.make("turnwise/KeyDoor-v0")
    assert type(template_for(env)) is TextTemplate
    assert type(template_for(counter_env)) is PromptTemplate  # family "other"
    with pytest.raises(ValueError, match="no template for family 'robots'"):
        template_for("robots")
    with pytest.raises(turnwise.UnknownEnvError):
        template_for("turnwise/Nope-v0")


def test_system_prompt_describes_format_and_task() -> None:
    react = TextTemplate().system_prompt({"instruction": "Find the gold coin."})
    assert "<think>" in react and "<action>" in react
    assert react.endswith("Your task: Find the gold coin.")
    plain = TextTemplate(reply_format="plain").system_prompt({})
    assert "<action>" not in plain and "Your task" not in plain
    with pytest.raises(ValueError, match="reply_format"):
        PromptTemplate(reply_format="json")  # type: ignore[arg-type]


def test_admissible_actions_are_listed_and_capped() -> None:
    t = TextTemplate(max_admissible=2)
    msg = t.user_message(
        {"text": "A hall."}, {"admissible_actions": ["look", "go north", "go east"]}
    )
    assert msg == "A hall.\n\nAdmissible actions:\n- look\n- go north\n(and 1 more)"
    assert t.user_message("A hall.", {}) == "A hall."


def test_numbered_choices_list_and_ask_for_a_number() -> None:
    t = TextTemplate(choices="number", max_admissible=2)
    msg = t.user_message("A hall.", {"admissible_actions": ["look", "go north", "go east"]})
    assert msg == "A hall.\n\nAdmissible actions:\n1: look\n2: go north\n(and 1 more)"
    system = t.system_prompt({"instruction": "Find the gold coin."})
    assert "answer with the number of one" in system and "<action>" in system
    with pytest.raises(ValueError, match="choices"):
        TextTemplate(choices="letter")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_admissible"):
        TextTemplate(choices="number", max_admissible=0)


def test_format_feedback_after_a_malformed_reply() -> None:
    info = {"format_ok": False, "format_error": "no <action>…</action> block in the reply"}
    msg = TextTemplate().user_message({"text": "A hall."}, info)
    assert msg.startswith("(Your last reply could not be used: no <action>")
    assert msg.endswith("A hall.")


def test_family_renderings() -> None:
    web = WebTemplate().render_observation(
        {"text": "[3] button 'Go'", "url": "http://x/", "title": "X", "last_action_error": ""}
    )
    assert web == "URL: http://x/\nTitle: X\nAccessibility tree:\n[3] button 'Go'"
    gui = GUITemplate().render_observation(
        {"text": "a window", "image": np.zeros((48, 64, 3), dtype=np.uint8)}
    )
    assert gui.startswith("Screen:\na window") and "64x48 screenshot" in gui
    system = GUITemplate().system_prompt({"instruction": "Save.", "action_syntax": "click(x, y)"})
    assert system.endswith("Your task: Save.\n\nclick(x, y)")
    assert "click(x, y)" not in GUITemplate().system_prompt({"instruction": "Save."})
    swe = SWETemplate().render_observation({"text": "FAILED", "exit_code": 1})
    assert swe == "Output (exit code 1):\n```\nFAILED\n```"
    assert SocialTemplate().render_observation({"text": "Bob: hi"}) == "Conversation:\nBob: hi"


# ---------------------------------------------------------------------- history
def test_full_history_alternates_roles() -> None:
    msgs, omitted = build_messages("sys", history(3), "now")
    assert omitted == 0
    assert [m["role"] for m in msgs] == ["system"] + ["user", "assistant"] * 3 + ["user"]
    assert msgs[1]["content"].startswith("observation 0") and msgs[-1]["content"] == "now"


def test_last_k_turns_and_the_omitted_note() -> None:
    msgs, omitted = build_messages("sys", history(5), "now", max_turns=2)
    assert omitted == 3 and len(msgs) == 1 + 2 * 2 + 1
    assert msgs[1]["content"].startswith(
        "[The first 3 of 5 earlier turns are omitted; the last 2 follow.]\n\nobservation 3"
    )
    msgs, omitted = build_messages("sys", history(5), "now", max_turns=0)
    assert omitted == 5 and [m["role"] for m in msgs] == ["system", "user"]
    assert msgs[1]["content"].endswith("follow.]\n\nnow")


def test_token_budget_drops_oldest_turns_first_and_keeps_the_rest() -> None:
    count = message_counter()
    full, _ = build_messages("sys", history(6), "now")
    budget = count(full) - 1
    msgs, omitted = build_messages("sys", history(6), "now", token_budget=budget)
    assert count(msgs) <= budget and omitted >= 1
    # The most turns that fit: keeping one more would break the budget.
    more, _ = build_messages("sys", history(6), "now", max_turns=6 - omitted + 1)
    assert count(more) > budget
    assert msgs[0] == {"role": "system", "content": "sys"} and msgs[-1]["content"] == "now"
    assert msgs[-2]["content"] == "<action>act 5</action>"


def test_budget_never_cuts_the_system_prompt_or_the_observation() -> None:
    msgs, omitted = build_messages("s" * 400, history(3), "o" * 400, token_budget=10)
    assert omitted == 3
    assert msgs[0]["content"] == "s" * 400 and msgs[-1]["content"].endswith("o" * 400)


def test_without_system_role_the_system_text_leads_the_first_user_message() -> None:
    msgs, _ = build_messages("sys", history(2), "now", max_turns=1, system_role=False)
    assert msgs[0]["role"] == "user" and msgs[0]["content"].startswith("sys\n\n[The first 1")


def test_counting_by_characters() -> None:
    count = message_counter()
    assert count([{"role": "user", "content": "abcde"}]) == 2 + 4


# ---------------------------------------------------------------------- parsers
@pytest.mark.parametrize(
    ("reply", "action", "ok"),
    [
        ("go north", "go north", True),
        ("  'take key'  \n", "take key", True),
        ("Action: look", "look", True),
        ("<think>hmm</think>\ngo east", "go east", True),
        ("go north\ngo south", "go north", False),
        ("", "", False),
        ("``", "", False),
    ],
)
def test_parse_plain(reply, action, ok) -> None:
    result = parse_plain(reply)
    assert (result.action, result.ok) == (action, ok)
    assert (result.error is None) == ok
