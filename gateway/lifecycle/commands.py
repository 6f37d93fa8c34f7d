"""`swgw subscribe`, `swgw subscriptions`, `swgw unsubscribe` (状态推送 rules).

`register(cli, config_option, runtime, Exit)` adds them to the swgw group (cli.py passes
its own helpers, so this module never imports cli.py)."""
from __future__ import annotations

import functools
import json

import click


@functools.cache
def known_kinds() -> tuple[str, ...]:
    """Every receipt kind swgw stores: the platform's DxpRep, every business receipt kind the
    parser knows (all families: declarations, licences, origin, inspection), and the kinds the
    gateway records itself (a file the desktop client could not send, an unreadable receipt).
    Asked for when used: the parser's imports (lxml, the envelope, signing) would otherwise be
    paid by every command, `swgw status` too (~70 ms)."""
    from gateway.receipts.parse import KINDS

    return ("dxp-rep", *dict.fromkeys(k.name for k in KINDS.values()), "send-failed", "unreadable")


class _KindsOption(click.Option):
    """--kinds, whose help lists the known kinds when the help is shown."""

    def get_help_record(self, ctx):
        self.help = f"comma-separated receipt kinds (default: all), e.g. {','.join(known_kinds())}"
        return super().get_help_record(ctx)


def register(group, config_option, runtime, Exit, store=None) -> None:
    store = store or runtime
    @click.command()
    @config_option
    @click.option("--key", "business_key", default="", help="a business document number (ClientSeqNo, SeqNo, entry id …)")
    @click.option("--enterprise", default="", help="an enterprise code (USCC, customs code …)")
    @click.option("--operator", default="", help="an operator name or card (media) number")
    @click.option("--kinds", cls=_KindsOption, default="", help="comma-separated receipt kinds (default: all)")
    @click.option("--folder", default="", type=click.Path(file_okay=False), help="copy matching receipts into this folder")
    @click.option("--queue", default="", help="publish matching receipts to this RabbitMQ queue ([lifecycle.amqp])")
    def subscribe(config_path, business_key, enterprise, operator, kinds, folder, queue):
        """Send copies of matching receipts to an extra folder or queue (the running daemon picks it up)."""
        from gateway.lifecycle import subscriptions

        rt = runtime(config_path)
        kind_list = [k.strip() for k in kinds.split(",") if k.strip()]
        try:
            sub = subscriptions.add(rt, business_key=business_key, enterprise=enterprise, operator=operator,
                                    kinds=kind_list, folder=folder, queue=queue)
        except ValueError as exc:
            raise Exit(2, str(exc)) from None
        unknown = [k for k in kind_list if k not in known_kinds()]
        click.echo(f"subscription {sub.id}: {subscriptions.Rule.of(sub).describe()}")
        if unknown:
            click.echo(f"note: receipt kind(s) {', '.join(unknown)} are not among {', '.join(known_kinds())}", err=True)


    @click.command("subscriptions")
    @config_option
    @click.option("--json", "as_json", is_flag=True)
    def subscriptions_cmd(config_path, as_json):
        """List the subscription rules."""
        from sqlalchemy import select

        from gateway.lifecycle.rules import Rule
        from gateway.store.models import Subscription

        with store(config_path).sessions() as s:  # the store alone: no runtime to build
            rules = [Rule.of(sub) for sub in s.scalars(select(Subscription).order_by(Subscription.id))]
        if as_json:
            click.echo(json.dumps([{"id": r.id, "key": r.business_key or None, "enterprise": r.enterprise or None,
                                    "operator": r.operator or None, "kinds": sorted(r.kinds),
                                    "folder": r.folder or None, "queue": r.queue or None} for r in rules],
                                  ensure_ascii=False, indent=2))
            return
        if not rules:
            click.echo("no subscriptions")
            return
        for r in rules:
            click.echo(f"{r.id:>4}  {r.describe()}")


    @click.command()
    @config_option
    @click.argument("sub_id", type=int)
    def unsubscribe(config_path, sub_id):
        """Remove subscription SUB_ID (the running daemon stops delivering to it)."""
        from gateway.lifecycle import subscriptions

        sub = subscriptions.remove(runtime(config_path), sub_id)
        if sub is None:
            raise Exit(1, f"no subscription {sub_id}; `swgw subscriptions` lists them")
        click.echo(f"subscription {sub_id} removed")

    for command in (subscribe, subscriptions_cmd, unsubscribe):
        group.add_command(command)
