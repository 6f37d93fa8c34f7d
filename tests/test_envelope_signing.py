"""The DxpMsg envelope and its XML-DSig: valid per the official XSD, verifiable by OpenSSL, tamper-evident."""
from __future__ import annotations

import base64
import datetime as dt
import subprocess

import pytest
from lxml import etree

from card import crypto, pki as card_pki
from card.signer import CardInfo
from card.software import SoftwareSigner
from support import DXP_XSD
from gateway import envelope, signing

DS = "{http://www.w3.org/2000/09/xmldsig#}"


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("sigkeys")
    ca = card_pki.ensure_ca(d / "ca")
    return {alg: card_pki.ensure_issued(d, f"op-{alg}", "op", ca, alg) for alg in ("sm2", "rsa", "ec")} | {"ca": ca}


def make(signer: SoftwareSigner, data: bytes = "<DecMessage>报关单</DecMessage>".encode()) -> bytes:
    env = envelope.Envelope(
        trans=envelope.TransInfo("cop-1", "DXPENT0000012345", ["DXPEDCSW00000001"],
                                 dt.datetime(2026, 11, 22, 9, 0, 0), "DecMessage"),
        data=data, file_name="cop-1.xml", ic_card="8930000012345", biz_keys={"ClientSeqNo": "DL1"})
    return signing.sign(envelope.wrap(env), signer, signer.info().cert_no)


def signer_for(issued) -> SoftwareSigner:
    return SoftwareSigner(issued.key, issued.cert, CardInfo("8930000012345", "王丹", "91210200MA0QC8N67X", ""))


@pytest.mark.parametrize("alg,uri", [("sm2", "http://www.chinaport.gov.cn/2022/04/xmldsig#sm2-sm3"),
                                     ("rsa", "http://www.w3.org/2000/09/xmldsig#rsa-sha1"),
                                     ("ec", "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256")])
def test_signed_envelope_validates_against_official_xsd(keys, alg, uri):
    data = make(signer_for(keys[alg]))
    root = etree.fromstring(data)
    schema = etree.XMLSchema(etree.parse(str(DXP_XSD)))
    assert schema.validate(root), schema.error_log
    assert root.find(f"{DS}Signature/{DS}SignedInfo/{DS}SignatureMethod").get("Algorithm") == uri
    assert root.find(f"{DS}Signature/{DS}SignedInfo/{DS}Reference").get("URI") == ""
    assert root.findtext(f"{DS}Signature/{DS}KeyInfo/{DS}KeyName") == crypto.summary(
        keys[alg].cert.read_bytes()).serial_hex
    assert signing.verify(root).cert_no
    assert envelope.unwrap(root).data.decode() == "<DecMessage>报关单</DecMessage>"


def test_sm2_signature_verifies_with_openssl_cli(keys, tmp_path):
    """An implementation other than the signer's checks SM2 over SignedInfo with the default ID."""
    root = etree.fromstring(make(signer_for(keys["sm2"])))
    signed_info = root.find(f"{DS}Signature/{DS}SignedInfo")
    (tmp_path / "data").write_bytes(signing.c14n(signed_info))
    raw = base64.b64decode(root.findtext(f"{DS}Signature/{DS}SignatureValue"))
    (tmp_path / "sig").write_bytes(crypto.raw_to_der(raw))
    subprocess.run(["openssl", "x509", "-in", str(keys["sm2"].cert), "-pubkey", "-noout", "-out",
                    str(tmp_path / "pub.pem")], check=True)
    cmd = ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", str(tmp_path / "pub.pem"), "-rawin",
           "-digest", "sm3", "-pkeyopt", "distid:1234567812345678", "-in", str(tmp_path / "data"),
           "-sigfile", str(tmp_path / "sig")]
    ok = subprocess.run(cmd, capture_output=True, text=True)
    assert "Signature Verified Successfully" in ok.stdout, ok.stdout + ok.stderr
    (tmp_path / "data").write_bytes(signing.c14n(signed_info).replace(b"sm3", b"sm4"))
    bad = subprocess.run(cmd, capture_output=True, text=True)
    assert "Signature Verified Successfully" not in bad.stdout
    # the digest is SM3 of the canonical envelope without its Signature, as OpenSSL computes it
    sig = root.find(f"{DS}Signature")
    root.remove(sig)
    (tmp_path / "env").write_bytes(signing.c14n(root))
    out = subprocess.run(["openssl", "dgst", "-sm3", "-binary", str(tmp_path / "env")], capture_output=True)
    assert base64.b64encode(out.stdout).decode() == sig.findtext(f"{DS}SignedInfo/{DS}Reference/{DS}DigestValue")


def test_changed_data_is_a_digest_mismatch(keys):
    root = etree.fromstring(make(signer_for(keys["sm2"])))
    root.find(f"{{{envelope.DXP_NS}}}Data").text = base64.b64encode(b"<DecMessage>forged</DecMessage>").decode()
    with pytest.raises(signing.SignatureError) as exc:
        signing.verify(root)
    assert exc.value.code == "1004"


def test_changed_signed_info_is_a_bad_signature(keys):
    root = etree.fromstring(make(signer_for(keys["sm2"])))
    dv = root.find(f"{DS}Signature/{DS}SignedInfo/{DS}Reference/{DS}DigestValue")
    dv.text = base64.b64encode(b"\0" * 32).decode()
    with pytest.raises(signing.SignatureError) as exc:
        signing.verify(root)
    assert exc.value.code == "1001"


def test_certificate_from_another_ca_is_not_trusted(keys, tmp_path):
    other_ca = card_pki.ensure_ca(tmp_path / "other")
    with pytest.raises(crypto.InvalidSignature):
        crypto.verify_issued_by(keys["sm2"].cert.read_bytes(), other_ca.cert.read_bytes())
    crypto.verify_issued_by(keys["sm2"].cert.read_bytes(), keys["ca"].cert.read_bytes())
