"""Sandboxes: bubblewrap, Docker, the browser pool and X displays.

Filled in by the web, GUI and SWE work; importing this package imports nothing heavy.
"""
