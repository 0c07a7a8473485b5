"""Policies: turn an Episode's state into the next completion, in the shared action grammar.

>>> sorted(POLICIES)
['heuristic', 'openai_compatible', 'transformers']
"""

from __future__ import annotations

from collections.abc import Callable

from geolocate.agent.policies.base import Policy
from geolocate.agent.policies.heuristic import HeuristicPolicy


def _transformers(**kw) -> Policy:
    from geolocate.agent.policies.transformers_policy import TransformersPolicy

    return TransformersPolicy(**kw)


def _openai_compatible(**kw) -> Policy:
    from geolocate.agent.policies.openai_compatible import OpenAICompatiblePolicy

    return OpenAICompatiblePolicy(**kw)


POLICIES: dict[str, Callable[..., Policy]] = {
    "heuristic": HeuristicPolicy,
    "transformers": _transformers,
    "openai_compatible": _openai_compatible,
}


def make_policy(name: str, **kwargs) -> Policy:
    """Instantiate the policy ``name``.

    Raises:
        KeyError: unknown name; the message lists the valid ones.
    """
    try:
        factory = POLICIES[name]
    except KeyError:
        raise KeyError(f"unknown policy {name!r}; valid policies: {', '.join(sorted(POLICIES))}") from None
    return factory(**kwargs)


__all__ = ["POLICIES", "Policy", "make_policy"]
