"""Prompt templates as data, and the one function that renders an Episode into chat messages.

Templates live in ``prompts/v<PROMPT_VERSION>/`` (Jinja2). :func:`build_messages` is used by every
model policy and by training, so what is trained is what runs.
"""

from geolocate.prompts.render import PROMPT_VERSION, build_messages, image_refs, system_prompt

__all__ = ["PROMPT_VERSION", "build_messages", "image_refs", "system_prompt"]
