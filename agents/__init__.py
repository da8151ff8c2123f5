"""Agents: policies (model backends), prompt templates and parsers.

This package grows with the agents work (`hf`, `vllm`, `openai` backends, token-exact turns, tiny
offline models). It imports nothing heavy at package import.
"""
