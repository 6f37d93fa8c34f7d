"""Layered TOML: a file that `extends` another overrides it table by table."""
from __future__ import annotations

import tomllib
from pathlib import Path


def merge(base: dict, over: dict) -> dict:
    """Deep-merge `over` into `base`. A table that names its `kind` replaces the base table
    (a pcsc signer is not a software signer with extra keys); lists replace."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and "kind" not in value:
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def read(path: Path, error: type[Exception], what: str = "config file", same_folder: bool = False,
         seen: tuple[Path, ...] = ()) -> dict:
    """A TOML file with `extends = "other.toml"` (relative to it) followed and merged; errors
    (missing file, bad TOML, a loop) raise `error` naming the file."""
    if path.resolve() in seen:
        raise error(f"{path}: extends itself through {' -> '.join(str(p) for p in seen)}")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(f"{path}: {what} not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{path}: {exc}") from None
    parent = raw.pop("extends", None)
    if parent is None:
        return raw
    base_path = path.parent / parent
    if same_folder and base_path.resolve().parent != path.resolve().parent:
        raise error(f"{path}: extends must name a file in the same folder, got {parent!r}")
    return merge(read(base_path, error, what, same_folder, (*seen, path.resolve())), raw)
