"""The Policy interface."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from geolocate.agent.episode import Episode


@runtime_checkable
class Policy(Protocol):
    """Anything that writes the next turn of an Episode.

    ``act`` reads the episode (state, evidence, observations, image, enabled tools) and returns a
    completion in the action grammar of :mod:`geolocate.agent.actions`. It must not mutate the episode.
    """

    name: str

    def act(self, episode: Episode) -> str:
        """The next completion text."""
        ...
