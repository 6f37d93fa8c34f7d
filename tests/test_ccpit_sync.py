"""数据同步: `swgw sync ccpit filings` brings in a filing registered elsewhere (not sent by swgw, not
in the CSV) and the certificate that names it goes; `sync ccpit enterprise`; the history; the daily
job runs by default."""
from __future__ import annotations

import json

from support import ROOT, Workspace, wait_for

REFERENCE = ROOT / "samples" / "origin.xml"
ELSEWHERE = "26S2102M9997/00777"


def rows(ws, *args) -> dict:
    return {r["key"]: r for r in json.loads(ws.swgw("status", "--json", *args, check=True).stdout)}


def test_sync_brings_in_a_filing_registered_elsewhere_and_the_certificate_goes(tmp_path, pki):
    ws = Workspace(tmp_path, pki, families=["origin", "origin-filing"])
    ws.sandbox_config.write_text(ws.sandbox_config.read_text().replace(
        'known_filings = ["26S2102M9997/00054"]',
        'known_filings = ["26S2102M9997/00054"]\nenterprise_name = "大连远洋五金进出口有限公司"') + f'''
[[origin.registered_filings]]
filing_no = "{ELSEWHERE}"
hs_code = "848180"
name_en = "STAINLESS STEEL BALL VALVES"
areas = ["E", "K"]
''')
    cert = REFERENCE.read_text(encoding="utf-8").replace("INV-2026-0331", "INV-SYNC-1").replace(
        "26S2102M9997/00054", ELSEWHERE)
    try:
        ws.start_sandbox()
        ws.start_daemon()
        ws.drop_to("origin", "before.xml", cert)
        wait_for(lambda: rows(ws, "--type", "origin").get("INV-SYNC-1", {}).get("state") == "invalid", 30,
                 what="the certificate refused: the filing is not known yet")
        out = ws.swgw("sync", "ccpit", "filings", "--wait", "40")
        assert out.returncode == 0, out.stdout + out.stderr
        assert "同步商品备案信息 for 91210200MA0QC8N67X queued" in out.stdout and ": done," in out.stdout
        ws.drop_to("origin", "after.xml", cert)
        wait_for(lambda: sorted(m["state"] for m in json.loads(ws.swgw(
            "status", "--json", "--key", "INV-SYNC-1", check=True).stdout)) == ["approved", "invalid"], 60,
            what="the certificate naming the synced filing approved")
        out = ws.swgw("sync", "ccpit", "enterprise", "--enterprise", "91210200MA0QC8N67X", "--wait", "40")
        assert out.returncode == 0 and "done, 1 record(s) EntName 大连远洋五金进出口有限公司" in out.stdout, out.stdout
        history = wait_for(lambda: (h := json.loads(ws.swgw("sync", "--history", "--json", check=True).stdout))
                           and any(r["requested_by"] == "scheduler" for r in h) and h, 30,
                           what="the daily job's first run (5 s after start)")
    finally:
        ws.stop_all()
    mine = [r for r in history if r["requested_by"] != "scheduler"]
    assert [(r["type"], r["status"], r["enterprise"]) for r in mine] == [
        ("enterprise", "done", "91210200MA0QC8N67X"), ("filings", "done", "91210200MA0QC8N67X")]
    assert mine[1]["count"] >= 1 and mine[1]["answered_at"] and mine[1]["requested_by"]
    table = ws.swgw("sync", "--history", check=True).stdout
    assert "TYPE" in table and "REQUESTED BY" in table and "scheduler" in table
    assert "sync request" not in ws.swgw("sync", "ccpit", "filings", "--enterprise", "nope").stdout
