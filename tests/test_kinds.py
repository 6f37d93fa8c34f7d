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


def test_the_help_lists_the_kinds_and_other_commands_do_not_load_the_receipt_parser(workspace):
    """The kinds come from the receipt parser (lxml, the envelope, signing): asked for when
    `swgw subscribe --help` shows them or --kinds is checked, not paid by `swgw status`."""
    import subprocess
    import sys

    help_text = " ".join(workspace.swgw("subscribe", "--help", check=True).stdout.split()).replace("- ", "-")
    assert "dxp-rep" in help_text and "feedback-receipt" in help_text   # (click wraps at the hyphens)
    loaded = subprocess.run([sys.executable, "-c", "import sys, gateway.cli; "
                             "print('gateway.receipts.parse' in sys.modules)"],
                            capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "False"
