"""Attachments (随附单据): a declaration dropped as a .zip with its invoice and contract arrives at
the sandbox with both files (EdocRealation + the package), on the folder exchange and on the
desktop client's OutBox; every hostile attachment refuses its own declaration with a located
error while the file's other declarations go on."""
from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import stat
import zipfile

import pytest
import sqlalchemy as sa
from lxml import etree

from support import Workspace, csv_rows, drain, use_transport, wait_for
from gateway import attachments, zipsafe

DEC = "{http://www.chinaport.gov.cn/dec}"
DXP = "{http://www.chinaport.gov.cn/dxp}"
# hand-made files of each type, as a scanner or a PDF printer writes their first bytes
INVOICE = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n% commercial invoice INV-2026-0891\n%%EOF\n"
CONTRACT = b"%PDF-1.4\n% sales contract HT-2026-0891\n" + bytes(range(256)) * 8 + b"\n%%EOF\n"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 64
LIMIT = 64 * 1024


def with_attachments(rows: str, names: dict[str, str]) -> str:
    """Add the attachments column; names: ClientSeqNo -> the cell text."""
    lines = rows.strip().split("\n")
    out = [lines[0] + ",attachments"]
    for line in lines[1:]:
        key = line.split(",", 1)[0]
        out.append(line + "," + names.get(key, ""))
    return "\n".join(out) + "\n"


def member(zf: zipfile.ZipFile, name: str, data: bytes, mode: int = 0o100644) -> None:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = mode << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    zf.writestr(info, data)


def package(csv_text: str, files: dict[str, bytes], links: dict[str, str] = {}) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        member(zf, "declarations.csv", csv_text.encode("utf-8"))
        for name, data in files.items():
            member(zf, name, data)
        for name, target in links.items():
            member(zf, name, target.encode(), 0o120777)
    return buf.getvalue()


def store_rows(ws, sql: str):
    engine = sa.create_engine(ws.store_url)
    try:
        with engine.connect() as c:
            return c.exec_driver_sql(sql).fetchall()
    finally:
        engine.dispose()


def limit_attachments(ws):
    ws.config.write_text(ws.config.read_text() + f"\n[documents.declaration.attachments]\nmax_bytes = {LIMIT}\n")


