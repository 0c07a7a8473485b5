"""One exception hierarchy for every tool, after geopy's: each class also subclasses the matching builtin.

A tool error becomes a recorded observation in the Episode (never a crash); its message says what the
model should try next.
"""

from __future__ import annotations


class GeolocateError(Exception):
    """Base class of every error raised by geolocate."""


class InputImageError(GeolocateError, ValueError):
    """The photo cannot be used: missing, unreadable, not an image, truncated, or too large.

    The CLI maps it to exit code 2.
    """


class ToolError(GeolocateError):
    """A tool call failed; ``hint`` tells the model what to try next."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.hint = hint

    def __str__(self) -> str:
        base = str(self.args[0]) if self.args else ""
        return f"{base} ({self.hint})" if self.hint else base


class ToolInputError(ToolError, ValueError):
    """The arguments do not fit the tool's schema or make no sense (e.g. latitude 200)."""


class UnknownToolError(ToolError, KeyError):
    """No tool of that name is registered or enabled; the message lists the valid names."""


class ToolTimeoutError(ToolError, TimeoutError):
    """The tool did not answer within its time limit."""


class ToolUnavailableError(ToolError, RuntimeError):
    """A backend is not installed or cannot be reached (e.g. tesseract missing, server down)."""


class RateLimitedError(ToolUnavailableError):
    """The remote service refused for rate limiting; ``retry_after`` is in seconds when known."""

    def __init__(self, message: str, retry_after: float | None = None, hint: str | None = None):
        super().__init__(message, hint)
        self.retry_after = retry_after
