"""swgw: the command line. Exit codes: 0 ok, 1 a check or message failed, 2 bad usage/config."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

DEFAULT_CONFIG = "config/gateway.toml"


class Exit(Exception):
    def __init__(self, code: int, message: str = ""):
        self.code, self.message = code, message


def _config(path: str):
    from gateway.config import ConfigError, load

    try:
        return load(path)
    except ConfigError as exc:
        raise Exit(2, str(exc)) from None


def _store(path: str, readonly: bool = True):
    """The store alone, found from the config's [store] table: no runtime is built (no schemas,
    mappings, transports or signers), so `status`, `trace` and `subscriptions` answer fast."""
    from gateway.store import db, locate

    try:
        return db.open_store(locate.store_url(path), readonly=readonly)
    except locate.StoreLocationError as exc:
        raise Exit(2, str(exc)) from None


def _runtime(path: str, upgrade: bool = True):
    from gateway import log
    from gateway.config import ConfigError
    from gateway.runtime import Runtime

    cfg = _config(path)
    log.setup(cfg.log.format, cfg.log.level)
    try:
        return Runtime.open(cfg, upgrade=upgrade)
    except ConfigError as exc:
        raise Exit(2, str(exc)) from None


config_option = click.option("--config", "config_path", default=DEFAULT_CONFIG, show_default=True,
                             envvar="SWGW_CONFIG", type=click.Path(dir_okay=False), help="gateway config file")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli():
    """swgw — Single Window message gateway."""


@cli.command()
@config_option
@click.option("--drain", is_flag=True, help="process what is there, wait for receipts, then exit")
@click.option("--timeout", default=120.0, show_default=True, help="with --drain: give up after this many seconds")
@click.option("--settle", default=2.0, show_default=True,
              help="with --drain: seconds without new receipts before stopping while waiting for an authority")
def run(config_path, drain, timeout, settle):
    """Run the daemon (until SIGTERM/SIGINT, or with --drain until everything is settled)."""
    from gateway import gctune
    from gateway.config import ConfigError
    from gateway.daemon import Daemon

    rt = _runtime(config_path)
    daemon = Daemon(rt)
    daemon.install_signal_handlers()
    try:
        try:
            daemon.start()
        except ConfigError as exc:   # e.g. a second process on a SQLite store
            raise Exit(2, f"swgw run: {exc}") from None
        gctune.settle()   # start-up done: its objects out of the collector's sight (gateway/gctune.py)
        if drain:
            result = daemon.drain(timeout=timeout, settle=settle)
            _print_summary(rt, daemon, result)
            if not result.finished:
                raise Exit(1, f"drain: still in flight after {timeout:.0f}s: {result.counts}")
        else:
            daemon.run()
    finally:
        daemon.shutdown()


def _print_summary(rt, daemon, result) -> None:
    from sqlalchemy import func, select

    from gateway.store.models import IntakeFile, Receipt

    with rt.sessions() as s:
        files = s.execute(select(IntakeFile.outcome, func.count()).group_by(IntakeFile.outcome)).all()
        receipts = s.scalar(select(func.count()).select_from(Receipt))
    click.echo("swgw drain summary")
    click.echo("  files:    " + (", ".join(f"{n} {o}" for o, n in files) or "none"))
    click.echo("  messages: " + (", ".join(f"{n} {st}" for st, n in sorted(result.counts.items())) or "none"))
    click.echo(f"  receipts: {receipts} stored and routed")
    if daemon.peer:
        st = daemon.peer.stats
        click.echo(f"  sandbox:  {st['accepted']} accepted, {st['duplicates']} duplicates dropped, "
                   f"{st['refused']} refused, {st['receipts']} receipts sent")


@cli.command("map")
@config_option
@click.option("--dry-run", "dry_run", is_flag=True, required=True, help="show, change nothing (required)")
@click.option("--type", "doc_type", help="document type (default: from the file's inbox folder)")
@click.option("--xml", "show_xml", is_flag=True, help="print each document's XML")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
def map_cmd(config_path, dry_run, doc_type, show_xml, file):
    """Show what FILE maps to and every error with its row, column and field."""
    from gateway import intake
    from gateway.mapping.errors import InputError

    rt = _runtime(config_path, upgrade=False)
    path = Path(file)
    if doc_type is None:
        matches = [k for k, d in rt.doc_types.items() if path.resolve().parent == d.source.inbox.resolve()]
        doc_type = matches[0] if matches else (next(iter(rt.doc_types)) if len(rt.doc_types) == 1 else None)
    if doc_type not in rt.doc_types:
        raise Exit(2, f"--type is needed: one of {', '.join(rt.doc_types)}")
    dt = rt.doc_types[doc_type]
    try:
        data, files = intake.unpack(dt, path.read_bytes())   # a .zip drop: its data file and attachments
        encoding, groups, reader = intake.read_documents(rt, dt, data)
    except InputError as exc:
        raise Exit(1, f"{path.name}{f', row {exc.row}' if exc.row else ''}: {exc}") from None
    bad = 0
    click.echo(f"{path.name}: {len(groups)} {doc_type} document(s), encoding {encoding}, {reader}")
    for mapped in groups:
        ev = intake.evaluate(rt, dt, mapped, files)
        where = f"rows {','.join(map(str, mapped.rows))}" if mapped.rows else dt.family.root_name
        counts = ", ".join(f"{len(v)} {k}" for k, v in mapped.sections.items()
                           if v and (len(v) != 1 or k in ("DecList", "EdocRealation")))
        if ev.errors:
            bad += 1
            click.echo(f"  ✗ {mapped.key} ({where}): {len(ev.errors)} error(s)")
            for e in ev.errors:
                click.echo(f"      {e.located(path.name)}")
        else:
            how = dt.family.describe(ev.document)
            click.echo(f"  ✓ {mapped.key} ({where}): valid {dt.family.root_name}; {counts}" + (f"; {how}" if how else ""))
        if show_xml and ev.document:
            click.echo(ev.document.decode("utf-8"))
    if bad:
        raise Exit(1)


@cli.command()
@config_option
@click.option("--type", "doc_type")
@click.option("--state")
@click.option("--key", help="any business key: ClientSeqNo, SeqNo, entry id …")
@click.option("--overdue", is_flag=True, help="only messages past a receipt deadline")
@click.option("--inspection-orders", "orders_only", is_flag=True,
              help="list inspection orders (海关查验指令), also those for declarations swgw does not know")
@click.option("--insp-customs", default="", help="orders of this 查验关区 (implies --inspection-orders)")
@click.option("--unload-place", default="", help="orders of this 卸货地代码 (implies --inspection-orders)")
@click.option("--enterprise", default="", help="with --inspection-orders: the enterprise code or 企业名称")
@click.option("--signers", "signers_only", is_flag=True,
              help="the signers as the running daemon last saw them (cards, card hosts' heartbeats)")
@click.option("--json", "as_json", is_flag=True)
def status(config_path, doc_type, state, key, overdue, orders_only, insp_customs, unload_place, enterprise,
           signers_only, as_json):
    """List messages with type, business key, state and last receipt (or inspection orders)."""
    from gateway.lifecycle import report
    from gateway.store import repo

    store = _store(config_path)
    if signers_only:
        return _signers_status(store, as_json)
    if orders_only or insp_customs or unload_place:
        return _orders_status(store, insp_customs, unload_place, enterprise, as_json)
    with store.sessions() as s:
        msgs = repo.listing(s, doc_type, state, key, overdue=overdue)
        rows = [{"id": m.id, "type": m.doc_type, "key": m.business_key, "state": m.state,
                 "enterprise": m.enterprise, "cop_msg_id": m.cop_msg_id, "submit": _describe(m),
                 "keys": {k.name: k.value for k in m.keys}, "updated": m.updated_at.isoformat(),
                 "last_receipt": m.last_receipt, **report.fields(m)} for m in msgs]
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    if not rows:
        click.echo("no overdue messages" if overdue else "no messages")
        return
    tw = max([12] + [len(r["type"]) for r in rows])
    kw = max([20] + [len(r["key"]) for r in rows])
    sw = max([17] + [len(r["state"]) for r in rows])
    modes = {r["id"]: _short_submit(r["submit"]) for r in rows}
    mw = max([6] + [len(v) for v in modes.values()]) if any(r["submit"] for r in rows) else 0
    head = f"{'SUBMIT':<{mw}} " if mw else ""
    click.echo(f"{'ID':>5}  {'TYPE':<{tw}} {'KEY':<{kw}} {'STATE':<{sw}} {head}{'UPDATED':<19}  LAST RECEIPT")
    for r in rows:
        cell = f"{modes[r['id']]:<{mw}} " if mw else ""
        click.echo(f"{r['id']:>5}  {r['type']:<{tw}} {r['key']:<{kw}} {r['state']:<{sw}} {cell}{r['updated'][:19]:<19}  "
                   f"{r['last_receipt']}{report.flag(r)}")


def _signers_status(store, as_json: bool) -> None:
    from gateway.store import summary

    with store.sessions() as s:
        rows = [{"signer": c.name.removeprefix("signer "), "state": c.state, "detail": c.detail,
                 "since": c.since.isoformat(), "seen_at": c.seen_at.isoformat()}
                for c in summary.components(s) if c.kind == "signer"]
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    if not rows:
        click.echo("no signer seen yet (is the daemon running?)")
    for r in rows:
        click.echo(f"{r['signer']:<16} {r['state']:<8} since {r['since'][:19]}  (seen {r['seen_at'][:19]})  {r['detail']}")


def _short_submit(text: str) -> str:
    """'OperType C 报关单申报 (declare)' -> 'C declare' for the status table."""
    import re

    found = re.match(r"OperType (\w) .*\((.+)\)$", text or "")
    return f"{found.group(1)} {found.group(2)}" if found else (text or "-")


def _describe(m) -> str:
    """How the stored document is submitted (a declaration's OperType), from its bytes alone."""
    from gateway.documents import submission

    return submission.describe(m.doc_type, m.document)


def _orders_status(store, insp_customs: str, unload_place: str, enterprise: str, as_json: bool) -> None:
    from gateway.receipts import orders

    with store.sessions() as s:
        rows = orders.listing(s, insp_customs, unload_place, enterprise)
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    if not rows:
        click.echo("no inspection orders")
        return
    click.echo(f"{'RECEIPT':>7}  {'INSPECTION NO':<20} {'ENTRY ID':<18} {'CUSTOMS':<7} {'UNLOAD':<8} "
               f"{'ENTERPRISE':<18}  DECLARATION")
    for r in rows:
        click.echo(f"{r['receipt']:>7}  {r['inspection_no']:<20} {r['entry_id']:<18} {r['insp_customs']:<7} "
                   f"{r['unload_place']:<8} {r['enterprise']:<18}  {r['declaration'] or '(not known to swgw yet)'}")


@cli.command()
@config_option
@click.argument("ref")
def trace(config_path, ref):
    """The whole event log and receipts of one message (by id, CopMsgId or any business key)."""
    from gateway.store import repo

    store = _store(config_path)
    with store.sessions() as s:
        msgs = repo.find(s, ref)
        if not msgs:
            raise Exit(1, f"no message is known by {ref!r}")
        for m in msgs:
            click.echo(f"message {m.id}: {m.doc_type} {m.business_key}  state {m.state}")
            click.echo(f"  enterprise {m.enterprise}  CopMsgId {m.cop_msg_id}  from {m.source_ref}")
            keys = ", ".join(f"{k.name}={k.value}" for k in m.keys)
            click.echo(f"  keys: {keys}")
            how = _describe(m)
            if how:
                click.echo(f"  submit: {how}")
            if m.errors:
                click.echo("  errors:")
                for e in m.errors:
                    where = ", ".join(f"{k} {e[k]}" for k in ("row", "column") if k in e)
                    click.echo(f"    {where + ': ' if where else ''}{e.get('field', '')}: {e.get('message')} "
                               f"[rule {e.get('rule')}]" + (f" value {e['value']!r}" if "value" in e else ""))
            click.echo("  events:")
            for ev in repo.events(s, m.id):
                arrow = f"{ev.from_state} -> {ev.to_state}" if ev.kind == "state" else ev.kind
                click.echo(f"    {ev.at:%Y-%m-%d %H:%M:%S}  {arrow:<28} {ev.detail}")
            recs = repo.receipts(s, m.id)
            if recs:
                click.echo("  receipts:")
                for r in recs:
                    routed = f"routed {r.routed_at:%H:%M:%S}" if r.routed_at else "not routed yet"
                    click.echo(f"    #{r.id} {r.kind:<16} {r.received_at:%Y-%m-%d %H:%M:%S}  {r.summary}  ({routed})")


@cli.command()
@config_option
@click.argument("ref", required=False)
@click.option("--new-submission", is_flag=True,
              help="send as a new submission: a new CopMsgId, signed again (the platform treats it as new)")
@click.option("--all-failed", is_flag=True, help="every failed message (e.g. after an outage), same CopMsgId")
@click.option("--type", "doc_type", help="with --all-failed: only this document type")
def resend(config_path, ref, new_submission, all_failed, doc_type):
    """Send a message again, with the same CopMsgId (the peer drops true duplicates)."""
    from gateway.lifecycle import resend as resending

    if bool(ref) == all_failed or (all_failed and new_submission):
        raise Exit(2, "give a message (ID, CopMsgId or business key) or --all-failed (without --new-submission)")
    rt = _runtime(config_path)
    if all_failed:
        msgs = resending.all_failed(rt, doc_type)
        click.echo(f"{len(msgs)} failed message(s) queued to send again" +
                   "".join(f"\n  {m.id} {m.business_key} {m.cop_msg_id}" for m in msgs))
        return
    try:
        m = resending.request(rt, ref, new_submission=new_submission)
    except resending.Refused as exc:
        raise Exit(1, str(exc)) from None
    if m.already_queued:
        click.echo(f"message {m.id} is already queued to send again (asked {m.already_queued}); "
                   f"it is sent once, as {m.cop_msg_id}")
        return
    how = "as a new submission with CopMsgId" if new_submission else "as"
    click.echo(f"message {m.id} queued to send again {how} {m.cop_msg_id}")


@cli.command()
@config_option
def doctor(config_path):
    """Check config, folders, store, transports and signers."""
    from gateway.runtime import open_amqp_intake
    from gateway.store import db

    rt = _runtime(config_path, upgrade=False)
    ok = True

    def line(good, what, detail=""):
        nonlocal ok
        ok &= good
        click.echo(f"  {'ok  ' if good else 'FAIL'} {what}{': ' + detail if detail else ''}")

    click.echo(f"config {rt.config.source}")
    try:
        rev = db.current_revision(rt.engine)
        line(rev is not None, "store", f"schema revision {rev}" if rev else "no schema: run `swgw db upgrade`")
    except Exception as exc:
        line(False, "store", f"{type(exc).__name__}: {exc}")
    for key, dt in rt.doc_types.items():
        inbox = dt.source.inbox
        line(inbox.is_dir(), f"{key} inbox {inbox}")
        line(True, f"{key} mapping {dt.mapping.path.name}")
    for name, t in rt.transports.items():
        for c in t.check():
            line(c.ok, f"transport {name}: {c.what}", c.detail)
    checks = [("amqp intake", open_amqp_intake(rt.config)), ("receipt exchange", rt.publisher)]
    for what, link in checks:
        if link is not None:
            for c in link.check():
                line(c.ok, f"{what}: {c.what}", c.detail)
    for name in rt.signer_configs:
        try:
            info = rt.signer(name).info()
            role = rt.signer_role(name)
            bound = [e for e in rt.config.enterprises if e.mofcom_key == name]
            if bound and info.enterprise_code != bound[0].mofcom_code:
                line(False, f"signer {name}", f"{role}: the key is bound to {info.enterprise_code}, not to "
                                              f"{bound[0].mofcom_code}")
                continue
            line(True, f"signer {name}", f"card {info.media_no}, {info.holder}, enterprise {info.enterprise_code}; "
                                         f"{role}" + (f"; {info.reader}" if info.reader.startswith("card host") else ""))
        except Exception as exc:
            line(False, f"signer {name}", str(exc))
    try:
        from gateway import cluster

        with rt.sessions() as s:   # the `swgw run` processes sharing this store
            for good, what, detail in cluster.report(s, rt.config.cluster):
                line(good, what, detail)
    except Exception as exc:  # no schema yet: the store line above says what to do
        line(False, "cluster", f"{type(exc).__name__}: {exc}".splitlines()[0][:200])
    try:
        from gateway.lifecycle import report

        for good, what, detail in report.doctor(rt):
            line(good, what, detail)
    except Exception as exc:  # no schema yet: the store line above says what to do
        line(False, "lifecycle", f"{type(exc).__name__}: {exc}".splitlines()[0][:200])
    if not ok:
        raise Exit(1)


@cli.command()
@config_option
@click.argument("key")
@click.option("--reason", default="", help="why the enterprise withdraws it (sent to MOFCOM)")
def withdraw(config_path, key, reason):
    """撤回/撤销: withdraw a licence application MOFCOM has not approved (by ApplyNo or MOFCOM number)."""
    from gateway import licence_actions

    rt = _runtime(config_path)
    with rt.sessions() as s:
        try:
            app, msg = licence_actions.withdraw(rt, s, key, reason)
        except licence_actions.ActionError as exc:
            raise Exit(1, str(exc)) from None
        s.commit()
        click.echo(f"withdrawal of {app.doc_type} {app.business_key} (state {app.state}) queued as message {msg.id}; "
                   f"the daemon signs it with the MOFCOM key and sends it; its 撤销状态 follows in trace/status")


@cli.group()
def enterprise():
    """The enterprise at MOFCOM: 机电企业信息备案 / 重农信息备案."""


@enterprise.command("file")
@config_option
@click.argument("kind", type=click.Choice(["me", "agri"]))
@click.option("--enterprise", "code", help="which [[enterprise]] (USCC, customs or MOFCOM code); default: the only one")
def enterprise_file(config_path, kind, code):
    """Send the enterprise's filing from its profile: me (机电企业信息备案) or agri (重农信息备案)."""
    from gateway import licence_actions

    rt = _runtime(config_path)
    with rt.sessions() as s:
        try:
            msg = licence_actions.file(rt, s, kind, code)
        except licence_actions.ActionError as exc:
            raise Exit(1, str(exc)) from None
        s.commit()
        click.echo(f"filing {msg.business_key} queued as message {msg.id}; MOFCOM's answer (registered or refused) "
                   f"follows in trace/status")


@cli.group()
def card():
    """The operators' cards: what is in the readers, and a PIN check."""


def _signers(rt, name):
    names = [name] if name else list(rt.signer_configs)
    unknown = [n for n in names if n not in rt.signer_configs]
    if unknown:
        raise Exit(2, f"no signer {unknown[0]!r} in {rt.config.source}; configured: {', '.join(rt.signer_configs)}")
    return names


@card.command("info")
@config_option
@click.option("--signer", "name", help="one configured signer (default: all)")
def card_info(config_path, name):
    """Reader, media number, holder, enterprise, certificate validity of each configured card."""
    from card import crypto
    from card.signer import SignerError

    rt = _runtime(config_path, upgrade=False)
    try:   # closing resets each card (see card verify)
        failed = _show_cards(rt, name, crypto, SignerError)
    finally:
        rt.close()
    if failed:
        raise Exit(1)


def _show_cards(rt, name, crypto, SignerError) -> bool:
    failed = False
    for n in _signers(rt, name):
        sc = rt.signer_configs[n]
        try:
            signer = rt.signer(n)
            info = signer.info()
            cert = crypto.summary(signer.certificate())
        except SignerError as exc:
            failed = True
            click.echo(f"{n} ({sc.kind}): {exc}")
            continue
        click.echo(f"{n} ({sc.kind})")
        click.echo(f"  role:        {rt.signer_role(n)}")
        click.echo(f"  reader:      {info.reader or '(software key)'}")
        click.echo(f"  media no:    {info.media_no}")
        click.echo(f"  holder:      {info.holder}")
        click.echo(f"  enterprise:  {info.enterprise_code}")
        click.echo(f"  algorithm:   {signer.algorithm}")
        click.echo(f"  certificate: {info.cert_no}  {cert.subject}")
        click.echo(f"               valid {cert.not_before:%Y-%m-%d} to {cert.not_after:%Y-%m-%d}, "
                   f"issued by {cert.issuer}")
    return failed


@card.command("verify")
@config_option
@click.option("--signer", "name", help="one configured signer (default: all)")
@click.option("--force", is_flag=True, help="try even when only one PIN try is left")
def card_verify(config_path, name, force):
    """Check each card's PIN once; stop at the first refusal (never burn a card's tries)."""
    rt = _runtime(config_path, upgrade=False)
    try:   # closing resets each card: the PIN state this check made never outlives the command
        _verify_pins(rt, name, force)
    finally:
        rt.close()


def _verify_pins(rt, name, force):
    from card.signer import PinError, SignerError

    for n in _signers(rt, name):
        signer = rt.signer(n)
        if not hasattr(signer, "verify_pin"):
            click.echo(f"{n}: software key, no PIN")
            continue
        try:
            left = signer.pin_tries_left()
            if left is not None and left <= 1 and not force:
                raise Exit(1, f"{n}: only {left} PIN try left; a wrong PIN would block the card. "
                              f"Check the PIN source, then use --force")
            signer.verify_pin()
        except PinError as exc:
            raise Exit(1, f"{n}: PIN refused: {exc}. Stopped: no further PIN is tried.") from None
        except SignerError as exc:
            raise Exit(1, f"{n}: {exc}") from None
        click.echo(f"{n}: PIN ok (card {signer.info().media_no})")


@cli.group()
def db():
    """Store schema."""


@db.command("upgrade")
@config_option
def db_upgrade(config_path):
    """Apply Alembic migrations to the configured store."""
    from gateway.store import db as store_db

    cfg = _config(config_path)
    engine = store_db.make_engine(cfg.store.resolved_url())
    store_db.upgrade(engine)
    click.echo(f"store at revision {store_db.current_revision(engine)}")


@cli.command()
@click.option("--config", "config_path", default="config/sandbox.toml", show_default=True,
              type=click.Path(dir_okay=False))
def sandbox(config_path):
    """Run the sandbox peer alone (plays the Single Window)."""
    import signal
    import threading

    from gateway import log
    from gateway.sandbox import settings
    from gateway.sandbox.peer import open_peer
    from gateway.config import ConfigError

    log.setup()
    try:
        peer = open_peer(settings.load(Path(config_path)))
    except ConfigError as exc:
        raise Exit(2, str(exc)) from None
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    peer.run(stop)


from gateway.lifecycle import commands as _lifecycle_commands  # noqa: E402

_lifecycle_commands.register(cli, config_option, _runtime, Exit, store=_store)

from gateway.console import cli as _console_commands  # noqa: E402

_console_commands.register(cli, config_option, _config, Exit)

from gateway import tools as _tools  # noqa: E402

_tools.register(cli, Exit)  # swgw receipt, swgw verify


@cli.command("sync")
@config_option
@click.argument("platform", required=False, type=click.Choice(["ccpit"]))
@click.argument("what", required=False, type=click.Choice(["filings", "enterprise"]))
@click.option("--enterprise", default="", help="only this enterprise (default: every one with a ccpit_code)")
@click.option("--wait", "wait_s", type=float, default=0.0, help="wait this many seconds for the running daemon's answer")
@click.option("--history", is_flag=True, help="list earlier requests: type, status, requested by, time, count")
@click.option("--json", "as_json", is_flag=True)
def sync_cmd(config_path, platform, what, enterprise, wait_s, history, as_json):
    """数据同步: request the enterprise's registered filings (同步商品备案信息) or registration data
    (同步企业信息) from the platform; the running daemon sends it and stores the answer."""
    import time as _time

    from gateway import sync

    rt = _runtime(config_path)
    if history:
        with rt.sessions() as s:
            rows = sync.history(s)
        if as_json:
            click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        elif not rows:
            click.echo("no sync requests")
        else:
            click.echo(f"{'ID':>4}  {'TYPE':<10} {'STATUS':<9} {'REQUESTED BY':<14} {'REQUESTED':<19}  {'COUNT':>5}  "
                       f"ENTERPRISE / DETAIL")
            for r in rows:
                click.echo(f"{r['id']:>4}  {r['type']:<10} {r['status']:<9} {r['requested_by']:<14} "
                           f"{r['requested_at'][:19]:<19}  {r['count']:>5}  {r['enterprise']} {r['detail']}".rstrip())
        return
    if not (platform and what):
        raise Exit(2, "usage: swgw sync ccpit filings|enterprise [--enterprise CODE] [--wait S], or swgw sync --history")
    try:
        rows = sync.request(rt, what, enterprise)
    except sync.SyncError as exc:
        raise Exit(2, str(exc)) from None
    for r in rows:
        click.echo(f"sync request {r.request_id}: {sync.TYPES[what]} for {r.enterprise} queued; the daemon sends it")
    deadline = _time.monotonic() + wait_s
    ids = {r.request_id for r in rows}
    while wait_s:
        with rt.sessions() as s:
            states_ = {h["request_id"]: h for h in sync.history(s) if h["request_id"] in ids}
        if all(h["status"] in ("done", "failed") for h in states_.values()):
            for h in states_.values():
                click.echo(f"sync request {h['request_id']}: {h['status']}, {h['count']} record(s) {h['detail']}".rstrip())
            if any(h["status"] == "failed" for h in states_.values()):
                raise Exit(1)
            return
        if _time.monotonic() > deadline:
            raise Exit(1, f"no answer within {wait_s:g}s (is the daemon running?); see swgw sync --history")
        _time.sleep(0.2)


@cli.command("signer")
@click.option("--config", "config_path", default="config/signer.toml", show_default=True, envvar="SWGW_SIGNER_CONFIG",
              type=click.Path(dir_okay=False), help="the card host's signer config")
def signer_agent(config_path):
    """Serve this host's card to the central gateway over RabbitMQ (until SIGTERM/SIGINT)."""
    import signal
    import threading

    from gateway import log
    from gateway.config import ConfigError, load_signer
    from card.signer import SignerError
    from gateway.signer_agent import open_agent

    try:
        cfg = load_signer(config_path)
        log.setup(cfg.log.format, cfg.log.level)
        agent = open_agent(cfg)
    except (ConfigError, SignerError) as exc:
        raise Exit(2, str(exc)) from None
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        agent.run(stop)
    finally:
        agent.close()


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except Exit as exc:
        if exc.message:
            click.echo(exc.message, err=True)
        sys.exit(exc.code)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
