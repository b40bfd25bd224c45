"""Operator commands behind the Makefile: `python -m app.cli <command>`."""

import argparse
import asyncio
import getpass
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import uvicorn
from alembic import command
from alembic.config import Config
from pydantic import ValidationError

from app import dbroles, devdb
from app.core.config import MULTIPROC_ENV, MetricsSettings, Settings, get_settings
from app.core.logging import configure_logging
from app.server import PROTOCOL

if TYPE_CHECKING:
    from app.audit.chain import ChainAnchor

ALEMBIC_INI = Path(__file__).resolve().parent.parent / "alembic.ini"
APP_FACTORY = "app.factory:create_served_app"
ADMIN_PASSWORD_ENV = "ROOMBOOK_ADMIN_PASSWORD"  # noqa: S105 - the variable's name
PRUNE_BATCH_SIZE = 1000
"""Rows deleted per transaction by `prune`: short locks, bounded WAL per commit."""


def provide_database(*, keep_running: bool = False) -> str:
    """Return the API's database URL, or start the embedded server and return its URL.

    On the embedded server the API connects as `roombook_app` (created when missing) and
    migrations as the server's superuser; the URLs are exported as `DATABASE__URL` and
    `DATABASE__MIGRATION_URL` so reloaders, workers and Alembic see them too.
    """
    configured = get_settings().database.url
    if configured is not None:
        return configured.get_secret_value()
    server_url = devdb.embedded_server_url(keep_running=keep_running)
    asyncio.run(devdb.ensure_database(server_url, devdb.DATABASE_NAME))
    asyncio.run(devdb.ensure_login_role(server_url, devdb.APP_ROLE))
    owner_url = devdb.with_database(server_url, devdb.DATABASE_NAME)
    url = devdb.with_user(owner_url, devdb.APP_ROLE)
    os.environ["DATABASE__URL"] = url
    os.environ["DATABASE__MIGRATION_URL"] = owner_url
    get_settings.cache_clear()
    return url


def alembic_config() -> Config:
    """Alembic configuration pointing at this project's migrations."""
    return Config(str(ALEMBIC_INI))


def owner_url() -> str:
    """URL of the role owning the tables: `DATABASE__MIGRATION_URL`, else `DATABASE__URL`."""
    configured = get_settings().database.owner_url
    if configured is None:
        raise SystemExit("DATABASE__URL is not set")
    return configured.get_secret_value()


def grant(*, role: str) -> None:
    """Give `role` the API's privileges as the owner; exit 1 when the role is unfit."""
    try:
        asyncio.run(dbroles.grant_app_role(owner_url(), role=role))
    except dbroles.RoleNotGrantable as exc:
        raise SystemExit(f"grant-app-role: {exc}") from exc


def migrate(revision: str) -> None:
    """Upgrade as the owner, then re-grant the API's role so new tables are covered.

    Nothing is granted when the API connects as the owner itself (one role, development).
    """
    command.upgrade(alembic_config(), revision)
    database = get_settings().database
    if database.url is None or database.migration_url is None:
        return
    role = dbroles.user_of(database.url.get_secret_value())
    if role is not None and role != dbroles.user_of(database.migration_url.get_secret_value()):
        grant(role=role)


def cmd_migrate(args: argparse.Namespace) -> None:
    """Apply migrations up to a revision (head by default)."""
    provide_database()
    migrate(args.revision)


def cmd_grant_app_role(args: argparse.Namespace) -> None:
    """Give a role exactly the API's privileges (the user of `DATABASE__URL` by default)."""
    url = provide_database()
    role = args.role or dbroles.user_of(url)
    if role is None:
        raise SystemExit("grant-app-role: name the role with --role")
    grant(role=role)
    sys.stdout.write(f"granted the API's privileges to {role}\n")


def cmd_downgrade(args: argparse.Namespace) -> None:
    """Revert migrations down to a revision (one step by default)."""
    provide_database()
    command.downgrade(alembic_config(), args.revision)


def cmd_makemigration(args: argparse.Namespace) -> None:
    """Autogenerate a migration from the models."""
    provide_database()
    command.upgrade(alembic_config(), "head")
    command.revision(alembic_config(), message=args.message, autogenerate=True)


def server_options(settings: Settings, *, reload: bool) -> dict[str, Any]:
    """The uvicorn options `run` (with `reload`) and `serve` start the app with."""
    server = settings.server
    return {
        "factory": True,
        "host": server.host,
        "port": server.port,
        "reload": reload,
        "reload_dirs": ["app"] if reload else None,
        "workers": None if reload else server.workers,
        # Roombook's edge middleware is the one place that believes X-Forwarded-For, and only
        # from HTTP__TRUSTED_PROXIES; uvicorn's own proxy handling trusts loopback by default.
        "proxy_headers": False,
        # No product banner for scanners; the Date header stays (caches and clients use it).
        "server_header": False,
        # httptools with a deadline for headers: uvicorn alone lets a trickling client stay.
        "http": PROTOCOL,
        "timeout_keep_alive": server.keep_alive_timeout_s,
        # Shutdown stops accepting at once (new connections are refused), then waits this long.
        "timeout_graceful_shutdown": server.graceful_shutdown_timeout_s,
        "access_log": False,
        "log_config": None,
    }


