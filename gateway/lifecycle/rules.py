"""A subscription rule as the matching code and the CLI see it (a light module: `swgw
subscriptions` lists rules without importing what delivers them)."""
from __future__ import annotations

from dataclasses import dataclass

from gateway.store.models import Subscription


@dataclass(frozen=True)
class Rule:
    id: int
    business_key: str
    enterprise: str
    operator: str
    kinds: frozenset[str]
    folder: str
    queue: str

    @classmethod
    def of(cls, sub: Subscription) -> "Rule":
        kinds = frozenset(k.strip() for k in sub.kinds.split(",") if k.strip())
        return cls(sub.id, sub.business_key, sub.enterprise, sub.operator, kinds, sub.folder, sub.queue)

    def target(self) -> str:
        return f"folder {self.folder}" if self.folder else f"queue {self.queue}"

    def describe(self) -> str:
        parts = [f"{name} {value}" for name, value in (("key", self.business_key), ("enterprise", self.enterprise),
                                                      ("operator", self.operator)) if value]
        kinds = ",".join(sorted(self.kinds)) or "all kinds"
        return f"{' '.join(parts)} ({kinds}) -> {self.target()}"
