"""XML-DSig as cards and signing services write it: every variant verifies, the digest algorithm comes
from DigestMethod, a changed character is refused, and `swgw verify` reports what it checked."""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import subprocess
import sys

import pytest
from lxml import etree

from card import crypto
from card.signer import CardInfo
from card.software import SoftwareSigner
from gateway import envelope, signing
from support import DXP_XSD, ROOT

FIX = ROOT / "tests" / "fixtures" / "signatures"
DS = "{http://www.w3.org/2000/09/xmldsig#}"


def swgw_verify(path, *args):
    return subprocess.run([sys.executable, "-m", "gateway.cli", "verify", str(path), *args],
                          capture_output=True, text=True, cwd=ROOT)


def test_swgw_verify_accepts_w3_sm2_sm3_with_sha1_digest_and_refuses_one_changed_character(tmp_path):
    """The fixture is assembled by hand (make_w3_sm2_sha1.py: hashlib SHA-1, tongsuopy SM2, an OpenSSL
    certificate shaped like a real 中国电子口岸 one), not by gateway.signing."""
    good = FIX / "ceb_w3_sm2_sha1.xml"
    proc = swgw_verify(good, "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    assert report["verified"] and report["root"] == "CEB311Message"
    assert report["signature_method"] == "http://www.w3.org/2000/09/xmldsig#sm2-sm3"
    assert report["digest_method"] == "http://www.w3.org/2000/09/xmldsig#sha1"
    cert = report["certificate"]
    assert cert["serial"] == "0300000000123abc" and cert["key_name_matches"] and cert["valid_now"]
    assert "大连测试电商平台有限公司" in cert["subject"] and "中国电子业务证书管理中心" in cert["issuer"]
    text = good.read_text(encoding="utf-8")
    for before, after in (("<ceb:itemName>奶粉<", "<ceb:itemName>奶酚<"),        # the data
                          ("<ceb:qty>1<", "<ceb:qty>2<")):
        assert before in text
        bad = tmp_path / "bad.xml"
        bad.write_text(text.replace(before, after, 1), encoding="utf-8")
        proc = swgw_verify(bad)
        assert proc.returncode == 1 and "digest mismatch" in proc.stderr, proc.stdout + proc.stderr
    value = etree.fromstring(good.read_bytes()).findtext(f".//{DS}DigestValue")
    forged = value[:-3] + ("B" if value[-3] != "B" else "C") + value[-2:]    # one character of SignedInfo
    bad.write_text(text.replace(value, forged), encoding="utf-8")
    proc = swgw_verify(bad)
    assert proc.returncode == 1 and "does not verify" in proc.stderr


def test_a_real_card_signature_over_its_signedinfo_verifies():
    """A real card's SM2 signature (w3.org sm2-sm3 + SHA-1 digest, certificate 03000000000cde6f) over the
    SignedInfo the signing service published: the signature and certificate pass; only the digest
    cannot, the signed message not being public."""
    root = etree.parse(str(FIX / "real_card_signedinfo.xml")).getroot()
    with pytest.raises(signing.SignatureError, match="digest mismatch") as err:
        signing.verify(root)
    assert err.value.code == "1004"
    report = signing.inspect((FIX / "real_card_signedinfo.xml").read_bytes())
    assert report["certificate"]["serial"] == "03000000000cde6f" and report["certificate"]["key_name_matches"]


@pytest.fixture(scope="module")
def keys(sm2_and_rsa):
    return sm2_and_rsa


def signer_for(issued) -> SoftwareSigner:
    return SoftwareSigner(issued.key, issued.cert, CardInfo("8930000012345", "王丹", "91210200MA0QC8N67X", ""))


def envelope_root():
    env = envelope.Envelope(
        trans=envelope.TransInfo("cop-1", "DXPENT0000012345", ["DXPEDCSW00000001"],
                                 dt.datetime(2026, 11, 22, 9, 0, 0), "DecMessage"),
        data="<DecMessage>报关单</DecMessage>".encode(), file_name="cop-1.xml", ic_card="8930000012345")
    return envelope.wrap(env)


@pytest.mark.parametrize("alg, profile, sig_uri, digest_uri", [
    ("sm2", "chinaport-2022", signing.CHINAPORT_SM2_SM3, signing.CHINAPORT_SM3),
    ("sm2", "ceb-2018", signing.W3_SM2_SM3, signing.W3_SHA1),
    ("rsa", "chinaport-2022", signing.W3_RSA_SHA1, signing.W3_SHA1),
    ("rsa", "ceb-2018", signing.W3_RSA_SHA1, signing.W3_SHA1),
])
def test_each_profile_signs_a_dxp_envelope_that_validates_and_verifies(keys, alg, profile, sig_uri, digest_uri):
    signer = signer_for(keys[alg])
    root = etree.fromstring(signing.sign(envelope_root(), signer, signer.info().cert_no, profile))
    schema = etree.XMLSchema(etree.parse(str(DXP_XSD)))
    assert schema.validate(root), schema.error_log
    si = root.find(f"{DS}Signature/{DS}SignedInfo")
    assert si.find(f"{DS}SignatureMethod").get("Algorithm") == sig_uri
    assert si.find(f"{DS}Reference/{DS}DigestMethod").get("Algorithm") == digest_uri
    v = signing.verify(root)
    assert (v.signature_method, v.digest_method) == (sig_uri, digest_uri)
    root.find(f"{{{envelope.DXP_NS}}}TransInfo/{{{envelope.DXP_NS}}}MsgType").text = "DecMessagX"
    with pytest.raises(signing.SignatureError, match="digest mismatch"):
        signing.verify(root)


def _hand_signed(issued, digest_uri: str, hash_name: str, c14n_uri: str, with_comments: bool) -> etree._Element:
    """A CEB-like message signed by hand (tongsuopy SM2 through the software key), w3.org sm2-sm3."""
    doc = etree.fromstring('<ceb:CEB311Message xmlns:ceb="http://www.chinaport.gov.cn/ceb"><!-- 注释 -->'
                           '<ceb:Order><ceb:orderNo>A1</ceb:orderNo></ceb:Order></ceb:CEB311Message>'.encode())
    data = etree.tostring(doc, method="c14n", with_comments=with_comments)
    value = base64.b64encode(hashlib.new(hash_name, data).digest() if hash_name != "sm3"
                             else signing.hash_bytes("sm3", data)).decode()
    sig = etree.SubElement(doc, DS + "Signature", nsmap={"ds": DS[1:-1]})
    si = etree.SubElement(sig, DS + "SignedInfo")
    etree.SubElement(si, DS + "CanonicalizationMethod", Algorithm=c14n_uri)
    etree.SubElement(si, DS + "SignatureMethod", Algorithm=signing.W3_SM2_SM3)
    ref = etree.SubElement(si, DS + "Reference", URI="")
    etree.SubElement(etree.SubElement(ref, DS + "Transforms"), DS + "Transform", Algorithm=signing.ENVELOPED)
    etree.SubElement(ref, DS + "DigestMethod", Algorithm=digest_uri)
    etree.SubElement(ref, DS + "DigestValue").text = value
    signer = signer_for(issued)
    raw = signer.sign(etree.tostring(si, method="c14n", with_comments=with_comments))
    etree.SubElement(sig, DS + "SignatureValue").text = base64.b64encode(raw).decode()
    ki = etree.SubElement(sig, DS + "KeyInfo")
    etree.SubElement(ki, DS + "KeyName").text = signer.info().cert_no.upper().lstrip("0")   # as swgw once printed it
    etree.SubElement(etree.SubElement(ki, DS + "X509Data"), DS + "X509Certificate").text = \
        base64.b64encode(signer.certificate()).decode()
    return doc


@pytest.mark.parametrize("digest_uri, hash_name, c14n_uri, comments", [
    (signing.W3_SHA1, "sha1", signing.C14N, False),
    ("http://www.w3.org/2000/09/xmldsig#sm3", "sm3", signing.C14N, False),
    (signing.CHINAPORT_SM3, "sm3", signing.C14N_COMMENTS, True),
    (signing.W3_SHA1, "sha1", signing.C14N_COMMENTS, True),
])
def test_the_digest_comes_from_digestmethod_and_c14n_with_or_without_comments(keys, digest_uri, hash_name,
                                                                               c14n_uri, comments):
    doc = _hand_signed(keys["sm2"], digest_uri, hash_name, c14n_uri, comments)
    v = signing.verify(doc)
    assert v.digest_method == digest_uri and v.c14n_method == c14n_uri
    report = signing.inspect(etree.tostring(doc, encoding="UTF-8"))
    assert report["verified"] and report["certificate"]["key_name_matches"], report
    if comments:  # the comment is signed data under #WithComments
        doc[0].text = " 改了 "
        with pytest.raises(signing.SignatureError, match="digest mismatch"):
            signing.verify(doc)


def test_certificate_numbers_as_the_card_reports_them():
    assert crypto.cert_number(0x03000000000CDE6F) == "03000000000cde6f"
    assert crypto.cert_number(0xABC) == "0abc"
    assert crypto.same_cert_no("3000000000CDE6F", "03000000000cde6f")
    assert not crypto.same_cert_no("3000000000CDE6E", "03000000000cde6f")
