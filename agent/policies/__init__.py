"""Policies: turn an Episode's state into the next completion, in the shared action grammar.

>>> sorted(POLICIES)
['heuristic']
"""

from __future__ import annotations

from collections.abc import Callable

from agent.policies.base import Policy
from agent.policies.heuristic import HeuristicPolicy

POLICIES: dict[str, Callable[..., Policy]] = {"heuristic": HeuristicPolicy}


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
