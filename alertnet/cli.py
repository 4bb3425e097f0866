"""The `alertnet` command: serve, migrate, token, audit, demo."""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web

from . import __version__, admin, logs
from . import audit as chain
from .app import create_app, utcnow
from .auth import CLI, Role
from .errors import AlertnetError
from .schemas import TokenIn
from .settings import ConfigError, Settings, load_settings
from .store import audit, db

log = structlog.get_logger("alertnet.cli")


def _settings(args: argparse.Namespace, **overrides: Any) -> Settings:
    settings = load_settings(args.config, **{k: v for k, v in overrides.items() if v is not None})
    logs.configure(settings.log_level, settings.log_format)
    return settings


def _with_engine(settings: Settings, work: Callable[[Any], Awaitable[int]], *, migrate: bool = True) -> int:
    file = db.sqlite_file(db.async_url(settings.database_url))
    if not migrate and file is not None and not file.exists():
        # SQLite would create an empty file: a mistyped backup path would look like a bad database.
        print(f"alertnet: no database file at {file}", file=sys.stderr)
        return 2

    async def run() -> int:
        engine = db.create_engine(settings.database_url)
        try:
            if migrate:
                await db.migrate(engine)
            elif await db.current_revision(engine) is None:
                print(
                    "alertnet: this database has no alertnet schema; run `alertnet migrate`", file=sys.stderr
                )
                return 2
            return await work(engine)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def serve(args: argparse.Namespace) -> int:
    settings = _settings(args, host=args.host, port=args.port)
    app = create_app(settings)
    log.info(
        "serving",
        url=f"http://{settings.host}:{settings.port}",
        public_url=settings.effective_public_url,
        provider=settings.sms_provider,
        database=db.async_url(settings.database_url).get_backend_name(),
    )
    return listen(app, settings)


def listen(app: web.Application, settings: Settings) -> int:
    """Serve until stopped; a port that cannot be had is one clear line and exit 1, not a traceback."""
    try:
        web.run_app(app, host=settings.host, port=settings.port, access_log=None, print=None)
    except OSError as exc:
        # asyncio's words for a port it could not have, or a host name that does not resolve.
        if "bind" not in str(exc) and not isinstance(exc, socket.gaierror):
            raise
        reason = exc.strerror if isinstance(exc, socket.gaierror) else os.strerror(exc.errno or 0)
        print(f"alertnet: cannot listen on {settings.host}:{settings.port}: {reason}", file=sys.stderr)
        return 1
    return 0


def migrate(args: argparse.Namespace) -> int:
    settings = _settings(args)

    async def work(engine: Any) -> int:
        print(f"database at migration {await db.current_revision(engine)}")
        return 0

    return _with_engine(settings, work)


def token_create(args: argparse.Namespace) -> int:
    settings = _settings(args)

    async def work(engine: Any) -> int:
        async with db.write(engine) as conn:
            if args.role == Role.admin:
                secret, row = await admin.issue_admin_token(conn, CLI, args.label, utcnow())
            else:
                body = TokenIn(
                    role=args.role, neighbourhood_id=args.neighbourhood, group_id=args.group, label=args.label
                )
                secret, row = await admin.issue_token(conn, CLI, body, utcnow())
        print(f"{row['role']} token {row['id']} created; it is shown only now:", file=sys.stderr)
        print(secret)
        return 0

    return _with_engine(settings, work)


def _anchor(text: str) -> chain.Anchor:
    try:
        return chain.Anchor.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def audit_verify(args: argparse.Namespace) -> int:
    settings = _settings(args)

    async def work(engine: Any) -> int:
        async with db.read(engine) as conn:
            verdict = await audit.verify(conn, anchor=args.expect)
        if verdict.ok:
            print(f"audit chain intact: {verdict.count} events")
            if args.expect:
                print(f"anchor {args.expect} found: nothing up to it was rewritten or removed")
            if verdict.head:
                print(f"head {verdict.head}  (note it down; --expect it later)")
            return 0
        before = (
            f"{verdict.count} events before it are intact"
            if verdict.intact_before
            else "nothing up to it can be trusted"
        )
        print(f"audit chain BROKEN at seq {verdict.bad_seq}: {verdict.reason} ({before})")
        return 1

    # Verifying only reads: a backup or an old copy is checked as it is.
    return _with_engine(settings, work, migrate=False)


def sms(args: argparse.Namespace) -> int:
    """Post an SMS to a running service exactly as Twilio would, signed when a Twilio token is set."""
    from . import twiliosim

    settings = _settings(args)
    url = (args.url or settings.effective_public_url).rstrip("/") + "/sms/inbound"
    token = settings.twilio_auth_token.get_secret_value() if settings.twilio_auth_token else None
    form = twiliosim.inbound_form(args.sender, args.text, to=args.to or settings.twilio_from)
    try:
        replies = twiliosim.post(url, form, token)
    except twiliosim.PostFailed as exc:
        print(f"alertnet: {exc}", file=sys.stderr)
        return 1
    print("\n".join(f"reply: {text}" for text in replies) or "(no reply)")
    return 0


