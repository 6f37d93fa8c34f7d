"""The customs declaration: DecImportResponse, then DEC_RESULT channels (L J P R, or a rule's)."""
from __future__ import annotations

import time
from decimal import Decimal

from gateway.sandbox import receipts
from gateway.sandbox.families import Play, inspection, licence, match

ROOTS = ("DecMessage",)


def play(p: Play) -> None:
    sc = p.settings.declaration
    client_seq = p.text("ClientSeqNo")
    customs = p.text("CustomMaster") or "0000"
    rule = match(sc.rules, p.text)
    keys = {"ClientSeqNo": client_seq}
    if rule and rule.silent:
        return
    n = p.serial()
    year = time.strftime("%Y")
    seq_no = f"{customs}{year}{n:010d}"[:18]
    errors = p.schema_errors()
    import_error = rule.import_error if rule else None
    if errors and not import_error:
        import_error = f"报文格式错误: {errors[0].path}: {errors[0].reason}"
    base = p.base
    if import_error:
        p.later(sc.import_delay, p.import_name(False),
                p.reply("DecImportResponse", receipts.import_response(client_seq, "", False, import_error), keys))
        return
    p.later(sc.import_delay, p.import_name(True),
            p.reply("DecImportResponse", receipts.import_response(client_seq, seq_no, True, "导入成功"), keys))
    channels = rule.channels if rule and rule.channels else sc.channels
    entry_id = f"{customs}{year}{'1' if p.text('IEFlag') == 'I' else '0'}{n:09d}"[:18]
    refused = _licences(p, channels, entry_id, sc)
    if refused:   # customs checks the licences it names (联网核查): a licence it cannot use is 退单
        channels, rule = ["E"], None
        payload = receipts.dec_result(seq_no, "", "E", refused, customs, p.text("IEDate"))
        p.later(sc.import_delay + sc.delay, f"Receipt_{base}_2_E.xml", p.reply("DEC_DATA", payload, keys))
        return
    for i, channel in enumerate(channels, start=1):
        note = rule.note if rule and i == len(channels) else ""
        payload = receipts.dec_result(seq_no, entry_id if channel not in ("E", "Y") else "", channel, note,
                                      customs, p.text("IEDate"))
        p.later(sc.import_delay + sc.delay * i, f"Receipt_{base}_{i + 1}_{channel}.xml",
                p.reply("DEC_DATA", payload, keys))
        if channel == "C":  # 查验: customs also pushes an inspection order to the enterprise
            inspection.issue(p, sc.import_delay + sc.delay * i + sc.delay / 2, entry_id, customs, n, keys)


def _licences(p: Play, channels: list[str], entry_id: str, sc) -> str:
    """报关单核注: each licence the declaration names is written off when it is released (P/I, or
    its last channel); '' or why customs refuses the declaration."""
    certs = [el.text.strip() for el in p.doc.iter()
             if isinstance(el.tag, str) and el.tag.endswith("}CertCode") and el.text and el.text.strip()]
    if not certs:
        return ""
    released = next((i for i, c in enumerate(channels, start=1) if c in ("P", "I")), len(channels))
    qty = sum((Decimal(el.text) for el in p.doc.iter()
               if isinstance(el.tag, str) and el.tag.endswith("}GQty") and el.text), Decimal(0))
    for cert in certs:
        why = licence.write_off(p, cert, entry_id, qty, sc.import_delay + sc.delay * released + sc.delay / 2)
        if why:
            return why
    return ""
