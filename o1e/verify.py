"""``o1e verify PATH...``: check every dataset at or under each path against its manifest."""

from __future__ import annotations

import sys

from o1e import storage

MAX_DEPTH = 3  # a stage's output holds datasets one or two folders down (eval/thoughts, synth/prepared/...)


def find_datasets(url: str, depth: int = 0) -> tuple[list[str], list[str]]:
    """Committed datasets at or under ``url``, and folders holding committed shards but no manifest."""
    if storage.is_dataset(url):
        return [url], []
    if storage.exists(storage.join(url, storage.SHARDS_DIR)):
        return [], [url]
    found, unfinished = [], []
    if depth < MAX_DEPTH:
        for name in storage.listdir(url):
            child = storage.join(url, name)
            if not name.startswith(("_", ".")) and storage.is_dir(child):
                datasets, partial = find_datasets(child, depth + 1)
                found += datasets
                unfinished += partial
    return found, unfinished


def verify_paths(paths: list[str], checksum: bool = True, out=None) -> int:
    """Print one line per dataset (``ok`` or each problem); 0 when every dataset is sound, else 1."""
    out = out or sys.stdout
    bad = 0
    for path in paths:
        if not storage.exists(path):
            raise storage.StorageError(f"{path} does not exist: give a dataset folder or a stage's output")
        datasets, unfinished = find_datasets(path)
        if not datasets and not unfinished:
            raise storage.StorageError(f"no dataset under {path} (a dataset folder holds "
                                       f"{storage.MANIFEST_NAME}): give a dataset folder or a stage's output")
        for url in unfinished:
            bad += 1
            print(f"UNFINISHED {url}: shards committed but no {storage.MANIFEST_NAME}: rerun the stage that "
                  "writes it to finish it", file=out)
        for url in datasets:
            problems = storage.verify_dataset(url, checksum=checksum)
            if problems:
                bad += 1
                for problem in problems:
                    print(f"BAD {url}: {problem}", file=out)
                continue
            manifest = storage.read_manifest(url)
            checked = "rows, sizes and checksums" if checksum else "rows and sizes"
            print(f"ok {url}: {manifest.schema} v{manifest.schema_version}, {manifest.num_rows:,} rows in "
                  f"{len(manifest.files)} parts ({checked} match the manifest)", file=out)
    return 1 if bad else 0