def test_zip_drop_carries_invoice_and_contract_and_refuses_each_hostile_attachment(tmp_path, pki):
    ws = Workspace(tmp_path, pki)
    limit_attachments(ws)
    names = {
        "ATT0000000": "00000001:invoice.pdf; 00000004:contract.pdf",
        "ATT0000001": "00000001:../outside.pdf",             # climbs out of the package
        "ATT0000002": "00000001:/etc/passwd.pdf",            # absolute
        "ATT0000003": "00000001:photo.pdf",                  # a JPEG named .pdf
        "ATT0000004": "00000001:notes.pdf",                  # text, not an allowed type
        "ATT0000005": "00000001:missing.pdf",                # not in the package
        "ATT0000006": "00000001:big.pdf",                    # over max_bytes
        "ATT0000007": "00000001:bomb.pdf",                   # tiny in the zip, huge expanded
        "ATT0000008": "00000001:link.pdf",                   # a symbolic link member
        "ATT0000009": "00000009:invoice.pdf",                # a type code not in edoc_code
    }
    rows = with_attachments(csv_rows(10, lines=1, prefix="ATT"), names)
    bomb = b"%PDF-1.7\n" + b"\0" * (50 * 1024 * 1024)
    data = package(rows, {"invoice.pdf": INVOICE, "contract.pdf": CONTRACT, "photo.pdf": JPEG,
                          "notes.pdf": b"just some text\n", "big.pdf": b"%PDF-1.7\n" + os.urandom(LIMIT),
                          "bomb.pdf": bomb}, links={"link.pdf": "/etc/passwd"})
    assert len(data) < 200_000, "the bomb is small in the zip"
    ws.start_sandbox()
    ws.drop("batch.zip", data)
    drain(ws)

    states = {r["key"]: r["state"] for r in ws.status()}
    assert states.pop("ATT0000000") == "closed"
    assert set(states.values()) == {"invalid"} and len(states) == 9

    # what the sandbox received: the DxpMsg's data is the package; EdocRealation names both files
    (env_path,) = ws.received_envelopes()
    env = etree.parse(str(env_path)).getroot()
    assert env.findtext(f"{DXP}AddInfo/{DXP}FileName").endswith(".zip")
    name, message, files = attachments.unpack(base64.b64decode(env.findtext(f"{DXP}Data")))
    dec = etree.fromstring(message)
    edocs = dec.findall(f"{DEC}EdocRealation")
    assert [(e.findtext(f"{DEC}EdocCode"), e.findtext(f"{DEC}EdocCopId"), e.findtext(f"{DEC}EdocSize"))
            for e in edocs] == [("00000001", "invoice.pdf", str(len(INVOICE))),
                                ("00000004", "contract.pdf", str(len(CONTRACT)))]
    ids = [e.findtext(f"{DEC}EdocID") for e in edocs]
    assert all(i.startswith("0900") and i.endswith(".pdf") and "IM" in i for i in ids)
    assert files == {ids[0]: INVOICE, ids[1]: CONTRACT}
    kept = env_path.with_name(env_path.name + ".attachments")
    assert sorted(p.read_bytes() for p in kept.iterdir()) == sorted([INVOICE, CONTRACT])

    # hashed and kept in the store
    rows_ = store_rows(ws, "SELECT a.name, a.code, a.size, a.sha256, a.media_type FROM message_attachments a "
                           "JOIN messages m ON m.id = a.message_id WHERE m.business_key = 'ATT0000000' ORDER BY seq")
    assert [tuple(r) for r in rows_] == [
        ("invoice.pdf", "00000001", len(INVOICE), hashlib.sha256(INVOICE).hexdigest(), "application/pdf"),
        ("contract.pdf", "00000004", len(CONTRACT), hashlib.sha256(CONTRACT).hexdigest(), "application/pdf")]
    assert "invoice.pdf as 0900" in ws.swgw("trace", "ATT0000000", check=True).stdout

    # each hostile one refused with its row, column and rule
    report = json.loads((ws.inbox / ".error" / "batch.zip.error.json").read_text(encoding="utf-8"))
    assert report["outcome"] == "partial" and [a["key"] for a in report["accepted"]] == ["ATT0000000"]
    got = {r["key"]: r["errors"][0] for r in report["rejected"]}
    want = {"ATT0000001": "attachment-name", "ATT0000002": "attachment-name", "ATT0000003": "attachment-type",
            "ATT0000004": "attachment-type", "ATT0000005": "attachment-missing", "ATT0000006": "attachment-size",
            "ATT0000007": "attachment-size", "ATT0000008": "attachment-name", "ATT0000009": "code"}
    assert {k: e["rule"] for k, e in got.items()} == want
    for key, err in got.items():
        assert err["column"] == "attachments" and err["row"] == int(key[-1]) + 2, err
    assert "expands past" in got["ATT0000007"]["message"] and "symbolic link" in got["ATT0000008"]["message"]
    assert "JPEG" in got["ATT0000003"]["message"] and "climbs out" in got["ATT0000001"]["message"]


def test_attachments_from_the_inbox_folder_never_follow_links(tmp_path, pki):
    ws = Workspace(tmp_path, pki)
    folder = ws.inbox / "attachments"
    folder.mkdir(parents=True)
    (folder / "invoice.pdf").write_bytes(INVOICE)
    secret = tmp_path / "secret.pdf"
    secret.write_bytes(INVOICE)
    os.symlink(secret, folder / "linked.pdf")
    rows = with_attachments(csv_rows(2, lines=1, prefix="FLD"), {"FLD0000000": "00000001:invoice.pdf",
                                                                  "FLD0000001": "00000001:linked.pdf"})
    f = tmp_path / "dry.csv"
    f.write_text(rows, encoding="utf-8")
    out = ws.swgw("map", "--dry-run", str(f), "--type", "declaration", "--xml")
    assert out.returncode == 1
    assert "✓ FLD0000000 (rows 2): valid DecMessage; 1 DecList, 1 EdocRealation" in out.stdout
    assert "<EdocCopId>invoice.pdf</EdocCopId>" in out.stdout
    assert ("dry.csv, row 3, column attachments (column AQ): attachments: attachment 'linked.pdf' is a symbolic "
            "link; links are never followed [rule attachment-name] value 'linked.pdf'") in out.stdout


