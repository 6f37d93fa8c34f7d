"""The wire format between the central gateway and a card host's `swgw signer` agent.

Three JSON messages, each carrying `mac`: HMAC-SHA256 under the signer's secret over the
message's canonical form — the kind, then every other field as compact JSON with sorted keys
(so the correlation id, media no, enterprise, business key, deadline, nonce and the SHA-256 of
the data are all covered; the data itself is covered through its SHA-256, which the agent
recomputes).

- request   gateway -> queue `swgw.sign.<media no>`: what to sign, for whom, until when;
- reply     agent -> exchange `swgw.replies`, routing key = the request's reply_to (the gateway's
            reply queue): the signature, or why not (`error_kind` pin | absent | mismatch | refused |
            error). Through an exchange, not the default one, so a card host's broker user needs
            write access to `swgw.signers` and `swgw.replies` only — never to every queue;
- heartbeat agent -> exchange `swgw.signers`, routing key `heartbeat.<media no>`: the card's state
            (present | absent | halted), its identity and certificate.

Nothing here holds a secret beyond the call: `mac`/`check` take the key as bytes and never
show it.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time

VERSION = 1
REQUEST, REPLY, HEARTBEAT = "sign-request", "sign-reply", "heartbeat"
QUEUE_PREFIX = "swgw.sign."
HEARTBEAT_EXCHANGE = "swgw.signers"
REPLY_EXCHANGE = "swgw.replies"   # direct: each gateway process binds its reply queue under its own name
CONTENT_TYPE = "application/json"


class WireError(Exception):
    """A message that is not a well-formed, authentic swgw signing message."""


def queue_name(media_no: str) -> str:
    return QUEUE_PREFIX + media_no


def heartbeat_key(media_no: str) -> str:
    return f"heartbeat.{media_no}"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _canonical(kind: str, fields: dict) -> bytes:
    body = {k: v for k, v in fields.items() if k != "mac"}
    return kind.encode() + b"\n" + json.dumps(body, sort_keys=True, separators=(",", ":"),
                                              ensure_ascii=False).encode("utf-8")


def mac(kind: str, fields: dict, key: bytes) -> str:
    return hmac.new(key, _canonical(kind, fields), hashlib.sha256).hexdigest()


def seal(kind: str, fields: dict, key: bytes) -> bytes:
    """`fields` with its `mac`, as the JSON body to publish."""
    out = dict(fields, v=VERSION, kind=kind)
    out["mac"] = mac(kind, out, key)
    return json.dumps(out, ensure_ascii=False).encode("utf-8")


def open_(kind: str, body: bytes, key: bytes) -> dict:
    """The fields of an authentic message of `kind`; WireError if it is not one."""
    try:
        fields = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise WireError("not JSON") from None
    if not isinstance(fields, dict):
        raise WireError("not a JSON object")
    if fields.get("kind") != kind or fields.get("v") != VERSION:
        raise WireError(f"not a {kind} v{VERSION} message (kind {fields.get('kind')!r}, v {fields.get('v')!r})")
    given = fields.get("mac")
    if not isinstance(given, str) or not hmac.compare_digest(given, mac(kind, fields, key)):
        raise WireError("bad HMAC: not made with this signer's secret, or altered on the way")
    return fields


def request(*, correlation_id: str, media_no: str, enterprise: str, business_key: str, data: bytes,
            timeout: float, key: bytes) -> tuple[bytes, float]:
    """A sealed signing request and its deadline (epoch seconds)."""
    deadline = round(time.time() + timeout, 3)
    body = seal(REQUEST, {
        "correlation_id": correlation_id, "media_no": media_no, "enterprise": enterprise,
        "business_key": business_key, "deadline": deadline, "nonce": os.urandom(16).hex(),
        "sha256": sha256_hex(data), "data": base64.b64encode(data).decode(),
    }, key)
    return body, deadline


def request_data(fields: dict) -> bytes:
    """The bytes to sign, checked against the request's (authenticated) SHA-256."""
    try:
        data = base64.b64decode(fields["data"], validate=True)
    except (KeyError, TypeError, ValueError):
        raise WireError("request without readable data") from None
    if sha256_hex(data) != fields.get("sha256"):
        raise WireError("the data does not match the request's SHA-256")
    return data


def reply(*, correlation_id: str, media_no: str, business_key: str, sha256: str, key: bytes,
          signature: bytes | None = None, error_kind: str = "", error: str = "") -> bytes:
    return seal(REPLY, {
        "correlation_id": correlation_id, "media_no": media_no, "business_key": business_key,
        "sha256": sha256, "signature": base64.b64encode(signature).decode() if signature else "",
        "error_kind": error_kind, "error": error[:500],
    }, key)


def heartbeat(*, media_no: str, state: str, detail: str, info: dict, certificate: bytes | None,
              algorithm: str, agent: str, key: bytes) -> bytes:
    return seal(HEARTBEAT, {
        "media_no": media_no, "state": state, "detail": detail[:300], "info": info, "algorithm": algorithm,
        "certificate": base64.b64encode(certificate).decode() if certificate else "",
        "agent": agent, "at": round(time.time(), 3),
    }, key)
