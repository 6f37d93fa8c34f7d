"""Message states and which transitions are allowed.

Outbound path: received -> prepared -> signed -> sent -> acknowledged -> <business>.
Off-path: invalid (local mapping/validation failed), failed (transmit gave up),
rejected (platform or authority said no). Business states per family come from
the document family: the declaration's from its customs status codes (CHANNEL -> state in
gateway/documents/declaration.py, e.g. 7 declared, L customs-accepted, J concluded, P released,
R closed; the whole table in the README); an unknown code leaves the state and is alarmed.
"""
from __future__ import annotations

RECEIVED = "received"
PREPARED = "prepared"
SIGNED = "signed"
SENT = "sent"
ACKNOWLEDGED = "acknowledged"
INVALID = "invalid"
FAILED = "failed"
REJECTED = "rejected"

PATH = (RECEIVED, PREPARED, SIGNED, SENT, ACKNOWLEDGED)
IN_FLIGHT = (RECEIVED, PREPARED, SIGNED, SENT)   # the gateway still owes work or a receipt
LOCAL_FINAL = (INVALID, FAILED, REJECTED)


def rank(state: str) -> int:
    """Position on the outbound path; business states rank after acknowledged."""
    try:
        return PATH.index(state)
    except ValueError:
        return len(PATH) if state not in LOCAL_FINAL else len(PATH) + 100
