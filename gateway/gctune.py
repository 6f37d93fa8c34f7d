"""The garbage collector's setting for a long-running swgw process.

A drop file makes many short-lived small objects (a mapped value per field, records, element
texts, ORM rows); CPython's default (a collection every 700 new container objects, a full one
every 100 of those) then spends a third of the mapping's time walking objects that are freed by
reference counting anyway, and its full collections walk everything start-up built (schemas,
mappings, code tables) again and again. `settle()` moves what exists after start-up out of the
collector's sight (gc.freeze) and collects the youngest generation every 50,000 allocations:
cycles are still found, a little later, with memory bounded by those 50,000 objects.
"""
from __future__ import annotations

import gc

YOUNG = 50_000     # new container objects between collections of the youngest generation
OLDER = (20, 100)  # collections of one generation between those of the next


def settle() -> None:
    """Called once start-up is done (`swgw run`; bench/run.py for every scenario alike)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG, *OLDER)
