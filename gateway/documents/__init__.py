"""Document families, by key."""
from __future__ import annotations

from pathlib import Path

from gateway.documents.base import DocumentFamily
from gateway.documents.declaration import Declaration
from gateway.documents.inspection import InspectionFeedback
from gateway.documents.licence import AutoImportLicense, ExportLicense, MeImportLicense
from gateway.documents.origin import OriginCertificate, OriginFiling

FAMILIES: dict[str, type[DocumentFamily]] = {
    cls.key: cls for cls in (Declaration, ExportLicense, MeImportLicense, AutoImportLicense, InspectionFeedback,
                OriginCertificate, OriginFiling)
}

XSD_DIR = Path(__file__).resolve().parents[2] / "xsd"


def family(key: str, xsd_dir: Path = XSD_DIR) -> DocumentFamily:
    try:
        return FAMILIES[key](xsd_dir)
    except KeyError:
        raise KeyError(f"unknown document type {key!r} (known: {', '.join(sorted(FAMILIES))})") from None
