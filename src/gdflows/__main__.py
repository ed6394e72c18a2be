"""Command line: ``python -m gdflows reproduce|book|list``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gdflows import reproduce as rp


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gdflows", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("reproduce", help="execute notebooks with papermill into the build tree")
    run.add_argument("names", nargs="*", help="notebooks to run (stem or prefix such as F1); default: all")
    run.add_argument("--smoke", action="store_true", help="small settings for a quick check (CI)")
    run.add_argument(
        "-p",
        "--parameter",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a notebook parameter (value parsed as JSON)",
    )
    run.add_argument("--build-dir", type=Path, default=rp.ROOT / "build", help="the build tree (default: build/)")
    book = commands.add_parser("book", help="render the executed notebooks and the prose with Jupyter Book")
    book.add_argument("--no-strict", action="store_true", help="do not treat Sphinx warnings as errors")
    commands.add_parser("list", help="list the notebooks")
    args = parser.parse_args(argv)

    try:
        if args.command == "list":
            print("\n".join(rp.available()))
        elif args.command == "reproduce":
            overrides = rp.parse_parameters(args.parameter)
            rp.reproduce(args.names, smoke=args.smoke, build=args.build_dir.resolve(), overrides=overrides)
        elif args.command == "book":
            html = rp.build_book(strict=not args.no_strict)
            print(f"The book is at {html / 'index.html'}")
    except rp.ReproduceError as error:
        print(f"reproduce: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
