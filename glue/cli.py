"""The `glue` command line: serve, dev, simulate, worker, doctor."""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import sys
import time
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import uvicorn
from pydantic import SecretStr

from glue.settings import WEBHOOK_PATH, Settings
from glue.status_callback import STATUS_PATH

if TYPE_CHECKING:
    from glue.devdb import EmbeddedPostgres, LocalAuth
    from glue.devdb.mail import Mail
    from glue.devdb.serving import BackgroundServer

API_PORT = 54321  # the Supabase CLI's local API port
DEV_WELCOME = "Welcome! This is the glue relay on your machine. Send anything and it echoes it back."


def _uvicorn_options(settings: Settings) -> dict[str, Any]:
    # The app builds the public URL itself (PUBLIC_BASE_URL / TRUST_FORWARDED_HEADERS), so uvicorn
    # must not rewrite the scheme from X-Forwarded-Proto on its own; and the app logs one line
    # per request, so uvicorn's access log is off.
    return {
        "proxy_headers": False,
        "access_log": False,
        "log_level": settings.log_level,
        "server_header": False,
    }


def serve(args: argparse.Namespace) -> int:
    """Production server: host, port and workers from the flags, else HOST, PORT, WORKERS."""
    flags = {"host": args.host, "port": args.port, "workers": args.workers}
    for key, value in flags.items():
        if value is None:
            continue
        os.environ[key.upper()] = str(value)  # the worker processes read the settings themselves
    settings = Settings()
    if problem := settings.public_url_problem():
        print(f"glue serve: {problem}", file=sys.stderr)
        return 2
    uvicorn.run(
        "glue.app:app_from_environment",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        **_uvicorn_options(settings),
    )
    return 0


SEED_OVERVIEW = """
select coalesce(u.phone_number, u.whatsapp_user_id, '-') as who,
       coalesce(u.email, '-') as email,
       coalesce(u.full_name, '-') as name,
       (select count(*) from public.whatsapp_messages as m where m.user_id = u.id) as messages,
       (select count(*) from public.user_merges as g where g.survivor_id = u.id and g.outcome = 'merged') as merges
from public.users as u
order by u.created_at, u.id
"""


def seed_overview(database_url: str) -> list[str]:
    """One line per profile in the database: how `glue dev` shows the demo data of seed.sql."""
    import psycopg

    with psycopg.connect(database_url) as conn:
        rows = conn.execute(SEED_OVERVIEW).fetchall()
    lines = [f"  {'phone / BSUID':<24} {'email':<20} {'name':<16} messages  merges"]
    lines += [f"  {who:<24} {email:<20} {name:<16} {n:>8}  {m:>6}" for who, email, name, n, m in rows]
    return lines


def _print_mail(mail: Mail) -> None:
    print(f"[mail] to {', '.join(mail.to)}: {mail.subject!r}  code {mail.code}", flush=True)


def _start_local_auth(
    server: EmbeddedPostgres,
) -> tuple[LocalAuth | None, BackgroundServer | None, list[str]]:
    """The real Auth server and the local API (`/auth/v1`, `/rest/v1`) when Auth's binary is here."""
    from glue.devdb import start_local_auth
    from glue.devdb.api import create_api
    from glue.devdb.auth import load_config, test_otps, unavailable_reason
    from glue.devdb.server import port_is_free
    from glue.devdb.serving import BackgroundServer

    auth = start_local_auth(server, on_mail=_print_mail)
    if auth is None:
        return None, None, [f"  Auth:         not running ({unavailable_reason()})"]
    keys = {auth.server.anon_key, auth.server.service_role_key}
    try:
        api = BackgroundServer(
            create_api(server.url("authenticator"), auth.server.url, auth.server.secret, keys),
            API_PORT if port_is_free(API_PORT) else 0,
        )
        api.start()
    except BaseException:
        auth.stop()
        raise
    numbers = ", ".join(f"+{n} code {c}" for n, c in test_otps(load_config()).items()) or "none configured"
    return (
        auth,
        api,
        [
            f"  SUPABASE_URL={api.base}   (/auth/v1: the real Supabase Auth server; /rest/v1: RPCs and reads)",
            f"  SUPABASE_ANON_KEY={auth.server.anon_key}",
            f"  SUPABASE_SERVICE_ROLE_KEY={auth.server.service_role_key}",
            f"  test phones:  {numbers}   ([auth.sms.test_otp] in supabase/config.toml)",
            "  mails Auth sends (sign-up confirmations) are printed here as [mail] lines, with their code",
        ],
    )


