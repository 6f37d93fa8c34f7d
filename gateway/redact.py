"""Keeping secrets out of logs, errors and reprs.

`Hidden` wraps a secret value so that printing, logging or formatting the object
that holds it shows `***`, never the value. `reveal()` accepts what callers pass
for a secret: a plain string, a `Hidden`, `None`, or anything with a `.read()`
method (the config layer's `Secret(env=..., file=...)`), and returns the value.
`redact_url()` drops the password from a URL before it is shown.
"""
from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


class Hidden:
    __slots__ = ("_value",)

    def __init__(self, value: str | None):
        self._value = value

    def get(self) -> str | None:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Hidden(***)" if self._value else "Hidden(None)"

    __str__ = __repr__


def reveal(secret) -> str | None:
    if secret is None:
        return None
    if isinstance(secret, Hidden):
        return secret.get()
    if isinstance(secret, str):
        return secret
    read = getattr(secret, "read", None)
    if callable(read):
        return read()
    raise TypeError(f"a secret must be a string or have .read(), not {type(secret).__name__}")


def redact_url(url: str) -> str:
    """`amqp://user:pw@host/vh` -> `amqp://user@host/vh` (keeps everything but the password)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{parts.username}@{host}" if parts.username else host
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