def demo(args: argparse.Namespace) -> int:
    from .demo import run

    settings = _settings(
        args, host=args.host, port=args.port, database_url=args.database_url, sms_provider="console"
    )
    return run(settings)


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(
        prog="alertnet",
        description="alertnet: an SMS alert network for neighbourhoods. Configuration comes from "
        "ALERTNET_* environment variables and, optionally, a TOML file (--config).",
    )
    main.add_argument("--version", action="version", version=f"alertnet {__version__}")
    config = argparse.ArgumentParser(add_help=False)
    config.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="TOML file with settings (see config/alertnet.example.toml); environment variables override it",
    )
    commands = main.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = commands.add_parser(
        "serve",
        parents=[config],
        help="run the service (migrates the database first)",
        description="Run the HTTP service and its workers. Migrates the database on start.",
    )
    p.add_argument("--host", help="address to listen on [ALERTNET_HOST, 127.0.0.1]")
    p.add_argument("--port", type=int, help="port to listen on [ALERTNET_PORT, 8080]")
    p.set_defaults(run=serve)

    p = commands.add_parser(
        "migrate",
        parents=[config],
        help="bring the database schema up to date",
        description="Apply every pending database migration, then exit.",
    )
    p.set_defaults(run=migrate)

    token = commands.add_parser("token", help="manage API tokens").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    p = token.add_parser(
        "create",
        parents=[config],
        help="issue a token and print its secret once",
        description="Issue an API token. The secret goes to standard output, once; "
        "only its hash is stored. Coordinator tokens are scoped to a neighbourhood, "
        "source tokens to a group.",
    )
    p.add_argument("--role", required=True, choices=[r.value for r in Role])
    p.add_argument("--neighbourhood", type=int, metavar="ID", help="neighbourhood id (coordinator tokens)")
    p.add_argument("--group", type=int, metavar="ID", help="group id (source tokens)")
    p.add_argument("--label", help="a note on who holds the token")
    p.set_defaults(run=token_create)

    audit_cmd = commands.add_parser("audit", help="check the audit log").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    p = audit_cmd.add_parser(
        "verify",
        parents=[config],
        help="verify the hash chain",
        description="Recompute the audit hash chain; exit 1 and name the first "
        "edited, removed or reordered event if it is broken. It prints the newest event "
        "as SEQ:HASH: kept outside the server and passed back with --expect, it also "
        "shows newest events removed, or the chain rewritten with recomputed hashes.",
    )
    p.add_argument(
        "--expect",
        type=_anchor,
        metavar="SEQ:HASH",
        help="an anchor an earlier verify printed: the chain must still hold it",
    )
    p.set_defaults(run=audit_verify)

    p = commands.add_parser(
        "sms",
        parents=[config],
        help="send an SMS to a running service, as Twilio would",
        description="Post an inbound SMS to /sms/inbound of a running service (signed with "
        "ALERTNET_TWILIO_AUTH_TOKEN when set) and print the reply. Example: "
        'alertnet sms --from +31612345001 "Verdachte man bij de fietsenstalling"',
    )
    p.add_argument("--from", dest="sender", required=True, metavar="PHONE", help="the sender's number")
    p.add_argument("--to", metavar="PHONE", help="the alertnet number [ALERTNET_TWILIO_FROM]")
    p.add_argument("--url", help="the service's public URL [ALERTNET_PUBLIC_URL, http://HOST:PORT]")
    p.add_argument("text", help="the message text")
    p.set_defaults(run=sms)

    p = commands.add_parser(
        "demo",
        parents=[config],
        help="run a demo: SQLite, console SMS, a seeded neighbourhood",
        description="Seed a demo neighbourhood (a group with allies, a coordinator and a "
        "buurtregisseur) and run the service with the console SMS provider.",
    )
    p.add_argument("--host", help="address to listen on [ALERTNET_HOST, 127.0.0.1]")
    p.add_argument("--port", type=int, help="port to listen on [ALERTNET_PORT, 8080]")
    p.add_argument(
        "--database-url", help="database to seed and serve [ALERTNET_DATABASE_URL, sqlite:///alertnet.db]"
    )
    p.set_defaults(run=demo)
    return main


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        code: int = args.run(args)
    except ConfigError as exc:
        print(f"alertnet: {exc}", file=sys.stderr)
        return 2
    except AlertnetError as exc:
        print(f"alertnet: {exc.message}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
