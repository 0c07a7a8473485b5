"""Tool registry: name -> tool, the tool mask of a run, and the schemas a model sees.

>>> sorted(available())
['clues', 'exif', 'gazetteer', 'geocode', 'ocr', 'osm_search', 'sun', 'timezone', 'visual_candidates', 'zoom']
>>> ToolSet.from_names(["ocr", "clues"]).names
['ocr', 'clues']
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any

from geolocate.tools.base import Tool, ToolOutput
from geolocate.tools.errors import UnknownToolError
from geolocate.tools.plugins import import_spec, is_import_spec, load_plugin, plugin_names

_FACTORIES: dict[str, Callable[[], Tool]] = {}
_OPTIONAL: set[str] = set()


def register(name: str, factory: Callable[[], Tool], optional: bool = False) -> None:
    """Register a tool factory under ``name`` (later registrations replace earlier ones). An
    ``optional`` tool needs something the run must provide (model weights) and is left out of
    ``all``: name it in the tool mask to enable it."""
    _FACTORIES[name] = factory
    if optional:
        _OPTIONAL.add(name)


def available() -> list[str]:
    """Names of the built-in tools, then those of installed plug-ins (entry-point group
    ``geolocate.tools``)."""
    return list(_FACTORIES) + [n for n in plugin_names("geolocate.tools") if n not in _FACTORIES]


def builtin() -> list[str]:
    """Names of the built-in tools that need nothing extra (what ``all`` means in a tool mask)."""
    return [n for n in _FACTORIES if n not in _OPTIONAL]


def create(name: str) -> Tool:
    """A new instance of the tool ``name``: built in, a plug-in's, or ``module:attr`` of a Tool class.

    Raises:
        UnknownToolError: no such tool; the message lists the valid names.
    """
    if name in _FACTORIES:
        return _FACTORIES[name]()
    factory = load_plugin("geolocate.tools", name) or (
        import_spec(name, "tool") if is_import_spec(name) else None
    )
    if factory is None:
        raise UnknownToolError(f"unknown tool {name!r}", hint=f"valid tools: {', '.join(available())}")
    if not callable(factory):
        raise UnknownToolError(
            f"{name!r} is not a geolocate Tool", hint="a plug-in tool subclasses geolocate.tools.base.Tool"
        )
    try:
        tool = factory()
    except TypeError as e:
        raise UnknownToolError(
            f"{name!r} could not be created: {e}", hint="a Tool takes no arguments"
        ) from None
    if not isinstance(tool, Tool):
        raise UnknownToolError(
            f"{name!r} is not a geolocate Tool", hint="a plug-in tool subclasses geolocate.tools.base.Tool"
        )
    return tool


@functools.cache
def output_model(name: str) -> type[ToolOutput]:
    """The pydantic output model of the tool ``name`` (to read a stored result as typed fields).

    Raises:
        UnknownToolError: no such tool.
    """
    return create(name).Output


class ToolSet:
    """The tools enabled for one run (the tool mask), in a fixed order.

    Raises:
        UnknownToolError: from :meth:`get` for a name outside the set (the message lists the enabled ones).
    """

    def __init__(self, tools: Iterable[Tool]):
        self._tools = {t.name: t for t in tools}

    @classmethod
    def from_names(cls, names: Iterable[str] | None = None) -> ToolSet:
        """Tools by name; ``None`` means every registered tool."""
        return cls(create(n) for n in (available() if names is None else names))

    @classmethod
    def parse_spec(cls, spec: str | None, exclude: Iterable[str] = ()) -> ToolSet:
        """From a comma list (``"ocr,clues"``), ``"all"``, ``"all,-exif"`` style exclusions, or
        ``"none"`` (no tool: a baseline). ``None`` means ``"all"``.

        Raises:
            UnknownToolError: an unknown tool (the message lists the valid ones), an empty mask
                (``""``: say ``none`` for no tool), or ``-all``/``-none``.
        """
        if spec is None:
            spec = "all"
        parts = [p.strip() for p in str(spec).split(",")]
        if not any(parts):
            raise UnknownToolError(
                f"empty tool mask {spec!r}", hint="give tool names, 'all', 'all,-ocr', or 'none' for no tool"
            )
        names: list[str] = []
        for part in parts:
            if not part or part == "none":
                continue
            if part in ("-all", "-none"):
                raise UnknownToolError(
                    f"{part!r} is not a tool to leave out", hint="write 'none' for a run without tools"
                )
            if part == "all":
                names.extend(n for n in builtin() if n not in names)
            elif part.startswith("-"):
                if part[1:] not in available():
                    create(part[1:])  # raises with the valid names
                names = [n for n in names if n != part[1:]]
            elif part not in names:
                create(part)
                names.append(part)
        return cls.from_names(n for n in names if n not in set(exclude))

    @property
    def names(self) -> list[str]:
        return list(self._tools)

    def __contains__(self, name: str) -> bool:
        return name in self._tools

    def get(self, name: str) -> Tool:
        if name not in self._tools:
            raise UnknownToolError(
                f"tool {name!r} is not available in this run",
                hint=f"available tools: {', '.join(self._tools) or 'none'}",
            )
        return self._tools[name]

    def schemas(self) -> list[dict[str, Any]]:
        """Function schemas of the enabled tools, for the model's prompt."""
        return [t.schema() for t in self._tools.values()]


def _register_builtin() -> None:
    from geolocate.tools.clues import CluesTool
    from geolocate.tools.exif import ExifTool
    from geolocate.tools.gazetteer import GazetteerTool
    from geolocate.tools.geocode import GeocodeTool
    from geolocate.tools.ocr import OcrTool
    from geolocate.tools.osm.tool import OsmSearchTool
    from geolocate.tools.sun import SunTool
    from geolocate.tools.timezone import TimezoneTool
    from geolocate.tools.zoom import ZoomTool

    for cls in (
        ExifTool,
        OcrTool,
        CluesTool,
        GazetteerTool,
        GeocodeTool,
        OsmSearchTool,
        ZoomTool,
        SunTool,
        TimezoneTool,
    ):
        register(cls.name, cls)
    from geolocate.tools.visual import VisualCandidatesTool

    register(VisualCandidatesTool.name, VisualCandidatesTool, optional=True)  # needs CLIP weights


_register_builtin()
