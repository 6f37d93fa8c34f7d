"""Secrets named by where they live (environment variable or file), never by their value.
(Its own module so that config sections in other packages can use it without a cycle.)"""
from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict


class ConfigError(Exception):
    pass


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Secret(_Model):
    """A secret named by where it lives, never by its value."""

    env: str | None = None
    file: Path | None = None

    def read(self) -> str | None:
        if self.env and os.environ.get(self.env):
            return os.environ[self.env]
        if self.file:
            try:
                return self.file.read_text().strip()
            except OSError as exc:
                raise ConfigError(f"secret file {self.file}: {exc.strerror}") from None
        return None
