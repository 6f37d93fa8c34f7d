"""The dates and times receipts carry, in every format the platform and the desktop client write.

Seen in real receipts:
- `2019-03-14T22:49:37`            DEC_RESULT NOTICE_DATE (and with a space instead of the T)
- `20180208T15032200`              legacy DEC_DATA NOTICE_DATE: date, T, hhmmss and hundredths
- `2019-03-14`, `20190314`         D_DATE, I_E_DATE, DxpRep NoticeTime
- `2018-12-27T22:51:01.140+08:00`  DxpMsg CreatTime: milliseconds and a zone offset
- `20261122103000`                 14-digit timestamps (inspection receipts)

`parse` gives a datetime (aware when the text has a zone) or a date, or None when the text is
empty or in no format swgw knows (the caller keeps the raw text then).
"""
from __future__ import annotations

import datetime as dt
import re

_PATTERNS = (
    # 2019-03-14T22:49:37[.140][+08:00|Z]  (T or a space)
    (re.compile(r"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?(Z|[+-]\d{2}:?\d{2})?"), "iso"),
    # 20180208T15032200  (hundredths after the seconds)
    (re.compile(r"(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})(\d{0,6})"), "compact-t"),
    # 20261122103000[123]
    (re.compile(r"(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{0,6})"), "compact"),
    (re.compile(r"(\d{4})-(\d{2})-(\d{2})"), "date"),
    (re.compile(r"(\d{4})(\d{2})(\d{2})"), "date"),
)


def parse(text: str | None) -> dt.datetime | dt.date | None:
    text = (text or "").strip()
    if not text:
        return None
    for pattern, form in _PATTERNS:
        m = pattern.fullmatch(text)
        if not m:
            continue
        try:
            if form == "date":
                return dt.date(int(m[1]), int(m[2]), int(m[3]))
            fraction = m[7] or ""
            micro = int((fraction + "000000")[:6]) if fraction else 0
            value = dt.datetime(int(m[1]), int(m[2]), int(m[3]), int(m[4]), int(m[5]), int(m[6]), micro)
            if form == "iso" and m[8]:
                value = value.replace(tzinfo=_zone(m[8]))
            return value
        except ValueError:   # 2019-13-45: digits in the right places, not a date
            return None
    return None


def _zone(text: str) -> dt.timezone:
    if text == "Z":
        return dt.timezone.utc
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    return dt.timezone(sign * dt.timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))


def iso(text: str | None) -> str:
    """The value in ISO 8601, or "" when it is not a date swgw knows."""
    value = parse(text)
    return value.isoformat() if value is not None else ""
