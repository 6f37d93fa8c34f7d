"""MOFCOM licences signed with the enterprise's MOFCOM electronic key on the virtual card over the
real PC/SC stack, and used on a declaration: the licence workflow of seed 004 end to end."""
from __future__ import annotations

import base64
import dataclasses
import json

import pytest
from lxml import etree

from card import crypto, testbed
from support import ROOT, Workspace, drain, import_declaration

MOFCOM_CODE = "2102776367555"
PIN = b"135790"
LIC = "{urn:swgw:licence}"
DEC = "{http://www.chinaport.gov.cn/dec}"
DXP = "{http://www.chinaport.gov.cn/dxp}"


def pin_file(tmp_path, name, pin: bytes) -> str:
    p = tmp_path / f"{name}.pin"
    p.write_bytes(pin + b"\n")
    p.chmod(0o600)
    return str(p)


@pytest.fixture
def mofcom_card(bed, pki_dir, tmp_path):
    """The MOFCOM key (商务部电子钥匙) as a virtual card with its own profile: bound to the MOFCOM code."""
    spec = testbed.issue_card(pki_dir, "mofcom-key", media_no="MOFCOMKEY0001", holder="大连远洋五金进出口有限公司",
                              enterprise=MOFCOM_CODE, pin=PIN)
    spec = dataclasses.replace(spec, state_file=tmp_path / "mofcom-key.state.json")
    card = bed.insert(spec, slot=0)
    yield spec, card
    bed.eject(0)


def key_workspace(tmp_path, pki, spec, pin_path: str, filings=("me", "agri")) -> Workspace:
    """A workspace whose MOFCOM key is the virtual card (kind pcsc); MOFCOM knows that key."""
    ws = Workspace(tmp_path / "ws", pki, families=["auto-import-license"], mofcom_filings=filings)
    cfg = ws.config.read_text()
    start = cfg.index("[signers.mofcom]")
    end = cfg.index("[transports.exchange]")
    ws.config.write_text(cfg[:start] + f'[signers.mofcom]\nkind = "pcsc"\nmedia_no = "{spec.media_no}"\n'
                         f'pin = {{ file = "{pin_path}" }}\nenterprise = "{MOFCOM_CODE}"\n' + cfg[end:])
    sb = ws.sandbox_config.read_text()
    ws.sandbox_config.write_text(sb.replace('keys = { "2102776367555" = "var/keys/mofcom.pem" }',
                                            f'keys = {{ "2102776367555" = "{spec.cert}" }}'))
    return ws


def soybean(apply_no: str) -> str:
    text = (ROOT / "samples" / "auto-import-license.xml").read_text(encoding="utf-8")
    return text.replace("AI2026000201", apply_no)


def documents(ws) -> dict[str, etree._Element]:
    out = {}
    for path in ws.received_envelopes():
        doc = etree.fromstring(base64.b64decode(etree.parse(str(path)).getroot().findtext(f"{DXP}Data")))
        out[etree.QName(doc).localname] = doc
    return out


