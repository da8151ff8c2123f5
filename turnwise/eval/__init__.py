"""Evaluation suites, evaluation runs and leaderboards."""

from __future__ import annotations
