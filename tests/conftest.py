"""The harness: one Supabase-shaped cluster per run, a fresh database per test.

The template database holds the platform layer and every migration; each test
gets a clone, so tests never see each other's rows.
"""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from actors import App, Database, Postgrest, SupabaseAuth, admin_api
from relay_support import HookRecorder, RelayServer, running_relay
from supabase_auth import SyncGoTrueAdminAPI

from glue.devdb.auth import AuthServer, auth_binary, unavailable_reason
from glue.devdb.mail import MailCatcher
from glue.devdb.platform import create_database, install_platform
from glue.devdb.provider import Cluster, provide_cluster

_counter = itertools.count()


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    cluster = provide_cluster()
    try:
        if cluster.admin_user is not None:
            cluster.prepare_template()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def db(cluster: Cluster) -> Iterator[Database]:
    """A database with the platform layer and all migrations, private to this test."""
    if cluster.admin_user is None:
        yield Database(cluster.host, cluster.port, cluster.dbname, cluster.password)
        return
    name = f"test_{next(_counter)}_{uuid.uuid4().hex[:8]}"
    cluster.clone(name)
    try:
        yield Database(cluster.host, cluster.port, name, cluster.password)
    finally:
        cluster.drop(name)


@pytest.fixture
def bare_db(cluster: Cluster) -> Iterator[Database]:
    """A database with the platform layer only, as a new Supabase project is before any migration."""
    if cluster.admin_user is None:
        pytest.skip("SUPABASE_DB_URL is set: a running stack's database already holds the migrations")
    name = f"bare_{next(_counter)}_{uuid.uuid4().hex[:8]}"
    create_database(cluster.url(cluster.admin_user), name)
    try:
        if cluster.kind == "embedded":
            install_platform(cluster.url(cluster.admin_user, name))
        yield Database(cluster.host, cluster.port, name, cluster.password)
    finally:
        cluster.drop(name)


@pytest.fixture
def sql(db: Database) -> Iterator[psycopg.Connection[dict[str, Any]]]:
    """A connection as `postgres`, the role migrations and the dashboard use."""
    with db.connect("postgres") as conn:
        yield conn


@pytest.fixture
def admin(cluster: Cluster, db: Database) -> Iterator[psycopg.Connection[dict[str, Any]]]:
    """A superuser connection to this test's database, for what only the platform may do (writing
    auth.users with triggers off, switching on function statistics)."""
    if cluster.admin_user is None:
        pytest.skip("needs the platform's superuser, which a running Supabase stack does not lend")
    with psycopg.connect(
        db.url(cluster.admin_user), autocommit=True, row_factory=psycopg.rows.dict_row
    ) as conn:
        yield conn


@pytest.fixture
def postgrest(db: Database) -> Iterator[Postgrest]:
    api = Postgrest(db)
    yield api
    api.close()


@pytest.fixture
def supabase_auth(db: Database) -> Iterator[SupabaseAuth]:
    auth = SupabaseAuth(db)
    yield auth
    auth.close()


@pytest.fixture
def hook() -> HookRecorder:
    """A reply hook that counts its calls and echoes the body."""
    return HookRecorder()


@pytest.fixture
def relay(db: Database, hook: HookRecorder) -> Iterator[RelayServer]:
    """The relay on this test's database, served by a real uvicorn, with the `hook` fixture."""
    with running_relay(db.url("postgres"), hook) as server:
        yield server


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    """An HTTP client for the relay."""
    with httpx.Client(timeout=30) as http:
        yield http


# Numbers the tests' Auth servers accept with a fixed code (`GOTRUE_SMS_TEST_OTP`), beside
# config.toml's own: fictional 555-01xx and 555-7xxx numbers.
TEST_OTPS = {f"1415555{n:04d}": f"{n:06d}" for n in range(7001, 7010)}


def otp_for(phone_digits: str) -> str:
    """The fixed code the tests' Auth server accepts for one of TEST_OTPS's numbers."""
    return TEST_OTPS[phone_digits]


@pytest.fixture(scope="session")
def mail() -> Iterator[MailCatcher]:
    """The mail catcher every test's Auth server sends its confirmation mails to."""
    catcher = MailCatcher()
    catcher.start()
    yield catcher
    catcher.stop()


@pytest.fixture
def auth_server(cluster: Cluster, db: Database, mail: MailCatcher) -> Iterator[AuthServer]:
    """The real Supabase Auth server on this test's database, configured from config.toml."""
    binary = auth_binary()
    if binary is None:
        pytest.skip(unavailable_reason())
    if os.environ.get("GLUE_AUTH") == "standin":
        pytest.skip("real Supabase Auth unavailable: GLUE_AUTH=standin asks for the stand-in auth tables")
    if cluster.kind != "embedded":
        pytest.skip(f"real Supabase Auth runs beside the embedded platform; this run uses {cluster.kind}")
    server = AuthServer(binary, db.url("supabase_auth_admin"), smtp_port=mail.port, extra_test_otps=TEST_OTPS)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def app(auth_server: AuthServer, postgrest: Postgrest, mail: MailCatcher) -> Iterator[App]:
    """A person in the mobile app, signed out."""
    person = App(auth_server.url, auth_server.anon_key, auth_server.secret, postgrest, mail)
    yield person
    person.close()


@pytest.fixture
def second_app(auth_server: AuthServer, db: Database, mail: MailCatcher) -> Iterator[App]:
    """Another person in the mobile app, on a PostgREST connection of their own."""
    api = Postgrest(db)
    person = App(auth_server.url, auth_server.anon_key, auth_server.secret, api, mail)
    yield person
    person.close()
    api.close()


@pytest.fixture
def auth_admin(auth_server: AuthServer) -> Iterator[SyncGoTrueAdminAPI]:
    """supabase.auth.admin, as a backend with the service-role key uses it."""
    with httpx.Client(timeout=30) as http:
        yield admin_api(auth_server.url, auth_server.service_role_key, http)