def test_the_desktop_client_gets_the_declaration_and_its_attachments_as_one_zip(tmp_path, pki):
    imp = tmp_path / "ImpPath"
    ws = Workspace(tmp_path / "ws", pki)
    cfg = lambda header, role: (f'{header}\nkind = "clientfolder"\nimp_path = "{imp}"\nmodule = "DecCus001"\n'
                                f'role = "{role}"\ncreate = true\n')
    use_transport(ws, cfg("[transports.exchange]", "gateway"), cfg("[transport]", "client"))
    rows = with_attachments(csv_rows(2, lines=1, prefix="CLZ"), {"CLZ0000000": "00000001:invoice.pdf;00000004:contract.pdf"})
    try:
        ws.start_sandbox()
        ws.start_daemon()
        ws.drop("batch.zip", package(rows, {"invoice.pdf": INVOICE, "contract.pdf": CONTRACT}))
        wait_for(lambda: len(ws.status()) == 2 and {r["state"] for r in ws.status()} == {"closed"}, 60,
                 what="both declarations closed through the client")
    finally:
        ws.stop_all()
    sent = sorted((imp / "DecCus001" / "SentBox").iterdir())
    zips = [p for p in sent if p.suffix == ".zip"]
    assert len(sent) == 2 and len(zips) == 1, "the one with attachments goes as the client's .zip package"
    name, message, files = attachments.unpack(zips[0].read_bytes())
    assert name == zips[0].stem + ".xml"
    dec = etree.fromstring(message)
    assert dec.findtext(f"{DEC}DecSign/{DEC}ClientSeqNo") == "CLZ0000000"
    assert sorted(files.values()) == sorted([INVOICE, CONTRACT])
    assert {e.findtext(f"{DEC}EdocID") for e in dec.iter(f"{DEC}EdocRealation")} == set(files)


def test_package_and_name_checks():
    with pytest.raises(zipsafe.UnsafeZip, match="climbs out"):
        zipsafe.check_name("a/../../x.pdf")
    with pytest.raises(zipsafe.UnsafeZip, match="absolute"):
        zipsafe.check_name("C:/x.pdf")
    assert attachments.sniff(INVOICE) == "pdf" and attachments.sniff(JPEG) == "jpeg"
    assert attachments.sniff(b"\x89PNG\r\n\x1a\n....") == "png"
    ofd = io.BytesIO()
    with zipfile.ZipFile(ofd, "w") as zf:
        zf.writestr("OFD.xml", "<ofd:OFD xmlns:ofd='http://www.ofdspec.org/2016'/>")
    assert attachments.sniff(ofd.getvalue()) == "ofd"
    # a header that lies about the expanded size does not get past the streaming count
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("x.pdf", b"%PDF-" + b"\0" * 300_000)
    raw = bytearray(buf.getvalue())
    for sig, off in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):     # uncompressed size fields
        at = raw.find(sig)
        raw[at + off:at + off + 4] = (100).to_bytes(4, "little")
    zf = zipfile.ZipFile(io.BytesIO(bytes(raw)))
    with pytest.raises(zipsafe.UnsafeZip):
        zipsafe.Budget(zipsafe.Limits(5, 1000, 1000)).read(zf, zf.infolist()[0])
    # the package is deterministic: a re-send is byte-identical
    assert attachments.package("a.xml", b"<a/>", [("b.pdf", INVOICE)]) == \
        attachments.package("a.xml", b"<a/>", [("b.pdf", INVOICE)])


def test_a_certificate_of_origin_carries_its_supporting_documents(tmp_path, pki):
    from support import ROOT

    ws = Workspace(tmp_path, pki, families=["origin"])
    text = (ROOT / "samples" / "origin.xml").read_text(encoding="utf-8").replace(
        "    <Goods>", "    <Attachments>\n      <File>01:invoice.pdf</File>\n      <File>contract.pdf</File>\n"
                      "    </Attachments>\n    <Goods>")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        member(zf, "origin.xml", text.encode("utf-8"))
        member(zf, "invoice.pdf", INVOICE)
        member(zf, "contract.pdf", CONTRACT)
    ws.start_sandbox()
    ws.drop_to("origin", "cert.zip", buf.getvalue())
    drain(ws)
    (row,) = ws.status()
    assert row["state"] == "approved", row
    (env_path,) = [p for p in ws.received_envelopes()
                   if b"CcpitSyncRequest" not in base64.b64decode(etree.parse(str(p)).getroot().findtext(f"{DXP}Data"))]
    _, message, files = attachments.unpack(base64.b64decode(etree.parse(str(env_path)).getroot().findtext(f"{DXP}Data")))
    doc = etree.fromstring(message)
    org = "{urn:swgw:origin}"
    got = [(a.findtext(f"{org}AttachType"), a.findtext(f"{org}FileName"), a.findtext(f"{org}Sha256"))
           for a in doc.iter(f"{org}CertAttachment")]
    assert got == [("01", "invoice.pdf", hashlib.sha256(INVOICE).hexdigest()),
                   ("05", "contract.pdf", hashlib.sha256(CONTRACT).hexdigest())], "05: the mapping's default_code"
    assert sorted(files.values()) == sorted([INVOICE, CONTRACT])


