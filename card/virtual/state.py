"""The virtual card's persistent PIN try counter, in a small JSON file.

Like a real card's EEPROM: the counter is decremented and written (temp file, fsync,
rename) *before* the PIN is compared, and restored after a correct PIN, so killing
the card program mid-VERIFY can never give an attacker a free try. It survives
restarts; `reset()` is the issuer's unblock (the `--unblock` option).
"""
from __future__ import annotations

import json
import os
from pathlib import Path


class TriesCounter:
    def __init__(self, path: Path, max_tries: int):
        if not 1 <= max_tries <= 15:
            raise ValueError("max tries must be 1..15 (it travels in one nibble of 63Cx)")
        self.path = Path(path)
        self.max_tries = max_tries
        self.left = max_tries
        if self.path.exists():
            try:
                saved = json.loads(self.path.read_text())
                self.left = max(0, min(int(saved["tries_left"]), max_tries))
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"card state file {self.path} is corrupt ({exc}); delete it to reset the card") from None
        else:
            self._write()

    @property
    def blocked(self) -> bool:
        return self.left == 0

    def consume(self) -> None:
        self.left = max(0, self.left - 1)
        self._write()

    def reset(self) -> None:
        self.left = self.max_tries
        self._write()

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w") as f:
            json.dump({"tries_left": self.left, "max_tries": self.max_tries}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)


def read_tries_left(path: Path) -> int:
    """What a state file says (for tests and `swgw doctor`)."""
    return int(json.loads(Path(path).read_text())["tries_left"])