def glue_command() -> str:
    """How to run glue from a fresh shell, for the commands `glue dev` prints.

    A new shell has no .venv on its PATH, so a bare `glue` fails there. From a clone, scripts/glue
    bootstraps and runs it: relative when we stand at the clone's root (scripts/dev runs from there),
    absolute otherwise. Installed without a clone, `glue` is on the PATH of whoever installed it.
    """
    wrapper = Path(__file__).resolve().parent.parent / "scripts" / "glue"
    if not wrapper.is_file():
        return "glue"
    if wrapper.parent.parent == Path.cwd().resolve():
        return "scripts/glue"
    return str(wrapper)


DEV_SENDER = "whatsapp:+14155238886"  # the number `glue simulate` writes to by default

# A template the local stand-in accepts; a real one is an HX... SID from Twilio's Content API.
DEV_TEMPLATE = "HX" + "0" * 32


class DevOutbox:
    """`glue dev`'s outbox: the Messages API stand-in on a loopback port and a worker loop in a thread.

    Each message the worker sends is printed with the `glue simulate --status` command that reports it
    delivered, signed for the message's own StatusCallback URL, as Twilio would call it.
    """

    def __init__(self, database_url: str, relay_base: str, relay_token: str, interval: float) -> None:
        import threading

        from twilio.rest import Client

        from glue.devdb.serving import BackgroundServer
        from glue.devdb.twilio_api import ACCOUNT, TOKEN, TwilioStandIn
        from glue.worker import RedirectedHttpClient, WorkerConfig

        self.database_url = database_url
        self.relay_token = relay_token
        self.interval = interval
        self.standin = TwilioStandIn()
        self.api = BackgroundServer(self.standin.app)
        self.port = self.api.port
        http = RedirectedHttpClient(self.api.base)
        self.client = Client(ACCOUNT, TOKEN, http_client=http)
        self.config = WorkerConfig(from_address=DEV_SENDER, status_callback_url=relay_base + STATUS_PATH)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="glue-dev-worker", daemon=True)

    def start(self) -> None:
        self.api.start()
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=30)
        self.api.stop()

    def _loop(self) -> None:
        from glue.worker import run_once

        while not self.stopping.is_set():
            try:
                tally = run_once(self.database_url, self.client, self.config)
            except Exception as error:  # the database going away at Ctrl-C, a bad row: say so, go on
                print(f"[worker] pass failed: {type(error).__name__}: {error}", flush=True)
                self.stopping.wait(self.interval)
                continue
            for sid in tally.sids:
                self._print_sent(sid)
            if tally.failed or tally.unknown or tally.reconciled or tally.requeued:
                print(
                    f"[worker] failed {tally.failed}, unknown {tally.unknown},"
                    f" reconciled {tally.reconciled}, requeued {tally.requeued}",
                    flush=True,
                )
            if not tally.sids:
                self.stopping.wait(self.interval)

    def _print_sent(self, sid: str) -> None:
        message = self.standin.find(sid) or {}
        callback = message.get("callback") or ""
        print(
            f"[worker] sent {sid} to {message.get('to')} (Twilio stand-in); report it delivered:", flush=True
        )
        print(
            f"  TWILIO_AUTH_TOKEN={self.relay_token} {glue_command()} simulate --url '{callback}'"
            f" --status {sid} --message-status delivered",
            flush=True,
        )


