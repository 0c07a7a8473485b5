"""Policies: turn an Episode's state into the next completion, in the shared action grammar.

>>> sorted(POLICIES)
['heuristic', 'openai_compatible', 'transformers']
"""

from __future__ import annotations

from collections.abc import Callable

from geolocate.agent.policies.base import Policy
from geolocate.agent.policies.heuristic import HeuristicPolicy
from geolocate.tools.errors import UnknownNameError
from geolocate.tools.plugins import import_spec, is_import_spec, load_plugin, plugin_names


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


def available() -> list[str]:
    """Built-in policy names, then those of installed plug-ins (entry-point group ``geolocate.policies``)."""
    return sorted(POLICIES) + [n for n in plugin_names("geolocate.policies") if n not in POLICIES]


def make_policy(name: str, **kwargs) -> Policy:
    """Instantiate the policy ``name``: built in, a plug-in's, or ``module:attr`` of a policy class.

    Raises:
        UnknownNameError: unknown name, or a name that is no planner; the message lists the valid
            ones. ValueError: the planner cannot be created with these options.
    """
    factory = POLICIES.get(name) or load_plugin("geolocate.policies", name)
    if factory is None and is_import_spec(name):
        factory = import_spec(name, "policy")
    if factory is None:
        raise UnknownNameError("policy", name, available())
    if not callable(factory):
        raise UnknownNameError("policy", name, [f"{n} (a planner class or factory)" for n in available()])
    try:
        policy = factory(**kwargs)
    except TypeError as e:  # not a planner's signature, or wrong options
        raise ValueError(f"policy {name!r} could not be created: {e}") from None
    if not isinstance(policy, Policy):
        raise UnknownNameError(
            "policy", name, [f"{n} (a plug-in must have .name and .act(episode))" for n in available()]
        )
    return policy


__all__ = ["POLICIES", "Policy", "available", "make_policy"]
