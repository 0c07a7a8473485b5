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


class UnknownNameError(GeolocateError, ValueError):
    """A name (tool, policy, dataset layout, reward, preset) that is not registered.

    ``valid`` holds the names that are; the message lists them.

    >>> str(UnknownNameError("policy", "oracle", ["heuristic", "transformers"]))
    "unknown policy 'oracle'; valid: heuristic, transformers"
    """

    def __init__(self, kind: str, name: str, valid: list[str] | tuple[str, ...]):
        self.kind, self.name, self.valid = kind, name, list(valid)
        super().__init__(f"unknown {kind} {name!r}; valid: {', '.join(self.valid) or 'none'}")


class UnknownToolError(ToolError, ValueError):
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


def format_validation_error(e, root: str = "value") -> str:
    """One line from a pydantic ``ValidationError``: ``loc.path: message; ...``.

    >>> from pydantic import BaseModel
    >>> class M(BaseModel):
    ...     lat: float
    >>> try:
    ...     M.model_validate({"lat": "north"})
    ... except Exception as e:
    ...     print(format_validation_error(e))
    lat: Input should be a valid number, unable to parse string as a number
    """
    return "; ".join(f"{'.'.join(str(p) for p in err['loc']) or root}: {err['msg']}" for err in e.errors())