def _dev_settings(port: int) -> Settings:
    """The environment's settings with what a local run needs: a fresh token, the request's own URL
    trusted (on this machine that is the URL Twilio would call), the welcome reply."""
    from glue.devdb.server import free_port, port_is_free

    base = Settings()
    return base.model_copy(
        update={
            "twilio_auth_token": SecretStr(secrets.token_hex(16)),
            "twilio_auth_token_secondary": None,
            "public_base_url": None,
            "trust_host_header": True,
            "host": "127.0.0.1",
            "port": port or (base.port if port_is_free(base.port) else free_port()),
            "welcome_reply": base.welcome_reply or DEV_WELCOME,
        }
    )


def _print_dev_banner(database_url: str, settings: Settings, auth_lines: list[str], started: float) -> None:
    token = settings.twilio_auth_token.get_secret_value() if settings.twilio_auth_token else ""
    url = f"http://127.0.0.1:{settings.port}{WEBHOOK_PATH}"
    print(f"local platform ready in {time.monotonic() - started:.1f}s (migrations and seed applied)")
    print(f"  DATABASE_URL={database_url}")
    print(f"  relay:        {url}   (health: http://127.0.0.1:{settings.port}/readyz)")
    print(f"  TWILIO_AUTH_TOKEN={token}   (generated for this run)")
    print()
    print("\n".join(auth_lines))
    print()
    print("Profiles (demo data from supabase/seed.sql):")
    print("\n".join(seed_overview(database_url)))
    print()
    print("Send it a WhatsApp-style message from another terminal:")
    print(
        f'  TWILIO_AUTH_TOKEN={token} {glue_command()} simulate --url {url} --from +14155550123 --body "hi"'
    )
    print("Look at what was stored:")
    print(f'  psql {database_url} -c "select * from public.users"')
    print("Ctrl-C stops the relay and the database, and removes its data.", flush=True)


def _print_outbox_help(database_url: str, stand_in_port: int) -> None:
    print()
    print(
        f"Outbox: a worker sends queued messages to a stand-in of Twilio's API (http://127.0.0.1:{stand_in_port})."
    )
    # A template, because free-form text needs a message from the person in the last 24 hours.
    print("Queue a (template) message to Amara as the service role:")
    print(
        f'  psql {database_url} -c "set role service_role; select id, status from'
        " public.send_whatsapp_message((select id from public.users where phone_number = '+14155550101'),"
        f" 'hello-1', content_sid => '{DEV_TEMPLATE}')\""
    )
    print("The worker prints a [worker] line for each message it sends, with the command that reports it")
    print("delivered as Twilio's status callback would. Then look at its status:")
    print(f'  psql {database_url} -c "select status, message_sid from public.outbound_messages"', flush=True)


def dev(args: argparse.Namespace) -> int:
    """The local platform with migrations and seed, Supabase Auth and the local API, the relay on it
    with a generated token, and the outbox's worker against a stand-in of Twilio's API."""
    from glue.app import create_app
    from glue.devdb import start_local_platform
    from glue.example_hooks import echo
    from glue.gateway import PsycopgGateway
    from glue.hooks import load_hook
    from glue.logs import configure_logging

    started = time.monotonic()
    server = start_local_platform(seed=True)
    auth = None
    api = None
    outbox: DevOutbox | None = None
    try:
        auth, api, auth_lines = _start_local_auth(server)
        settings = _dev_settings(args.port)
        database_url = server.url("postgres")
        hook = load_hook(settings.reply_hook) if settings.reply_hook else echo
        gateway = PsycopgGateway(database_url, settings.db_pool_size, settings.db_timeout)
        app = create_app(settings, gateway, hook)
        _print_dev_banner(database_url, settings, auth_lines, started)
        token = settings.twilio_auth_token.get_secret_value() if settings.twilio_auth_token else ""
        outbox = DevOutbox(database_url, f"http://127.0.0.1:{settings.port}", token, settings.worker_interval)
        outbox.start()
        _print_outbox_help(database_url, outbox.port)
        config = uvicorn.Config(app, host="127.0.0.1", port=settings.port, **_uvicorn_options(settings))
        configure_logging(settings.log_level)  # after uvicorn's Config, which applies its own logging setup
        # uvicorn re-raises Ctrl-C once it has shut down; that is the normal way out of `glue dev`.
        with contextlib.suppress(KeyboardInterrupt):
            uvicorn.Server(config).run()
    finally:
        for running in (outbox, api, auth):
            if running is not None:
                running.stop()
        server.destroy()
    print(f"stopped; the local database in {server.root} is removed", flush=True)
    return 0


