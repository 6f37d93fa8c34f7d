"""`swgw console` (the web console) and `swgw console user add|passwd|remove|list`.

`register(cli, config_option, config, Exit)` adds the group to swgw (cli.py passes its helpers,
so this module never imports cli.py). Neither builds the gateway's runtime: the console needs
only the config and the store."""
from __future__ import annotations

import os
from pathlib import Path

import click


def _store(cfg):
    from gateway.store import db

    engine = db.make_engine(cfg.store.resolved_url())
    db.upgrade(engine)
    return engine, db.sessions(engine)


def _password(password_env: str | None, password_file: str | None, Exit) -> str:
    """From an environment variable, a file, or a prompt: never from the command line."""
    if password_env:
        value = os.environ.get(password_env)
        if not value:
            raise Exit(2, f"environment variable {password_env} is empty or not set")
        return value
    if password_file:
        return Path(password_file).read_text(encoding="utf-8").strip()
    return click.prompt("password", hide_input=True, confirmation_prompt=True)


def register(group, config_option, config, Exit) -> None:
    @click.group(invoke_without_command=True)
    @config_option
    @click.option("--listen", help="host:port (default: [console] listen, 127.0.0.1:8642)")
    @click.pass_context
    def console(ctx, config_path, listen):
        """The operator console: a web page over the store (find, trace, resend, alarms)."""
        if ctx.invoked_subcommand is not None:
            return
        import uvicorn

        from gateway import log
        from gateway.console.app import create_app

        cfg = config(config_path)
        log.setup(cfg.log.format, cfg.log.level)
        if listen:
            try:
                from gateway.console.settings import _listen

                cfg.console.listen = _listen(listen)
            except ValueError as exc:
                raise Exit(2, str(exc)) from None
        engine, sessions = _store(cfg)
        from gateway.console import auth

        if not auth.users(sessions):
            click.echo("note: no console user yet; add one with `swgw console user add NAME --role operator`",
                       err=True)
        from gateway.console.settings import split_listen

        host, port = split_listen(cfg.console.listen)
        click.echo(f"swgw console on http://{cfg.console.listen}/ (store {engine.url.render_as_string()})", err=True)
        uvicorn.run(create_app(cfg, engine), host=host, port=port, log_level="warning", proxy_headers=False,
                    server_header=False)

    @console.group()
    def user():
        """Console users and their roles (viewer, operator, admin)."""

    pw_env = click.option("--password-env", help="read the password from this environment variable")
    pw_file = click.option("--password-file", type=click.Path(exists=True, dir_okay=False),
                           help="read the password from this file")

    @user.command("add")
    @config_option
    @click.argument("name")
    @click.option("--role", type=click.Choice(["viewer", "operator", "admin"]), default="viewer", show_default=True)
    @pw_env
    @pw_file
    def user_add(config_path, name, role, password_env, password_file):
        """Add a console user (the password is prompted for, or read from --password-env/--password-file)."""
        from gateway.console import auth

        _, sessions = _store(config(config_path))
        try:
            auth.add_user(sessions, name, role, _password(password_env, password_file, Exit))
        except auth.UserError as exc:
            raise Exit(2, str(exc)) from None
        click.echo(f"console user {name} added ({role})")

    @user.command("passwd")
    @config_option
    @click.argument("name")
    @click.option("--role", type=click.Choice(["viewer", "operator", "admin"]), help="also change the role")
    @pw_env
    @pw_file
    def user_passwd(config_path, name, role, password_env, password_file):
        """Set a user's password (and unlock them); their open sessions end."""
        from gateway.console import auth

        _, sessions = _store(config(config_path))
        try:
            auth.set_password(sessions, name, _password(password_env, password_file, Exit), role)
        except auth.UserError as exc:
            raise Exit(2, str(exc)) from None
        click.echo(f"password of {name} changed" + (f", role {role}" if role else ""))

    @user.command("remove")
    @config_option
    @click.argument("name")
    def user_remove(config_path, name):
        """Remove a console user (their sessions end at once)."""
        from gateway.console import auth

        _, sessions = _store(config(config_path))
        try:
            auth.remove_user(sessions, name)
        except auth.UserError as exc:
            raise Exit(1, str(exc)) from None
        click.echo(f"console user {name} removed")

    @user.command("list")
    @config_option
    def user_list(config_path):
        """The console users, their roles, and who is locked out."""
        from gateway.console import auth

        _, sessions = _store(config(config_path))
        for u in auth.users(sessions):
            locked = f"  locked until {u.locked_until:%Y-%m-%d %H:%M}" if u.locked_until else ""
            click.echo(f"{u.name:<20} {u.role:<9}{locked}")

    group.add_command(console)
