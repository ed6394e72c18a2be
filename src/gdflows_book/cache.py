"""Content hashes that decide whether a result must be computed again.

A notebook's cache key is the SHA-256 of its file, the full parameter dict it runs with and
:func:`library_hash` (the source of ``src/gdflows`` and ``src/gdflows_book``, every ``.py`` file
in sorted order, and ``constraints.txt``). A benchmark's key hashes its script, every
``benchmarks/*.py``, :func:`library_hash` and its ``--quick`` flag. Equal keys and outputs on disk
mean the run can be skipped.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

PACKAGES = ("gdflows", "gdflows_book")


def file_hash(path: Path) -> str:
    """SHA-256 (hex) of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def tree_hash(paths: list[Path], root: Path) -> str:
    """SHA-256 over the given files (relative path and bytes of each, in sorted order)."""
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def library_hash(root: Path) -> str:
    """Hash of the library's and the pipeline's source and of the pinned versions."""
    files = [p for package in PACKAGES for p in (root / "src" / package).rglob("*.py")]
    constraints = root / "constraints.txt"
    return tree_hash(files + ([constraints] if constraints.exists() else []), root)


def key(*parts) -> str:
    """SHA-256 of JSON-serialisable parts (dicts with sorted keys)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()
