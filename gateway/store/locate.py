"""Where the store is, read straight from the config file's [store] table (following
`extends`), without validating the whole config: what `swgw status`, `trace` and
`subscriptions` need to answer fast. gateway.config resolves the URL the same way."""
from __future__ import annotations

import os
from pathlib import Path

DEFAULT_URL = "sqlite:///var/swgw.db"
DEFAULT_ENV = "SWGW_STORE_URL"
_SQLITE = "sqlite:///"


class StoreLocationError(Exception):
    pass


def resolve_sqlite(url: str, base: Path) -> str:
    """A relative SQLite path is relative to the config file's folder."""
    if url.startswith(_SQLITE) and not url.startswith(_SQLITE + "/") and ":memory:" not in url:
        return _SQLITE + os.path.normpath(base / url[len(_SQLITE):])
    return url


def resolved(url: str, url_env: str) -> str:
    return os.environ.get(url_env) or url


def store_url(config_path: str | os.PathLike) -> str:
    from gateway import layering

    path = Path(config_path)
    raw = layering.read(path, StoreLocationError, "config file", same_folder=True)
    store = raw.get("store") or {}
    if not isinstance(store, dict):
        raise StoreLocationError(f"{path}: [store] must be a table")
    url, env = store.get("url", DEFAULT_URL), store.get("url_env", DEFAULT_ENV)
    if not isinstance(url, str) or not isinstance(env, str):
        raise StoreLocationError(f"{path}: [store] url and url_env are strings")
    return resolved(resolve_sqlite(url, path.resolve().parent), env)