@contextmanager
def shared_metrics_dir(metrics: MetricsSettings) -> Iterator[None]:
    """Give the workers one empty directory to share their metric values through.

    prometheus_client picks its multiprocess mode from `PROMETHEUS_MULTIPROC_DIR` when it
    is first imported, so the variable is set here, before any worker imports the app.
    Values left by an earlier run are removed (they would add to the new counts); a
    temporary directory, used when `METRICS__MULTIPROC_DIR` is unset, goes at exit.
    """
    if not metrics.enabled:
        yield
        return
    if metrics.multiproc_dir is None:
        directory = tempfile.mkdtemp(prefix="roombook-metrics-")
    else:
        directory = metrics.multiproc_dir
        Path(directory).mkdir(parents=True, exist_ok=True)
        for stale in Path(directory).glob("*.db"):
            stale.unlink()
    os.environ[MULTIPROC_ENV] = directory
    try:
        yield
    finally:
        if metrics.multiproc_dir is None:
            shutil.rmtree(directory, ignore_errors=True)


def cmd_run(args: argparse.Namespace) -> None:
    """Provide a database, migrate, and serve with auto-reload for development."""
    provide_database()
    migrate("head")
    settings = get_settings()
    with shared_metrics_dir(settings.metrics):
        uvicorn.run(APP_FACTORY, **server_options(settings, reload=True))


def cmd_serve(args: argparse.Namespace) -> None:
    """Serve like production: no reload, `SERVER__WORKERS` worker processes."""
    provide_database()
    settings = get_settings()
    with shared_metrics_dir(settings.metrics):
        uvicorn.run(APP_FACTORY, **server_options(settings, reload=False))


def cmd_db_start(args: argparse.Namespace) -> None:
    """Start the embedded PostgreSQL and leave it running."""
    if get_settings().database.url is not None:
        sys.stdout.write("DATABASE__URL is set: that server is used, nothing embedded started\n")
        return
    url = provide_database(keep_running=True)
    sys.stdout.write(
        f"embedded PostgreSQL running: DATABASE__URL={url} DATABASE__MIGRATION_URL={owner_url()}\n"
    )


def cmd_db_stop(args: argparse.Namespace) -> None:
    """Stop the embedded PostgreSQL."""
    devdb.stop_embedded_server()


def cmd_audit_verify(args: argparse.Namespace) -> None:
    """Walk the audit hash chain; print `ok` or the first broken entry (exit 1 on a break).

    Each `--anchor SEQ:HASH` (a head printed by `audit-anchor` and kept elsewhere) must
    still be in the chain with that hash.
    """
    from app.audit.commands import ChainUnavailable, describe, verify_chain

    url = provide_database()
    try:
        report = asyncio.run(verify_chain(get_settings(), url=url, anchors=args.anchor))
    except ChainUnavailable as exc:
        sys.stderr.write(f"{exc}\n")
        raise SystemExit(2) from exc
    sys.stdout.write(describe(report) + "\n")
    if not report.ok:
        raise SystemExit(1)


def cmd_audit_anchor(args: argparse.Namespace) -> None:
    """Verify the audit chain and print its head as `SEQ:HASH`, to publish elsewhere."""
    from app.audit.commands import ChainUnavailable, anchor_chain, describe

    url = provide_database()
    try:
        report, anchor = asyncio.run(anchor_chain(get_settings(), url=url))
    except ChainUnavailable as exc:
        sys.stderr.write(f"{exc}\n")
        raise SystemExit(2) from exc
    if not report.ok:
        # An anchor of a chain that does not verify would vouch for the tampering.
        sys.stderr.write(f"no anchor: {describe(report)}\n")
        raise SystemExit(1)
    sys.stdout.write(f"{anchor}\n")


def _anchor(text: str) -> "ChainAnchor":
    from app.audit.chain import ChainAnchor

    try:
        return ChainAnchor.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def cmd_prune(args: argparse.Namespace) -> None:
    """Delete expired sessions, refresh tokens, failure counts and idempotency keys.

    Prints the rows removed per table.
    """
    from app.auth.commands import prune_expired
    from app.core.idempotency_store import IdempotencyRecord, prune_expired_keys

    url = provide_database()
    settings = get_settings()
    removed = asyncio.run(prune_expired(settings, url=url, batch_size=args.batch_size))
    removed[IdempotencyRecord.__tablename__] = asyncio.run(
        prune_expired_keys(settings, url=url, batch_size=args.batch_size)
    )
    for table, count in removed.items():
        sys.stdout.write(f"{table}: {count} removed\n")


