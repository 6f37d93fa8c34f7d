"""`swgw subscribe --kinds` knows every family's receipt kinds (and still notes a typo)."""
from __future__ import annotations


def test_subscribe_knows_every_familys_receipt_kinds(workspace, tmp_path):
    kinds = ("licence-approval,licence-customs,origin-audit,filing-audit,inspection-order,feedback-receipt,"
             "dec-result,import-response,dxp-rep,send-failed")
    out = workspace.swgw("subscribe", "--enterprise", "91210200MA0QC8N67X", "--kinds", kinds,
                         "--folder", str(tmp_path / "subs"), check=True)
    assert "note:" not in out.stderr, out.stderr
    out = workspace.swgw("subscribe", "--enterprise", "91210200MA0QC8N67X", "--kinds", "origin-audti",
                         "--folder", str(tmp_path / "subs"), check=True)
    assert "note: receipt kind(s) origin-audti are not among" in out.stderr
