"""The local platform: an embedded PostgreSQL shaped like a Supabase database."""

from collections.abc import Callable
from dataclasses import dataclass

from glue.devdb.auth import AuthServer, auth_binary
from glue.devdb.mail import Mail, MailCatcher
from glue.devdb.platform import MigrationError, apply_migrations, install_platform, install_roles
from glue.devdb.server import EmbeddedPostgres, NoPostgresBinaries, find_bindir

__all__ = [
    "EmbeddedPostgres",
    "LocalAuth",
    "MigrationError",
    "NoPostgresBinaries",
    "apply_migrations",
    "find_bindir",
    "install_platform",
    "install_roles",
    "start_local_auth",
    "start_local_platform",
]


@dataclass
class LocalAuth:
    """The real Supabase Auth server on the local platform's database, with its mail catcher."""

    server: AuthServer
    mail: MailCatcher

    def stop(self) -> None:
        self.server.stop()
        self.mail.stop()


def start_local_auth(
    database: EmbeddedPostgres, on_mail: Callable[[Mail], None] | None = None
) -> LocalAuth | None:
    """Start Auth beside `database` (migrated by install_platform); None when its binary is not here."""
    binary = auth_binary()
    if binary is None:
        return None
    mail = MailCatcher(on_mail=on_mail)
    mail.start()
    server = AuthServer(binary, database.url("supabase_auth_admin"), smtp_port=mail.port)
    try:
        server.start()
    except BaseException:
        mail.stop()
        raise
    return LocalAuth(server, mail)


def start_local_platform(seed: bool = True, durable: bool = False, port: int = 0) -> EmbeddedPostgres:
    """Start a server, install the platform layer into `postgres`, apply migrations and seed."""
    server = EmbeddedPostgres(port=port, durable=durable)
    server.start()
    install_roles(server.url("supabase_admin"))
    install_platform(server.url("supabase_admin"))
    apply_migrations(server.url("postgres"), seed=seed)
    return server