def read_admin_password() -> str:
    """The new admin's password: from `ROOMBOOK_ADMIN_PASSWORD`, else prompted for twice."""
    from_env = os.environ.get(ADMIN_PASSWORD_ENV)
    if from_env:
        return from_env
    first = getpass.getpass("Password for the new admin: ")
    if getpass.getpass("Repeat the password: ") != first:
        raise SystemExit("create-admin: the passwords do not match")
    return first


def cmd_create_admin(args: argparse.Namespace) -> None:
    """Create an admin account (the first one, typically); exit 1 when refused."""
    from app.auth.commands import AdminNotCreated, create_admin_account

    url = provide_database()
    password = read_admin_password()
    try:
        user = asyncio.run(
            create_admin_account(
                get_settings(), url=url, email=args.email, password=password, full_name=args.name
            )
        )
    except AdminNotCreated as exc:
        sys.stderr.write(f"create-admin: {exc}\n")
        raise SystemExit(1) from exc
    sys.stdout.write(f"admin {user.email} created (id {user.id})\n")


def cmd_seed(args: argparse.Namespace) -> None:
    """Load the demo data set once (refused in production) and print its credentials."""
    from app.core.clock import utc_now
    from app.seed import DEMO_USERS, SeedRefused, seed_demo

    url = provide_database()
    try:
        seeded = asyncio.run(seed_demo(get_settings(), url=url, clock=utc_now))
    except SeedRefused as exc:
        sys.stderr.write(f"seed: {exc}\n")
        raise SystemExit(1) from exc
    sys.stdout.write(
        "demo data loaded\n" if seeded else "demo data already there: nothing changed\n"
    )
    sys.stdout.write("development credentials (never use them elsewhere):\n")
    for demo in DEMO_USERS:
        sys.stdout.write(f"  {demo.role.value:8} {demo.email:22} {demo.password}\n")


def cmd_openapi(args: argparse.Namespace) -> None:
    """Write the OpenAPI document without starting a server or a database.

    With `--defaults` the document follows the default settings, whatever the environment
    and `.env` say (the committed TypeScript client must not depend on a developer's setup).
    """
    from app.factory import create_app

    # Constructed, not validated: the defaults alone, no environment variable, no `.env`.
    settings = Settings.model_construct() if args.defaults else None
    document = create_app(settings).openapi()
    Path(args.output).write_text(json.dumps(document, indent=2) + "\n")


COMMANDS: dict[str, Callable[[argparse.Namespace], None]] = {
    "migrate": cmd_migrate,
    "grant-app-role": cmd_grant_app_role,
    "downgrade": cmd_downgrade,
    "makemigration": cmd_makemigration,
    "run": cmd_run,
    "serve": cmd_serve,
    "db-start": cmd_db_start,
    "db-stop": cmd_db_stop,
    "openapi": cmd_openapi,
    "audit-verify": cmd_audit_verify,
    "audit-anchor": cmd_audit_anchor,
    "create-admin": cmd_create_admin,
    "prune": cmd_prune,
    "seed": cmd_seed,
}


def build_parser() -> argparse.ArgumentParser:
    """Describe the commands and their arguments."""
    parser = argparse.ArgumentParser(prog="python -m app.cli", description="Roombook operations")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate").add_argument("revision", nargs="?", default="head")
    sub.add_parser("grant-app-role").add_argument("--role", default=None)
    sub.add_parser("downgrade").add_argument("revision", nargs="?", default="-1")
    sub.add_parser("makemigration").add_argument("-m", "--message", required=True)
    openapi = sub.add_parser("openapi")
    openapi.add_argument("-o", "--output", default="openapi.json")
    openapi.add_argument("--defaults", action="store_true")
    create_admin = sub.add_parser("create-admin")
    create_admin.add_argument("email")
    create_admin.add_argument("--name", default="Administrator")
    prune = sub.add_parser("prune")
    prune.add_argument("--batch-size", type=int, default=PRUNE_BATCH_SIZE)
    audit_verify = sub.add_parser("audit-verify")
    audit_verify.add_argument(
        "--anchor", type=_anchor, action="append", default=[], metavar="SEQ:HASH"
    )
    for name in ("run", "serve", "db-start", "db-stop", "audit-anchor", "seed"):
        sub.add_parser(name)
    return parser


def settings_errors(exc: ValidationError) -> str:
    """One line naming each invalid setting, without echoing any value."""
    return "; ".join(
        f"{'__'.join(str(p) for p in e['loc']).upper() or 'settings'}: {e['msg']}"
        for e in exc.errors()
    )


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and run the command."""
    args = build_parser().parse_args(argv)
    try:
        settings = get_settings()
    except ValidationError as exc:
        raise SystemExit(f"roombook: refusing to start: {settings_errors(exc)}") from None
    configure_logging(settings.log, production=settings.is_production)
    COMMANDS[args.command](args)


if __name__ == "__main__":
    main()
