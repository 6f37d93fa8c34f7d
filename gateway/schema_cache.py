"""What swgw derives from an XSD through xmlschema (element order, repeatable elements), kept on disk
between runs: building xmlschema's model of a schema is most of a process's start-up (~1 s for the
declaration schema), and the answer only changes when a schema file does.

The cache file is keyed by the SHA-256 of the schema and of every file it includes or imports
(followed through schemaLocation), so an edited schema is never answered from a stale entry.
Where: $SWGW_CACHE_DIR, else $XDG_CACHE_HOME/swgw, else ~/.cache/swgw; a folder that cannot be
written only means the answer is computed each time."""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Callable

from gateway import xmlsafe

XS = "{http://www.w3.org/2001/XMLSchema}"
VERSION = "1"


def folder() -> Path:
    if os.environ.get("SWGW_CACHE_DIR"):
        return Path(os.environ["SWGW_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "swgw"


def fingerprint(path: Path) -> str:
    """SHA-256 over the schema and everything it includes/imports, in the order met."""
    h = hashlib.sha256(VERSION.encode())
    todo, seen = [Path(path).resolve()], set()
    while todo:
        p = todo.pop(0)
        if p in seen:
            continue
        seen.add(p)
        data = p.read_bytes()
        h.update(str(p).encode() + b"\0" + hashlib.sha256(data).digest())
        root = xmlsafe.parse(data)
        for el in root.iter(f"{XS}include", f"{XS}import", f"{XS}redefine"):
            loc = el.get("schemaLocation")
            if loc and "://" not in loc:
                todo.append((p.parent / loc).resolve())
    return h.hexdigest()


def cached(path: Path, what: str, compute: Callable[[], object]) -> object:
    """`compute()`'s JSON-able answer for schema `path`, from the cache when its files are unchanged."""
    try:
        key = fingerprint(path)
    except (OSError, xmlsafe.UnsafeXml):
        return compute()
    entry = folder() / f"{Path(path).stem}-{what}-{key[:32]}.json"
    try:
        return json.loads(entry.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        pass
    value = compute()
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=entry.parent, prefix=".tmp-")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(value, f, ensure_ascii=False)
        os.replace(tmp, entry)
    except OSError:
        pass
    return value
