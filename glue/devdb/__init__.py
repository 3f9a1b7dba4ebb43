"""The local platform: an embedded PostgreSQL shaped like a Supabase database."""

from glue.devdb.platform import MigrationError, apply_migrations, install_platform, install_roles
from glue.devdb.server import EmbeddedPostgres, NoPostgresBinaries, find_bindir

__all__ = [
    "EmbeddedPostgres",
    "MigrationError",
    "NoPostgresBinaries",
    "apply_migrations",
    "find_bindir",
    "install_platform",
    "install_roles",
    "start_local_platform",
]


def start_local_platform(seed: bool = True, durable: bool = False, port: int = 0) -> EmbeddedPostgres:
    """Start a server, install the platform layer into `postgres`, apply migrations and seed."""
    server = EmbeddedPostgres(port=port, durable=durable)
    server.start()
    install_roles(server.url("supabase_admin"))
    install_platform(server.url("supabase_admin"))
    apply_migrations(server.url("postgres"), seed=seed)
    return server
