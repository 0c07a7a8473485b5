"""Per-run tool options, as data: what ``locate`` flags and a session's settings say about the
backends of the tools (OSM index or Overpass server, Nominatim server, time-outs).

Kept as a model so a session can store them and build the same backends when it resumes.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, Field, field_validator


def check_url(text: str, what: str = "URL") -> str:
    """An http(s) URL with a host and, if any, a port from 1 to 65535.

    >>> check_url("http://localhost:12345/api/interpreter")
    'http://localhost:12345/api/interpreter'

    Raises:
        ValueError: another scheme, no host, spaces, a bad port (the message names ``what``).
    """
    from urllib.parse import urlsplit

    from geolocate.tools.geocode import check_host_port

    t = str(text).strip()
    try:
        u = urlsplit(t)
    except ValueError as e:
        raise ValueError(f"{what}: {text!r} is not a URL ({e})") from None
    if u.scheme not in ("http", "https") or not u.netloc or any(ch.isspace() for ch in t):
        raise ValueError(f"{what} must be an http(s) URL such as http://localhost:12345/api/interpreter")
    check_host_port(u.netloc.rsplit("@", 1)[-1], what)
    return t


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

    @field_validator("nominatim")
    @classmethod
    def _host_port(cls, v: str | None) -> str | None:
        from geolocate.tools.geocode import check_host_port

        return None if v is None else check_host_port(v, "--nominatim")

    @field_validator("nominatim_scheme")
    @classmethod
    def _scheme(cls, v: str) -> str:
        if v not in ("http", "https"):
            raise ValueError(f"--nominatim-scheme must be http or https, got {v!r}")
        return v

    @field_validator("overpass")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        return None if v is None else check_url(v, "--overpass")

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
