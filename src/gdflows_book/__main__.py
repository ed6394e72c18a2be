"""Command line of the book's pipeline: ``python -m gdflows_book reproduce|book|list|status``.

Every command works on the repository at ``--root`` (default: the current directory) and a
build tree given by ``--build-dir`` (default: ``build`` under the root).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from gdflows_book import book as bk
from gdflows_book import parameters, runner, status


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="the repository (default: current directory)")
    parser.add_argument("--build-dir", type=Path, default=None, help="the build tree (default: ROOT/build)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gdflows_book", description=__doc__)
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
        help="set a notebook parameter; the value is JSON (a string is quoted: -p name='\"text\"')",
    )
    run.add_argument("--force", action="store_true", help="execute even where the cache holds a run with equal inputs")
    run.add_argument(
        "-j",
        "--jobs",
        type=int,
        default=1,
        help="notebooks to run at once (default 1; keep 1 where wall times are results, as in the paper run)",
    )
    _common(run)
    book = commands.add_parser("book", help="render the executed notebooks and the prose with Jupyter Book")
    book.add_argument("--no-strict", action="store_true", help="do not treat Sphinx warnings as errors")
    book.add_argument(
        "--allow-mixed", action="store_true", help="build even from mixed or stale runs, marking the affected pages"
    )
    _common(book)
    _common(commands.add_parser("list", help="list the notebooks"))
    _common(commands.add_parser("status", help="print the status of every notebook and benchmark in the build"))
    args = parser.parse_args(argv)

    try:
        root = runner.repository(args.root)
        build = (args.build_dir or root / "build").resolve()
        if args.command == "list":
            print("\n".join(runner.available(root)))
        elif args.command == "status":
            print(json.dumps(status.entries(root, build), indent=1))
        elif args.command == "reproduce":
            overrides = parameters.parse(args.parameter)
            runner.reproduce(
                args.names,
                root=root,
                build=build,
                smoke=args.smoke,
                overrides=overrides,
                force=args.force,
                jobs=args.jobs,
            )
        elif args.command == "book":
            html = bk.build_book(root=root, build=build, strict=not args.no_strict, allow_mixed=args.allow_mixed)
            print(f"The book is at {html / 'index.html'}")
    except (runner.ReproduceError, parameters.ParameterError, bk.BookError) as error:
        print(f"{args.command}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
