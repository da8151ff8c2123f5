"""What a GUI step costs: action + settled screenshot, and reset, on the desktop and on pages.

Measured in one run:

* `turnwise/Desktop-v0` step latency (median, p95), timed around `env.step`, per kind of
  action on a Mousepad task: `click` in the text (moves the caret), `type("a")`, `key("left")`,
  and `wait()` (nothing changes, so the env waits out its reaction window). A step is the
  XTest input, waiting for the screen to settle, the screenshot, the checker reading the saved
  file, and the window list. Target: median step at most 50 ms.
* Desktop reset latency (median, p95) per app: stop the apps, write the task's files, start the
  app, wait for its window and for its first drawing to settle.
* The parts: one XTest click (input only), one 800×600 screenshot (mss).
* Accessibility (AT-SPI): one read of the app's elements (tree + `app_elements`) in Mousepad
  and in Gnumeric; `Desktop-v0` step latency with `accessibility=True` (the same `type("a")`
  and `key("left")` steps as above, now with the element listing); and
  `turnwise/AppGrounding-v0` reset latency per app (start the app, bring up the view, read).
* `turnwise/MiniWoBPixel-v0` step latency (a click at a point, then the screenshot), when the
  web extra and Chromium are installed.

Usage: python benchmarks/gui.py [--steps N] [--resets N] [--out benchmarks/results/gui.json]
"""

from __future__ import annotations

import argparse
import statistics
from typing import Any

from _common import machine, summary_ms, timed_ms, write_result


def desktop(steps: int, resets: int) -> dict[str, Any]:
    from turnwise.envs.gui.desktop import DesktopEnv

    env = DesktopEnv(max_turns=10 * steps + 10)
    result: dict[str, Any] = {"reset": {}, "step": {}}
    for kind, app in (("write-line", "mousepad"), ("sheet-total", "gnumeric")):
        ids = iter(env.tasks("train")[env.tasks("train").index(f"{kind}/train/0000") :])
        times = timed_ms(lambda ids=ids: env.reset(options={"task_id": next(ids)}), resets + 1)
        result["reset"][app] = summary_ms(times[1:])  # the first reset also starts the display
    env.reset(options={"task_id": "write-line/train/0000"})
    env.step('type("some text to move through")')
    for name, action in (
        ("click", "click(60, 62)"),
        ("type", 'type("a")'),
        ("key", 'key("left")'),
        ("wait", "wait()"),
    ):

        def step(action: str = action) -> None:
            _, _, terminated, truncated, info = env.step(action)
            assert info["valid_action"] and not (terminated or truncated), info

        result["step"][name] = summary_ms(timed_ms(step, steps))
    all_steps = [v["median_ms"] for v in result["step"].values()]
    result["step"]["median_of_medians_ms"] = round(statistics.median(all_steps), 2)

    display = env.display
    result["xtest_click"] = summary_ms(timed_ms(lambda: display.click(700, 500), steps))
    result["screenshot_800x600"] = summary_ms(timed_ms(display.screenshot, steps))
    env.close()
    return result


def accessibility(steps: int, resets: int) -> dict[str, Any]:
    from turnwise.envs.gui.app_grounding import AppGroundingEnv
    from turnwise.envs.gui.desktop import DesktopEnv
    from turnwise.envs.gui.elements import app_elements

    result: dict[str, Any] = {"read": {}, "step": {}, "grounding_reset": {}}
    env = DesktopEnv(max_turns=10 * steps + 10, accessibility=True)
    for kind, app in (("write-line", "mousepad"), ("sheet-total", "gnumeric")):
        env.reset(options={"task_id": f"{kind}/train/0000"})
        display = env.display

        def read(display: Any = display) -> None:
            nodes = display.accessible_tree()
            app_elements(nodes, env.size, display.windows(), display.popups())

        result["read"][app] = {
            **summary_ms(timed_ms(read, steps)),
            "nodes": len(display.accessible_tree()),
        }
    env.reset(options={"task_id": "write-line/train/0000"})
    env.step('type("some text to move through")')
    for name, action in (("type", 'type("a")'), ("key", 'key("left")')):

        def step(action: str = action) -> None:
            _, _, terminated, truncated, info = env.step(action)
            assert info["valid_action"] and not (terminated or truncated), info

        result["step"][name] = summary_ms(timed_ms(step, steps))
    env.close()
    grounding = AppGroundingEnv()
    for app in ("mousepad", "gnumeric"):
        ids = iter(
            [t for t in grounding.tasks("train") if t.startswith(app)][
                :: grounding.targets_per_instance
            ]
        )
        times = timed_ms(
            lambda ids=ids: grounding.reset(options={"task_id": next(ids)}), resets + 1
        )
        result["grounding_reset"][app] = summary_ms(times[1:])
    grounding.close()
    return result


def pixel_web(steps: int) -> dict[str, Any] | str:
    try:
        from turnwise.envs.web.pixels import MiniWoBPixelEnv
        from turnwise.testing.requirements import missing_browser
    except ImportError as exc:
        return f"skipped: {exc}"
    if (reason := missing_browser()) is not None:
        return f"skipped: {reason}"
    env = MiniWoBPixelEnv(pages=["enter-text"], max_turns=steps + 10)
    resets = timed_ms(lambda: env.reset(options={"task_id": "enter-text/train/0000"}), 4)
    env.step("click(300, 300)")  # warm up: outside the page's widgets, ends nothing

    def step() -> None:
        _, _, terminated, truncated, info = env.step("click(300, 300)")
        assert info["valid_action"] and not (terminated or truncated), info

    result = {"step_click": summary_ms(timed_ms(step, steps)), "reset": summary_ms(resets[1:])}
    env.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--resets", type=int, default=8)
    parser.add_argument("--out", default="benchmarks/results/gui.json")
    args = parser.parse_args()
    result: dict[str, Any] = {"benchmark": "gui", "machine": machine()}
    result["desktop"] = desktop(args.steps, args.resets)
    print("desktop", result["desktop"])
    result["accessibility"] = accessibility(args.steps, args.resets)
    print("accessibility", result["accessibility"])
    result["pixel_web"] = pixel_web(args.steps)
    print("pixel_web", result["pixel_web"])
    result["machine_after"] = machine()["load_average"]
    write_result(result, args.out)


if __name__ == "__main__":
    main()
