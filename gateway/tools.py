"""Tools for operators that read one file and need no config or store:

- `swgw receipt FILE [--json]`: what swgw reads from a receipt (gateway.receipts.explain);
- `swgw verify FILE [--json]`: the enveloped XML-DSig of a DxpMsg or a business message
  (gateway.signing.inspect).

Exit 0 when read / verified, 1 (with the located reason) when not.
"""
from __future__ import annotations

import json
from pathlib import Path

import click

MAX_BYTES = 50 * 1024 * 1024


def _read(file: str, Exit) -> bytes:
    try:
        path = Path(file)
        if path.stat().st_size > MAX_BYTES:
            raise Exit(1, f"{file}: {path.stat().st_size} bytes is over the limit of {MAX_BYTES}")
        return path.read_bytes()
    except OSError as exc:
        raise Exit(1, f"{file}: cannot read: {exc.strerror}") from None


def register(cli, Exit) -> None:
    @cli.command("receipt")
    @click.argument("file", type=click.Path(dir_okay=False))
    @click.option("--json", "as_json", is_flag=True)
    def receipt_cmd(file, as_json):
        """What swgw reads from a receipt file: kind, family, keys, status and the state it leads to."""
        from gateway.receipts import explain
        from gateway.receipts.parse import ReceiptError

        data = _read(file, Exit)
        try:
            info = explain.explain(data)
        except ReceiptError as exc:
            raise Exit(1, f"{file}: not a receipt swgw can read: {exc}") from None
        info = {"file": file, **info}
        click.echo(json.dumps(info, ensure_ascii=False, indent=2) if as_json else explain.render(info))

    @cli.command("verify")
    @click.argument("file", type=click.Path(dir_okay=False))
    @click.option("--json", "as_json", is_flag=True)
    def verify_cmd(file, as_json):
        """Check the enveloped XML-DSig of a DxpMsg or a business message (DecMessage, CEB …)."""
        from gateway import signing

        report = signing.inspect(_read(file, Exit))
        report = {"file": file, **report}
        if as_json:
            click.echo(json.dumps(report, ensure_ascii=False, indent=2))
        else:
            click.echo(signing.render(report))
        if not report["verified"]:
            raise Exit(1, "" if as_json else f"{file}: NOT verified: {report['reason']}")