def test_soybean_licence_signed_with_the_mofcom_key_is_used_by_a_declaration(bed, pki, tmp_path, mofcom_card):
    """Non-M&E soybeans, two goods, 上报并签章 with the MOFCOM key on the card → 复审通过 →
    海关入库成功; a declaration naming it by application number waits, then goes with the licence
    number; the write-off (报关单核注) shows on both traces."""
    spec, _ = mofcom_card
    ws = key_workspace(tmp_path, pki, spec, pin_file(tmp_path, "mofcom", PIN))
    try:
        ws.start_sandbox()
        ws.drop("import.csv", import_declaration("SOYDEC000001", "SOY2026000301"))  # first: it must wait
        ws.drop_to("auto-import-license", "soy.xml", soybean("SOY2026000301"))
        drain(ws, timeout=90)
    finally:
        ws.stop_all()
    docs = documents(ws)
    app, dec = docs["AutoImportLicenseMessage"], docs["DecMessage"]
    # the application: two goods, each with its 规格型号 line, signed by the MOFCOM key on the card
    goods = app.findall(f"{LIC}LicenseGoodsList/{LIC}LicenseGoods")
    assert [g.findtext(f"{LIC}GoodsCode") for g in goods] == ["1201901000", "1201902000"]
    assert [g.findtext(f"{LIC}TotalQty") for g in goods] == ["400000", "100000"]
    assert app.findtext(f"{LIC}LicenseHead/{LIC}BulkContractNo") == "DZ2026021000123"
    from gateway.documents import family
    verified = family("auto-import-license").verify_licence_signature(app)
    assert verified.certificate == crypto.to_der(spec.cert.read_bytes())
    assert app.findtext(f"{LIC}LicenseSign/{LIC}KeyNo") == crypto.summary(spec.cert.read_bytes()).serial_hex
    rows = {r["key"]: r for r in ws.status()}
    lic, decl = rows["SOY2026000301"], rows["SOYDEC000001"]
    licence_no = lic["keys"]["LicenseNo"]
    # the declaration went with the licence number, not the application number
    (docu,) = dec.findall(f"{DEC}DecLicenseDocus/{DEC}LicenseDocu")
    assert (docu.findtext(f"{DEC}DocuCode"), docu.findtext(f"{DEC}CertCode")) == ("7", licence_no)
    assert decl["state"] == "closed", decl
    assert lic["state"] == "in-use" and "报关余量 350000" in lic["last_receipt"], lic   # 非一批一证: 150000 used
    # traces: the declaration waited for 海关入库成功, and each names the other after the write-off
    dtrace = ws.swgw("trace", "SOYDEC000001", check=True).stdout
    assert "prepared -> awaiting-licence" in dtrace and "awaiting-licence -> prepared" in dtrace, dtrace
    assert "waits until 海关入库成功" in dtrace
    assert f"licence {licence_no}" in dtrace and "written off by this entry" in dtrace
    entry = decl["keys"]["EntryId"]
    assert decl["keys"]["LicenseNo"] == licence_no
    ltrace = ws.swgw("trace", "SOY2026000301", check=True).stdout
    for step in ("acknowledged -> pending-review", "pending-review -> approved", "approved -> licence-issued",
                 "licence-issued -> customs-pending", "customs-pending -> customs-accepted",
                 "customs-accepted -> in-use"):
        assert step in ltrace, ltrace
    assert f"written off by declaration SOYDEC000001 (entry {entry}" in ltrace
    assert "MOFCOM key MOFCOMKEY0001" in ltrace
    assert lic["keys"]["EntryId"] == entry
    # the electronic licence (电子许可证) is in the licence's outbox
    (e_licence,) = ws.outbox_of("auto-import-license").glob("SOY2026000301.licence.*.xml")
    assert etree.parse(str(e_licence)).findtext(f"{LIC}LicenseHead/{LIC}LicenseNo") == licence_no
    assert PIN not in (ws.var / "swgw.db").read_bytes()
    assert json.loads(spec.state_file.read_text())["tries_left"] == 3


def test_a_wrong_mofcom_pin_fails_the_application_after_one_try_and_never_again(bed, pki, tmp_path, mofcom_card):
    """The card's PIN safety for the MOFCOM key: one try used, the application fails before sending
    with the reason and an alarm; the next application does not try the PIN again."""
    spec, _ = mofcom_card
    ws = key_workspace(tmp_path, pki, spec, pin_file(tmp_path, "mofcom", b"000000"))
    try:
        ws.start_sandbox()
        ws.drop_to("auto-import-license", "soy.xml", soybean("PIN2026000001"))
        ws.drop_to("auto-import-license", "soy2.xml", soybean("PIN2026000002"))
        out = ws.swgw("run", "--drain", "--timeout", "20", "--settle", "1")
    finally:
        ws.stop_all()
    rows = {r["key"]: r for r in ws.status()}
    assert ws.received_envelopes() == [], "nothing was sent"
    assert json.loads(spec.state_file.read_text())["tries_left"] == 2, "exactly one PIN try was used"
    # the two are signed side by side (the software key's two workers): either may be the one
    # that tried the PIN; the other does not try it again, it fails naming the halted key
    traces = {key: ws.swgw("trace", key, check=True).stdout for key in ("PIN2026000001", "PIN2026000002")}
    assert {rows[key]["state"] for key in traces} == {"failed"}
    (tried,) = [key for key, trace in traces.items() if "MOFCOM key refused its PIN" in trace]
    (other,) = set(traces) - {tried}
    assert "halted after a refused PIN" in traces[other]
    (alarm,) = list((ws.root / "outbox" / "alarms").glob("*-mofcom-pin-refused.json"))
    assert "never retried" in alarm.read_text()
    assert "000000" not in out.stdout + out.stderr + alarm.read_text() + "".join(traces.values())
