"""Issue the sandbox CA and operator certificates with OpenSSL 3's command line.

The sandbox trusts this CA; the software key and the virtual card carry
certificates it issued. SM2 certificates are signed SM2-with-SM3 with the default
distinguishing ID, which OpenSSL 3 supports and tongsuopy verifies.
"""
from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

DISTID = "distid:1234567812345678"


class PkiError(Exception):
    pass


@dataclass(frozen=True)
class Issued:
    key: Path
    cert: Path


def _run(*args: str) -> None:
    proc = subprocess.run(["openssl", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise PkiError(f"openssl {args[0]} failed: {proc.stderr.strip()}")


def _genkey(path: Path, algorithm: str) -> None:
    if algorithm == "sm2":
        _run("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:SM2", "-out", str(path))
    elif algorithm == "ec":
        _run("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(path))
    elif algorithm == "rsa":
        _run("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(path))
    else:
        raise PkiError(f"unknown key algorithm {algorithm!r}")
    path.chmod(0o600)


def _sign_opts(algorithm: str) -> list[str]:
    return ["-sm3", "-sigopt", DISTID] if algorithm == "sm2" else ["-sha256"]


def ensure_ca(directory: Path, algorithm: str = "sm2") -> Issued:
    """Create (once) the sandbox CA in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    key, cert = directory / "ca.key", directory / "ca.pem"
    if not (key.exists() and cert.exists()):
        _genkey(key, algorithm)
        _run("req", "-utf8", "-new", "-x509", "-key", str(key), *_sign_opts(algorithm),
             "-subj", "/C=CN/O=swgw sandbox/CN=swgw sandbox CA", "-days", "3650", "-out", str(cert))
    return Issued(key, cert)


def ensure_issued(directory: Path, name: str, common_name: str, ca: Issued,
                  algorithm: str = "sm2", serial: int | None = None) -> Issued:
    """Create (once) a key and a certificate issued by `ca`, as `<name>.key`/`<name>.pem`."""
    directory.mkdir(parents=True, exist_ok=True)
    key, cert, csr = directory / f"{name}.key", directory / f"{name}.pem", directory / f"{name}.csr"
    if key.exists() and cert.exists():
        return Issued(key, cert)
    _genkey(key, algorithm)
    req_opts = _sign_opts(algorithm)
    _run("req", "-utf8", "-new", "-key", str(key), *req_opts, "-subj", f"/C=CN/O=swgw/CN={common_name}", "-out", str(csr))
    ca_algo = "sm2" if b"SM2" in ca.key.read_bytes() or _is_sm2_key(ca.key) else "other"
    x509_opts = ["-sm3", "-sigopt", DISTID, "-vfyopt", DISTID] if ca_algo == "sm2" else ["-sha256"]
    if algorithm != "sm2" and ca_algo == "sm2":
        x509_opts = ["-sm3", "-sigopt", DISTID]
    _run("x509", "-req", "-in", str(csr), "-CA", str(ca.cert), "-CAkey", str(ca.key),
         *(["-set_serial", str(serial)] if serial else ["-CAcreateserial"]),
         "-days", "1825", *x509_opts, "-out", str(cert))
    csr.unlink(missing_ok=True)
    return Issued(key, cert)


def _is_sm2_key(path: Path) -> bool:
    proc = subprocess.run(["openssl", "pkey", "-in", str(path), "-noout", "-text"], capture_output=True, text=True)
    return "SM2" in proc.stdout
