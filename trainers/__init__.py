"""Trainers: credit assignment, losses, the training loop and algorithm presets.

Filled in by the trainers work; importing this package imports nothing heavy.
"""
