"""Fingerprints and code versions: what makes a run, a dataset or a cache entry identifiable."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import subprocess
from typing import Any

import o1e

# Files this large are fingerprinted by size plus their first and last MiB, not read whole:
# hashing a 15 GB checkpoint on every run would cost more than the work it guards.
_SAMPLE_BYTES = 1 << 20


def fingerprint(obj: Any, length: int = 16) -> str:
    """A short stable hash of any JSON-serialisable value (dict key order does not matter)."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:length]


def stable_seed(*parts: Any) -> int:
    """A 63-bit seed from ``parts`` (joined by \x1f): the same in every process and Python version."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def file_fingerprint(path: str) -> str:
    size = os.path.getsize(path)
    digest = hashlib.sha256(str(size).encode())
    with open(path, "rb") as f:
        if size <= 4 * _SAMPLE_BYTES:
            digest.update(f.read())
        else:
            digest.update(f.read(_SAMPLE_BYTES))
            f.seek(size - _SAMPLE_BYTES)
            digest.update(f.read(_SAMPLE_BYTES))
    return digest.hexdigest()[:16]


def directory_fingerprint(path: str) -> str:
    """Fingerprint of a model folder: every file's relative name and content fingerprint, but the model card
    (the top-level ``README.md``), which documents the model and which ``o1e eval`` adds results to."""
    entries = []
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith(".") or (root == path and name == "README.md"):
                continue
            full = os.path.join(root, name)
            entries.append((os.path.relpath(full, path), file_fingerprint(full)))
    return fingerprint(entries)


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """The package version, plus the git commit when running from a checkout (``+dirty`` if modified).

    A Ray job's working dir is uploaded without ``.git/``: there the commit comes from ``O1E_GIT_COMMIT``,
    which ``clusters/submit.sh`` sets in the job's environment from the checkout it submits."""
    version = o1e.__version__
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        sha = subprocess.run(
            ["git", "-C", here, "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, timeout=5
        ).stdout.strip()
        if sha:
            dirty = subprocess.run(
                ["git", "-C", here, "status", "--porcelain", "--untracked-files=no"],
                capture_output=True, text=True, timeout=5,
            ).stdout.strip()
            version += f"+g{sha}" + (".dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    if version == o1e.__version__ and os.environ.get("O1E_GIT_COMMIT"):
        version += f"+g{os.environ['O1E_GIT_COMMIT']}"
    return version
