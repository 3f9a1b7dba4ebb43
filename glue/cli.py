"""The `glue` command line."""

from __future__ import annotations

import argparse
import signal
import time

from glue.devdb import start_local_platform


def dev(args: argparse.Namespace) -> int:
    started = time.monotonic()
    server = start_local_platform(seed=True)
    print(f"local platform ready in {time.monotonic() - started:.1f}s")
    print(f"DATABASE_URL={server.url('postgres')}")
    print("Ctrl-C stops it and removes its data.")
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        server.destroy()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="glue")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("dev", help="start the local platform (migrations + seed) and the relay")
    args = parser.parse_args(argv)
    return {"dev": dev}[args.command](args)
