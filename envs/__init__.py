"""Built-in environments, one subpackage per family.

`register_all` registers every id with string entry points; no env module is imported until an
env is made, so `import turnwise` stays light whatever the families need.
"""

from __future__ import annotations

from turnwise.registry import register

__all__ = ["register_all"]


def register_all() -> None:
    """Register the built-in env ids (called by `import turnwise`)."""
    register(
        "turnwise/KeyDoor-v0",
        "turnwise.envs.keydoor:KeyDoorEnv",
        family="text",
        description="Rooms, keys and locked doors: a fast, dependency-free text world",
    )
    register(
        "turnwise/FactQA-v0",
        "turnwise.envs.factqa.env:FactQAEnv",
        family="text",
        description="Search and read a synthetic encyclopedia to answer 1- or 2-hop questions",
    )
    register(
        "turnwise/TextWorld-v0",
        "turnwise.envs.textworld:TextWorldEnv",
        family="text",
        extra="text",
        requires=("textworld",),
        description="TextWorld games (coin collector, treasure hunter, simple, cooking, custom)",
    )
    register(
        "turnwise/ALFWorld-v0",
        "turnwise.envs.alfworld:ALFWorldEnv",
        family="text",
        extra="text",
        requires=("alfworld", "textworld"),
        description="The official ALFWorld text games (needs the ALFWorld data: ALFWORLD_DATA)",
    )
    register(
        "turnwise/ALFWorldGen-v0",
        "turnwise.envs.alfworld:ALFWorldGenEnv",
        family="text",
        extra="text",
        requires=("alfworld", "textworld"),
        description="ALFWorld-format household tasks generated offline (not the official games)",
    )
    register(
        "turnwise/MiniWoB-v0",
        "turnwise.envs.web:MiniWoBEnv",
        family="web",
        extra="web",
        requires=("playwright", "miniwob"),
        description="The MiniWoB++ task pages in Chromium, served locally",
    )
    register(
        "turnwise/Shop-v0",
        "turnwise.envs.web:ShopEnv",
        family="web",
        extra="web",
        requires=("playwright",),
        description="A multi-page web shop on loopback with WebShop-style tasks and scoring",
    )
    register(
        "turnwise/Desktop-v0",
        "turnwise.envs.gui.desktop:DesktopEnv",
        family="gui",
        extra="gui",
        requires=("Xlib", "mss", "openpyxl"),
        description="OSWorld-style tasks on real desktop apps (Mousepad, Gnumeric) in Xvfb",
    )
    register(
        "turnwise/SWE-v0",
        "turnwise.envs.swe:SWEEnv",
        family="swe",
        extra="swe",
        description="Fix bugs in real PyPI packages in a bubblewrap sandbox, graded by their tests",
    )
    register(
        "turnwise/Dilemma-v0",
        "turnwise.envs.dilemma:DilemmaEnv",
        family="social",
        multi_agent=True,
        description="The iterated prisoner's dilemma between two players: the smallest social env",
    )
    register(
        "turnwise/TextArena-v0",
        "turnwise.envs.social.arena:TextArenaEnv",
        family="social",
        multi_agent=True,
        extra="social",
        requires=("textarena",),
        description="Curated TextArena social games (negotiation, deception, Taboo, dilemmas)",
    )
    register(
        "turnwise/Social-v0",
        "turnwise.envs.social.env:SocialEnv",
        family="social",
        multi_agent=True,
        description="Sotopia-style scenarios: two characters with private goals, scored by a judge",
    )
    register(
        "turnwise/SingleAgent-v0",
        "turnwise.wrappers.single_agent:make_single_agent",
        family="social",
        description="One seat of a multi-agent env as a single-agent env; partners named by spec",
    )
    register(
        "turnwise/MiniWoBPixel-v0",
        "turnwise.envs.web.pixels:MiniWoBPixelEnv",
        family="gui",
        extra="web",
        requires=("playwright", "miniwob"),
        description="MiniWoB++ seen as screenshots and driven by clicks and keys at pixel points",
    )
    register(
        "turnwise/Grounding-v0",
        "turnwise.envs.gui.grounding:GroundingEnv",
        family="gui",
        extra="web",
        requires=("playwright", "miniwob"),
        description="Click the named element on a web page screenshot (GUI-G² Gaussian rewards)",
    )
    register(
        "turnwise/AppGrounding-v0",
        "turnwise.envs.gui.app_grounding:AppGroundingEnv",
        family="gui",
        extra="gui",
        requires=("Xlib", "mss", "openpyxl", "jeepney"),
        description="Click the named element of a real desktop app (boxes from AT-SPI)",
    )
