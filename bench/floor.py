"""The floor: only the library calls no implementation of swgw can avoid, per declaration.

On the same generated documents as every other scenario, mapped and built once before the clock
starts, the timed loop does per declaration exactly: one lxml schema validation of the business
document and one of the envelope, one inclusive C14N of the envelope, one SM3 digest, two SM2
signatures (tongsuopy: the document's and the envelope's), one base64 of the document and one file
write. Nothing else — no mapping, no store, no Python-level tree building. The rate is the
physical limit of one core of this machine for that work; every other rate is also given as a
ratio to it, so the ratios stay comparable when the machine changes.
"""
from __future__ import annotations

import base64
import datetime as dt
import time
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from lxml import etree

from card.signer import CardInfo
from card.software import SoftwareSigner
from gateway import envelope, signing
from gateway.config import Enterprise, Operator
from gateway.documents import family
from gateway.documents.base import Context
from gateway.mapping.engine import Mapping

ROOT = Path(__file__).resolve().parents[1]


def prepare(files, keys) -> tuple[list[tuple], SoftwareSigner]:
    """Map, build and envelope every declaration once (untimed): [(document, envelope, doc bytes)]."""
    fam = family("declaration")
    mapping = Mapping.load(ROOT / "mappings" / "declaration-csv.toml", allowed=fam.sections())
    signer = SoftwareSigner(keys["key"], keys["cert"], CardInfo("8930000012345", "王丹", "91210200MA0QC8N67X", ""))
    info = signer.info()
    ent = Enterprise(code="91210200MA0QC8N67X", name="x", customs_code="2102930001",
                     dxp_sender_id="DXPENT0000012345")
    ctx = Context(ent, Operator(name="王丹", signer="op"), info.media_no)
    prepared = []
    for _, text, _ in files:
        for mapped in mapping.apply(mapping.read(text.encode("utf-8"))):
            fam.enrich(mapped, ctx)
            root = fam.build(mapped).root
            fam.before_sign(root, signer, info, "20261122000000")
            doc = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
            env = envelope.wrap(envelope.Envelope(
                envelope.TransInfo(f"f{len(prepared)}", "DXPENT0000012345", ["DXPEDCSW00000001"],
                                   dt.datetime.now(), "DecMessage"), doc, biz_keys={"ClientSeqNo": mapped.key}))
            signing.sign(env, signer, info.cert_no)
            prepared.append((root, env, doc))
    return prepared, signer


def run(files, keys, out_dir: Path) -> tuple[int, float]:
    prepared, signer = prepare(files, keys)
    doc_schema = etree.XMLSchema(etree.parse(str(ROOT / "xsd" / "declaration.xsd")))
    env_schema = etree.XMLSchema(etree.parse(str(ROOT / "xsd" / "dxp" / "dxp-terminal-node-202205.xsd")))
    signed_info = b"<SignedInfo>" + b"x" * 600 + b"</SignedInfo>"   # a SignedInfo's size
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    for n, (root, env, doc) in enumerate(prepared):
        if not doc_schema.validate(root) or not env_schema.validate(env):
            raise AssertionError("floor: a prepared document does not validate")
        canonical = etree.tostring(env, method="c14n", exclusive=False, with_comments=False)
        h = hashes.Hash(hashes.SM3())
        h.update(canonical)
        h.finalize()
        signer.sign(doc)
        signer.sign(signed_info)
        data = base64.b64encode(doc)
        (out_dir / f"f{n}.xml").write_bytes(data)
    return len(prepared), time.perf_counter() - start