def test_a_licence_application_carries_its_contract_and_each_hostile_attachment_refuses_its_own(tmp_path, pki):
    """合同信息表 / 上传附件: an export licence application dropped as a .zip with its contract arrives
    with it (LicenseAttachment + the package, the MOFCOM key's signature over the application);
    the batch's hostile applications are refused each at its own attachments entry."""
    from support import ROOT
    from gateway.documents import family

    ws = Workspace(tmp_path, pki, families=["export-license"])
    ws.config.write_text(ws.config.read_text() + f"\n[documents.export-license.attachments]\nmax_bytes = {LIMIT}\n")
    sample = json.loads((ROOT / "samples" / "export-license.json").read_text(encoding="utf-8"))["applications"][0]
    names = {"EL-OK": ["01:contract.pdf", "02:contract-info.pdf"], "EL-UP": ["01:../contract.pdf"],
             "EL-MISS": ["missing.pdf"], "EL-TYPE": ["01:scan.pdf"], "EL-BOMB": ["01:bomb.pdf"],
             "EL-CODE": ["99:contract.pdf"]}
    apps = [{**sample, "apply_no": key, "attachments": files} for key, files in names.items()]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        member(zf, "export-license.json", json.dumps({"applications": apps}, ensure_ascii=False).encode("utf-8"))
        member(zf, "contract.pdf", CONTRACT)
        member(zf, "contract-info.pdf", INVOICE)
        member(zf, "scan.pdf", JPEG)                                  # a JPEG named .pdf
        member(zf, "bomb.pdf", b"%PDF-1.4\n" + b"\0" * (4 * 1024 * 1024))   # expands far past the limit
    ws.start_sandbox()
    ws.drop_to("export-license", "licences.zip", buf.getvalue())
    drain(ws)
    states = {r["key"]: r["state"] for r in ws.status()}
    assert states.pop("EL-OK") == "written-off", "approved, in customs and used up like the reference one"
    assert set(states.values()) == {"invalid"} and len(states) == 5, states

    (env_path,) = ws.received_envelopes()
    data = base64.b64decode(etree.parse(str(env_path)).getroot().findtext(f"{DXP}Data"))
    _, message, files = attachments.unpack(data)
    doc = etree.fromstring(message)
    lic = "{urn:swgw:licence}"
    got = [(a.findtext(f"{lic}AttachType"), a.findtext(f"{lic}FileName"), a.findtext(f"{lic}FileSize"),
            a.findtext(f"{lic}Sha256"), files[a.findtext(f"{lic}AttachName")])
           for a in doc.iter(f"{lic}LicenseAttachment")]
    assert got == [("01", "contract.pdf", str(len(CONTRACT)), hashlib.sha256(CONTRACT).hexdigest(), CONTRACT),
                   ("02", "contract-info.pdf", str(len(INVOICE)), hashlib.sha256(INVOICE).hexdigest(), INVOICE)]
    schema = etree.XMLSchema(etree.parse(str(ROOT / "xsd" / "licence.xsd")))
    assert schema.validate(doc), schema.error_log
    family("export-license").verify_licence_signature(doc)   # the MOFCOM key signed the application with them
    kept = env_path.with_name(env_path.name + ".attachments")
    assert sorted(p.read_bytes() for p in kept.iterdir()) == sorted([CONTRACT, INVOICE]), "the sandbox has both"

    want = {"EL-UP": "attachment-name", "EL-MISS": "attachment-missing", "EL-TYPE": "attachment-type",
            "EL-BOMB": "attachment-size", "EL-CODE": "code"}
    report = json.loads((ws.inbox_of("export-license") / ".error" / "licences.zip.error.json").read_text(encoding="utf-8"))
    assert report["outcome"] == "partial" and [a["key"] for a in report["accepted"]] == ["EL-OK"]
    got = {r["key"]: r["errors"] for r in report["rejected"]}
    assert {k: [e["rule"] for e in errs] for k, errs in got.items()} == {k: [r] for k, r in want.items()}
    for key, (err,) in got.items():
        assert err["column"] == "attachments" and err["row"] is not None, err
    assert "climbs out" in got["EL-UP"][0]["message"] and "JPEG" in got["EL-TYPE"][0]["message"]
    assert "expands past" in got["EL-BOMB"][0]["message"]
