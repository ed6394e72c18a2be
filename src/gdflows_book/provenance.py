"""What produced a result: parameters, package versions, git revision, machine, time."""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import platform
import subprocess
from pathlib import Path

PACKAGES = (
    "gdflows",
    "jax",
    "jaxlib",
    "diffrax",
    "equinox",
    "optax",
    "flax",
    "numpy",
    "scipy",
    "matplotlib",
    "papermill",
)


def git_revision(root: Path | None = None) -> str:
    """``git describe --always --dirty`` of the repository, or ``"unknown"`` outside one."""
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=12"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def package_versions() -> dict[str, str]:
    """Installed versions of the packages a result depends on."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def provenance(parameters: dict, *, seconds: float | None = None, root: Path | None = None) -> dict:
    """A record to store beside every result."""
    return {
        "parameters": parameters,
        "run_time_s": None if seconds is None else round(seconds, 2),
        "git_revision": git_revision(root),
        "packages": package_versions(),
        "python": platform.python_version(),
        "machine": f"{platform.system()} {platform.machine()}",
        "finished_utc": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M:%S"),
    }
