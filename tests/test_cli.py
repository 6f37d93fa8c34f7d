"""The command line as an operator uses it: dry runs, errors without tracebacks, exit codes."""
from __future__ import annotations

from support import SAMPLE_CSV


def test_map_dry_run_shows_documents_and_changes_nothing(workspace):
    f = workspace.root / "declaration.csv"
    f.write_bytes(SAMPLE_CSV.read_bytes())
    out = workspace.swgw("map", "--dry-run", str(f), "--type", "declaration", "--xml")
    assert out.returncode == 0, out.stderr
    assert "2 declaration document(s)" in out.stdout
    assert "✓ DL2026110100001 (rows 2,3): valid DecMessage; 2 DecList" in out.stdout
    assert "<ClientSeqNo>DL2026110100002</ClientSeqNo>" in out.stdout
    assert f.exists() and not (workspace.var / "swgw.db").exists(), "a dry run writes no store"


def test_map_dry_run_lists_every_error_with_row_and_column(workspace):
    lines = SAMPLE_CSV.read_text(encoding="utf-8").splitlines()
    cells = lines[2].split(",")
    header = lines[0].split(",")
    cells[header.index("hs_code")] = "731815"
    cells[header.index("total")] = "9999"
    lines[2] = ",".join(cells)
    f = workspace.root / "bad.csv"
    f.write_text("\n".join(lines) + "\n", encoding="gb18030")
    out = workspace.swgw("map", "--dry-run", str(f), "--type", "declaration")
    assert out.returncode == 1
    assert "encoding gb18030" in out.stdout
    assert "bad.csv, row 3, column hs_code (column AA): DecList/CodeTS: HS code must be 10 digits " \
           "[rule pattern] value '731815'" in out.stdout
    assert "bad.csv, row 3, column total (column AI): DecList/DeclTotal: total 9999 is not unit price 0.35 × " \
           "quantity 20000 = 7000 [rule price*qty]" in out.stdout
    assert "✓ DL2026110100002" in out.stdout
    assert "Traceback" not in out.stdout + out.stderr


def test_config_errors_name_file_and_key_with_exit_2(workspace):
    workspace.config.write_text(workspace.config.read_text().replace('transport = "exchange"',
                                                                     'transport = "nowhere"'))
    # (`status`, `trace` and `subscriptions` read only [store] and answer without checking the rest)
    assert workspace.swgw("status").returncode == 0
    out = workspace.swgw("doctor")
    assert out.returncode == 2
    assert "[documents.declaration.transport] names transport 'nowhere'" in out.stderr
    assert "Traceback" not in out.stderr
    workspace.config.write_text("[gateway]\npoll_interval = 'fast'\n")
    out = workspace.swgw("doctor")
    assert out.returncode == 2 and "[gateway.poll_interval]" in out.stderr


def test_status_and_trace_of_unknown_key(workspace):
    assert workspace.swgw("status", check=True).stdout.strip() == "no messages"
    out = workspace.swgw("trace", "NOPE")
    assert out.returncode == 1 and "no message is known by 'NOPE'" in out.stderr


def test_doctor_checks_store_folders_transport_and_signer(workspace):
    workspace.swgw("db", "upgrade", check=True)
    out = workspace.swgw("doctor")
    assert out.returncode == 0, out.stdout
    assert "ok   store: schema revision 0009_lz4" in out.stdout
    assert "ok   signer op: card 8930000012345" in out.stdout
