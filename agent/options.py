"""Per-run tool options, as data: what ``locate`` flags and a session's settings say about the
backends of the tools (OSM index or Overpass server, Nominatim server, time-outs).

Kept as a model so a session can store them and build the same backends when it resumes.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, Field, field_validator


class RunOptions(BaseModel):
    """Tool backends and limits for a run.

    >>> RunOptions(tool_timeout_s=5).build()
    {'tool_timeout_s': 5.0}
    """

    tool_timeout_s: float | None = Field(None, description="override every tool's time-out, seconds (> 0)")
    osm_db: str | None = Field(None, description="local OSM index for osm_search (geolocate osm index)")
    overpass: str | None = Field(None, description="Overpass interpreter URL for osm_search")
    nominatim: str | None = Field(None, description="HOST[:PORT] of a Nominatim server for the geocode tool")
    nominatim_scheme: str = "https"
    user_agent: str = "geolocate/0.1 (https://github.com/geolocate)"
    clip_model: str | None = Field(
        None, description="CLIP ViT-L/14 image encoder (hub id or folder) for the visual_candidates tool"
    )

    @field_validator("tool_timeout_s")
    @classmethod
    def _positive(cls, v: float | None) -> float | None:
        if v is not None and (not math.isfinite(v) or v <= 0):
            raise ValueError("the tool time-out must be a finite number of seconds above 0")
        return v

    def build(self) -> dict:
        """The ``options`` dict the Episode passes to tools (backends constructed here).

        Raises:
            ValueError, OSError: a backend cannot be set up.
        """
        options: dict = {"tool_timeout_s": self.tool_timeout_s} if self.tool_timeout_s else {}
        if self.osm_db or self.overpass:
            from geolocate.tools.osm import make_backend

            options["osm_backend"] = make_backend(self.osm_db, self.overpass)
        if self.nominatim:
            from geolocate.tools.geocode import NominatimGeocoder

            options["geocoder"] = NominatimGeocoder(
                self.user_agent, domain=self.nominatim, scheme=self.nominatim_scheme
            )
        if self.clip_model:
            options["clip_model"] = self.clip_model
        return options
