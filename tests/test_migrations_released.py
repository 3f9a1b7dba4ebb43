"""Released migrations are append-only: their text is pinned by supabase/migrations.sha256.

A database that ran a migration never runs it again, so editing a released file changes
nothing where it matters and makes a fresh install differ from an upgraded one.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from glue.devdb.platform import migrations

ROOT = Path(__file__).resolve().parents[1]
CHECKSUMS = ROOT / "supabase" / "migrations.sha256"

HOW_TO_ADD = """
Released migrations are never edited: databases that ran them will not run them again.
Restore the released text (git checkout -- supabase/migrations/<file>) and put the change
in a new migration instead:
    npx supabase migration new <what_it_changes>   (or name it <UTC timestamp>_<name>.sql)
    write `create or replace function ...` / `alter table ...` there, with its comment on
    and revoke/grant statements, then run the tests.
Once that migration is released, append its line to supabase/migrations.sha256:
    (cd supabase/migrations && sha256sum <new file>) >> supabase/migrations.sha256
"""


def _released() -> dict[str, str]:
    """File name to SHA-256 for every released migration, from the committed list."""
    pinned = {}
    for line in CHECKSUMS.read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            pinned[name.lstrip("*")] = digest
    return pinned


def test_released_migrations_are_unchanged() -> None:
    """Every migration in the checksum list is still in the folder, byte for byte."""
    present = {m.path.name: m.path for m in migrations()}
    problems = []
    for name, digest in _released().items():
        path = present.get(name)
        if path is None:
            problems.append(f"{name}: released, but no longer in supabase/migrations")
        elif hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            problems.append(f"{name}: its text changed after release")
    assert not problems, "\n".join(problems) + "\n" + HOW_TO_ADD


def test_new_migrations_come_after_the_released_ones() -> None:
    """A migration added after a release sorts after every released one, so it runs last everywhere."""
    released = _released()
    newest = max(name.split("_", 1)[0] for name in released)
    early = [m.path.name for m in migrations() if m.path.name not in released and m.version <= newest]
    assert not early, (
        f"{early}: not released, yet versioned at or before {newest}, the newest released migration; "
        "a database that ran the release would skip or misorder it.\n" + HOW_TO_ADD
    )