def simulate(args: argparse.Namespace) -> int:
    """Send one signed Twilio-style message (or, with --status, a status callback) to a running relay."""
    from glue.simulate import default_status_url, default_url, inbound_params, send

    settings = Settings()
    configured = settings.twilio_auth_token.get_secret_value() if settings.twilio_auth_token else ""
    token = args.token or configured
    if not token:
        print("glue simulate: set TWILIO_AUTH_TOKEN (or --token) to the relay's token", file=sys.stderr)
        return 2
    if args.status is not None:
        return _simulate_status(args, token, args.url or default_status_url(settings.host, settings.port))
    if args.sender is None:
        print("glue simulate: --from is required (or --status SID for a status callback)", file=sys.stderr)
        return 2
    url = args.url or default_url(settings.host, settings.port)
    media = [(u, "image/jpeg") for u in args.media_url]
    params = inbound_params(
        args.sender, args.body, to=args.to, sid=args.sid, profile_name=args.profile_name, media=media
    )
    import httpx

    try:
        response = send(url, params, token)
    except httpx.HTTPError as error:
        print(f"glue simulate: {url}: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    print(f"{response.status_code} {response.reason_phrase}  MessageSid={params['MessageSid']}")
    print(response.text)
    return 0 if response.status_code == 200 else 1


def _simulate_status(args: argparse.Namespace, token: str, url: str) -> int:
    """Send one signed status callback for MessageSid `args.status` and print the relay's answer."""
    import httpx

    from glue.simulate import send, status_params

    params = status_params(
        args.status, args.message_status, sender=args.to, recipient=args.sender, error_code=args.error_code
    )
    try:
        response = send(url, params, token)
    except httpx.HTTPError as error:
        print(f"glue simulate: {url}: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    print(
        f"{response.status_code} {response.reason_phrase}  MessageSid={args.status}"
        f" MessageStatus={args.message_status}"
    )
    print(response.text)
    return 0 if response.status_code == 200 else 1


def doctor(args: argparse.Namespace) -> int:
    """Each check on its own line with a verdict; exit 1 when any check fails."""
    from glue.doctor import run_checks

    checks = run_checks()
    for check in checks:
        print(check.line())
    failed = sum(c.verdict == "FAIL" for c in checks)
    print(f"{'FAIL' if failed else 'ok'}: {failed} failed, {len(checks) - failed} passed or warned")
    return 1 if failed else 0


def _worker_settings_missing(settings: Settings) -> list[str]:
    """The names of the settings `glue worker` cannot run without, that are not set."""
    required = (
        ("DATABASE_URL", settings.database_url),
        ("TWILIO_ACCOUNT_SID", settings.twilio_account_sid),
        ("TWILIO_AUTH_TOKEN", settings.twilio_auth_token),
        (
            "TWILIO_WHATSAPP_FROM or TWILIO_MESSAGING_SERVICE_SID",
            settings.twilio_whatsapp_from or settings.twilio_messaging_service_sid,
        ),
    )
    return [name for name, value in required if not value]


def worker(args: argparse.Namespace) -> int:
    """The outbox worker: send and reconcile passes until stopped (or once with --once)."""
    import signal

    from twilio.rest import Client

    from glue.worker import RedirectedHttpClient, WorkerConfig, run_once

    settings = Settings()
    if missing := _worker_settings_missing(settings):
        print(f"glue worker: set {', '.join(missing)}", file=sys.stderr)
        return 2
    assert settings.database_url is not None and settings.twilio_auth_token is not None
    http = RedirectedHttpClient(settings.twilio_api_base_url) if settings.twilio_api_base_url else None
    client = Client(
        settings.twilio_account_sid, settings.twilio_auth_token.get_secret_value(), http_client=http
    )
    callback = settings.status_callback_url or (
        f"{settings.public_base_url}{STATUS_PATH}" if settings.public_base_url else None
    )
    config = WorkerConfig(
        from_address=settings.twilio_whatsapp_from,
        messaging_service_sid=settings.twilio_messaging_service_sid,
        status_callback_url=callback,
    )
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    database_url = settings.database_url.get_secret_value()
    while not stopping:
        tally = run_once(database_url, client, config)
        busy = tally.sent + tally.failed + tally.unknown + tally.reconciled + tally.requeued
        if busy:
            print(
                f"worker: sent {tally.sent}, failed {tally.failed}, unknown {tally.unknown},"
                f" reconciled {tally.reconciled}, requeued {tally.requeued}",
                flush=True,
            )
        if args.once:
            break
        if not busy:
            time.sleep(settings.worker_interval)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="glue", description="The Twilio WhatsApp relay for the glue identity layer."
    )
    parser.add_argument("--version", action="version", version=f"glue {version('glue')}")
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("serve", help="run the relay (production): settings from the environment")
    p.add_argument("--host", help="listen address (HOST, default 127.0.0.1)")
    p.add_argument("--port", type=int, help="listen port (PORT, default 8000)")
    p.add_argument("--workers", type=int, help="worker processes (WORKERS, default 1)")
    p.set_defaults(run=serve)

    p = commands.add_parser("dev", help="local platform (migrations + seed) and the relay on it")
    p.add_argument("--port", type=int, default=0, help="relay port (default PORT, or a free one)")
    p.set_defaults(run=dev)

    p = commands.add_parser(
        "simulate", help="send a signed Twilio-style WhatsApp message (or a status callback) to a relay"
    )
    p.add_argument(
        "--from", dest="sender", help="sender phone, e.g. +14155550123 (with --status: the recipient)"
    )
    p.add_argument("--body", default="", help="message text")
    p.add_argument(
        "--url",
        help=f"relay URL (default http://HOST:PORT{WEBHOOK_PATH}, with --status http://HOST:PORT{STATUS_PATH};"
        " give the message's StatusCallback URL, query string included, to settle a message by its id)",
    )
    p.add_argument("--to", default="whatsapp:+14155238886", help="your WhatsApp sender number")
    p.add_argument(
        "--status", metavar="MESSAGE_SID", help="send a status callback for this outbound MessageSid"
    )
    p.add_argument(
        "--message-status",
        default="delivered",
        choices=["queued", "sent", "delivered", "read", "undelivered", "failed"],
        help="the status to report with --status (default delivered)",
    )
    p.add_argument("--error-code", type=int, help="Twilio's ErrorCode to report with --status")
    p.add_argument("--profile-name", help="the sender's WhatsApp display name")
    p.add_argument("--sid", help="MessageSid to use (repeat one to simulate a redelivery)")
    p.add_argument("--media-url", action="append", default=[], help="attach a media URL (repeatable)")
    p.add_argument("--token", help="auth token to sign with (default TWILIO_AUTH_TOKEN)")
    p.set_defaults(run=simulate)

    p = commands.add_parser("worker", help="send queued WhatsApp messages (the outbox) through Twilio")
    p.add_argument("--once", action="store_true", help="one send and reconcile pass, then exit")
    p.set_defaults(run=worker)

    p = commands.add_parser("doctor", help="check configuration, database, migrations and token")
    p.set_defaults(run=doctor)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.run(args)
    return result
