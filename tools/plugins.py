"""Extension points: planners, tools, rewards, dataset loaders and CLI commands from other packages.

A plug-in package declares entry points in its ``pyproject.toml``; geolocate finds them with
:mod:`importlib.metadata` (no change to geolocate's own files)::

    [project.entry-points."geolocate.policies"]
    my_planner = "mypkg.planner:MyPlanner"
    [project.entry-points."geolocate.tools"]
    my_tool = "mypkg.tools:MyTool"

Anything importable can also be named directly as ``module:attr`` wherever a name is accepted
(``--policy mypkg.planner:MyPlanner``, ``--tools all,mypkg.tools:MyTool``).

Groups: :data:`GROUPS`.

>>> is_import_spec("mypkg.planner:MyPlanner"), is_import_spec("heuristic")
(True, False)
"""

from __future__ import annotations

import functools
import importlib
from importlib.metadata import entry_points
from typing import Any

from geolocate.tools.errors import UnknownNameError

GROUPS = (
    "geolocate.policies",
    "geolocate.tools",
    "geolocate.rewards",
    "geolocate.datasets",
    "geolocate.commands",
)
"""Entry-point groups geolocate reads."""


def is_import_spec(name: str) -> bool:
    """True for ``module:attr`` (a dotted module path, a colon, a dotted attribute path)."""
    mod, sep, attr = name.partition(":")
    return bool(sep and mod and attr and all(p.isidentifier() for p in mod.split(".") + attr.split(".")))


def import_spec(spec: str, kind: str = "object") -> Any:
    """The object that ``module:attr`` names.

    Raises:
        UnknownNameError: the module or attribute cannot be imported (the message says which).
    """
    mod_name, _, attr = spec.partition(":")
    try:
        obj: Any = importlib.import_module(mod_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as e:
        raise UnknownNameError(kind, spec, [f"an importable module:attr ({type(e).__name__}: {e})"]) from None
    return obj


@functools.cache
def _group(group: str) -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=group)}


def plugin_names(group: str) -> list[str]:
    """Names registered by installed packages under the entry-point ``group``."""
    return sorted(_group(group))


def load_plugin(group: str, name: str) -> Any | None:
    """The object a plug-in registered as ``name`` in ``group``; None when there is none."""
    ep = _group(group).get(name)
    return None if ep is None else ep.load()
