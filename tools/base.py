"""The one interface every tool implements, and the context a tool call runs in."""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from geolocate.tools.image import LoadedImage


class ToolInput(BaseModel):
    """Base of tool argument models: unknown fields are an error the model is told about."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class ToolOutput(BaseModel):
    """Base of tool result models."""

    model_config = ConfigDict(extra="forbid")

    def summary(self) -> str:
        """One line for people and models; tools override with something more useful."""
        return self.model_dump_json()


@dataclass
class ToolContext:
    """What a tool call may read besides its arguments: the photo, and per-run options.

    ``case`` is set when the episode examines several media (photos, video keyframes:
    :class:`geolocate.tools.media.Case`); ``image`` is then the case's first image, and tools that take
    a ``media`` argument look at the images it names (:meth:`images`).
    """

    image: LoadedImage
    options: dict[str, Any] = field(default_factory=dict)
    case: Any = None

    def images(self, ids: list[str] | None = None) -> list[tuple[str | None, LoadedImage]]:
        """(image id, image) pairs the ids name (all of the case when None); ``[(None, image)]`` for a
        single photo.

        Raises:
            ToolInputError: an id that names no medium or frame of the case.
        """
        if self.case is None or self.case.single_photo:
            if ids and not set(ids) <= {"m1"}:
                from geolocate.tools.errors import ToolInputError

                raise ToolInputError(
                    f"no medium or frame {ids} here: there is one photo", hint="leave out media"
                )
            return [(None, self.image)]
        return [(im.id, im.image) for im in self.case.select(ids)]

    def image_by_id(self, mid: str | None) -> LoadedImage:
        """The image ``mid`` names (the case's first when None)."""
        if mid is None:
            return self.image
        found = self.images([mid])
        return found[0][1]


class Tool(ABC):
    """A tool the agent can call: a name, a description and pydantic input/output schemas.

    Subclasses set ``name``, ``description``, ``Input`` and ``Output`` and implement :meth:`run`, which
    raises :class:`geolocate.tools.errors.ToolError` subclasses for failures the model should hear about.
    Heavy
    resources must load lazily inside :meth:`run` (never in ``__init__`` or at import).
    """

    name: ClassVar[str]
    description: ClassVar[str]
    Input: ClassVar[type[ToolInput]]
    Output: ClassVar[type[ToolOutput]]
    timeout_s: ClassVar[float] = 60.0
    per_image: ClassVar[bool] = False
    """True for tools that look at each image of a case in turn (their time-out is per image)."""

    @abstractmethod
    def run(self, args: ToolInput, ctx: ToolContext) -> ToolOutput:
        """Run the tool on validated ``args``; return an ``Output`` instance."""

    def artifact(self, output: dict[str, Any], ctx: ToolContext):
        """An image this tool's result shows to the model (PIL), rebuilt from the serialised output;
        None for tools that produce no image."""
        return None

    def schema(self) -> dict[str, Any]:
        """The function schema a model sees (OpenAI / Qwen tool-calling layout)."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.Input.model_json_schema(),
            },
        }


@functools.cache
def _malloc_trim():
    import ctypes
    import ctypes.util

    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to do
        return None


def release_memory() -> None:
    """Give the heap's free pages back to the operating system (glibc ``malloc_trim(0)``; nothing
    elsewhere). ONNX Runtime frees a detection pass's activations, but glibc keeps the pages, so a
    ``locate`` process kept the detector's ~170-290 MB for the rest of the episode and peaked with the
    later steps on top of it (520 MB on a street photo; 450 MB with the pages given back). Each tool call
    of an episode runs in a thread of its own, whose freed memory glibc keeps in that thread's arena:
    :class:`~geolocate.agent.episode.Episode` gives it back after every call (a 12-megapixel photo's
    ``locate`` peaked at 545 MB without, 495 MB with)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
