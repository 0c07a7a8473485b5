"""Prompt templates as data (system prompt, per-stage instructions, tool descriptions)."""
