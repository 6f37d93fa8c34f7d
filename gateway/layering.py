"""Layered TOML: a file that `extends` another overrides it table by table."""
from __future__ import annotations


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
