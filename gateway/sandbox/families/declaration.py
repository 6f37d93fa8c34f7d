"""The customs declaration: DecImportResponse, then DEC_RESULT channels (L J P R, or a rule's).

Only a declaration submitted to be declared (DecSign/OperType C, or D with transit) goes on to
customs; a draft (G 暂存) or an upload (A, B, E 上载) is only saved: its import response, no channels."""
from __future__ import annotations

import time

from gateway.sandbox import receipts
from gateway.sandbox.families import Play, inspection, match

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
    declared = p.text("OperType") in ("C", "D")
    p.later(sc.import_delay, p.import_name(True),
            p.reply("DecImportResponse", receipts.import_response(client_seq, seq_no, True,
                                                                  "导入成功" if declared else "暂存成功"), keys))
    if not declared:
        return
    channels = rule.channels if rule and rule.channels else sc.channels
    entry_id = f"{customs}{year}{'1' if p.text('IEFlag') == 'I' else '0'}{n:09d}"[:18]
    for i, channel in enumerate(channels, start=1):
        note = rule.note if rule and i == len(channels) else ""
        payload = receipts.dec_result(seq_no, entry_id if channel not in ("E", "Y") else "", channel, note,
                                      customs, p.text("IEDate"))
        p.later(sc.import_delay + sc.delay * i, f"Receipt_{base}_{i + 1}_{channel}.xml",
                p.reply("DEC_DATA", payload, keys))
        if channel == "C":  # 查验: customs also pushes an inspection order to the enterprise
            inspection.issue(p, sc.import_delay + sc.delay * i + sc.delay / 2, entry_id, customs, n, keys)
