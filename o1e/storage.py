"""One way to read and write files and datasets, at a local path or an ``s3://bucket/prefix`` URL.

Object storage goes through ``pyarrow.fs.S3FileSystem``. The endpoint comes from ``O1E_S3_ENDPOINT``,
``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL`` (any S3-compatible store), the region from
``AWS_REGION``/``AWS_DEFAULT_REGION``; credentials come from the AWS default chain (environment,
profile, instance role) and are never read, stored or printed by this project.

A *dataset* is a folder of Parquet part files plus ``_manifest.json``. The manifest is written last,
atomically, and lists the part files: readers read only what a manifest lists, so they never see a
half-written dataset, on a local disk or on S3 (where there is no rename). Work can be committed shard
by shard (``DatasetWriter.commit_shard``); each commit leaves a marker under ``_shards/``, so a rerun
after a crash skips what was committed and redoes only what was not.
"""

from __future__ import annotations

import functools
import json
import os
import posixpath
import shutil
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterator
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from o1e import schemas
from o1e.provenance import code_version

MANIFEST_NAME = "_manifest.json"
SHARDS_DIR = "_shards"


class StorageError(RuntimeError):
    """A path, URL or dataset that cannot be read or written as asked."""


# ---------------------------------------------------------------------------------------------------
# Paths and file systems


def is_s3(url: str) -> bool:
    return url.startswith("s3://")


def s3_endpoint() -> str | None:
    for name in ("O1E_S3_ENDPOINT", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"):
        if os.environ.get(name):
            return os.environ[name]
    return None


@functools.lru_cache(maxsize=8)
def _s3_filesystem(endpoint: str | None, region: str | None) -> pafs.S3FileSystem:
    kwargs: dict[str, Any] = {}
    if endpoint:
        parsed = urlparse(endpoint if "://" in endpoint else f"https://{endpoint}")
        kwargs["endpoint_override"] = parsed.netloc
        kwargs["scheme"] = parsed.scheme
    if region:
        kwargs["region"] = region
    return pafs.S3FileSystem(**kwargs)


def resolve(url: str) -> tuple[pafs.FileSystem, str]:
    """The file system and the path inside it for a local path, ``file://`` URL or ``s3://`` URL."""
    if is_s3(url):
        path = url[len("s3://"):].rstrip("/")
        if not path or path.startswith("/"):
            raise StorageError(f"malformed S3 URL {url!r}: expected s3://bucket/prefix")
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        return _s3_filesystem(s3_endpoint(), region), path
    if url.startswith("file://"):
        url = url[len("file://"):]
    elif "://" in url:
        raise StorageError(f"unsupported URL scheme in {url!r}: use a local path or s3://bucket/prefix")
    return pafs.LocalFileSystem(), os.path.abspath(os.path.expanduser(url))


def join(url: str, *parts: str) -> str:
    if is_s3(url):
        return posixpath.join(url.rstrip("/"), *parts)
    return os.path.join(url, *parts)


def exists(url: str) -> bool:
    fs, path = resolve(url)
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def is_dir(url: str) -> bool:
    fs, path = resolve(url)
    return fs.get_file_info(path).type == pafs.FileType.Directory


def listdir(url: str) -> list[str]:
    """Names (not paths) directly under ``url``; empty when it does not exist."""
    fs, path = resolve(url)
    try:
        infos = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
    except OSError as err:
        raise StorageError(f"cannot list {url}: {err}") from err
    return sorted(posixpath.basename(info.path.rstrip("/")) for info in infos)


def read_bytes(url: str) -> bytes:
    fs, path = resolve(url)
    try:
        with fs.open_input_stream(path) as stream:
            return stream.read()
    except FileNotFoundError as err:
        raise StorageError(f"not found: {url}") from err
    except OSError as err:
        raise StorageError(f"cannot read {url}: {err}") from err


def read_text(url: str) -> str:
    return read_bytes(url).decode("utf-8")


def read_json(url: str) -> Any:
    return json.loads(read_text(url))


def open_input(url: str):
    """A binary input stream, for reading large files line by line without loading them whole."""
    fs, path = resolve(url)
    try:
        return fs.open_input_stream(path)
    except FileNotFoundError as err:
        raise StorageError(f"not found: {url}") from err


def write_bytes(url: str, data: bytes) -> None:
    """Write a whole file atomically: a reader sees the old file or the new one, never a part.

    Locally that is a temporary file and ``os.replace``; an S3 PUT is atomic by itself.
    """
    fs, path = resolve(url)
    if isinstance(fs, pafs.LocalFileSystem):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
        with open(tmp, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
        return
    try:
        with fs.open_output_stream(path) as out:
            out.write(data)
    except OSError as err:
        raise StorageError(f"cannot write {url}: {err}") from err


def write_text(url: str, text: str) -> None:
    write_bytes(url, text.encode("utf-8"))


def write_json(url: str, obj: Any) -> None:
    write_text(url, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def delete(url: str) -> None:
    """Remove a file or a whole folder; nothing happens when it does not exist."""
    fs, path = resolve(url)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.Directory:
        fs.delete_dir(path)
    elif info.type == pafs.FileType.File:
        fs.delete_file(path)


def download_dir(url: str, local_dir: str) -> str:
    """Copy a folder (for example a model on S3) to a local folder; files already there are kept."""
    fs, path = resolve(url)
    infos = fs.get_file_info(pafs.FileSelector(path, recursive=True, allow_not_found=True))
    files = [info for info in infos if info.type == pafs.FileType.File]
    if not files:
        raise StorageError(f"nothing to download at {url}")
    for info in files:
        rel = posixpath.relpath(info.path, path)
        dest = os.path.join(local_dir, rel)
        if os.path.exists(dest) and os.path.getsize(dest) == info.size:
            continue
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        tmp = f"{dest}.tmp-{uuid.uuid4().hex[:8]}"
        with fs.open_input_stream(info.path) as src, open(tmp, "wb") as out:
            shutil.copyfileobj(src, out, length=8 << 20)
        os.replace(tmp, dest)
    return local_dir


# ---------------------------------------------------------------------------------------------------
# Datasets: Parquet parts + a manifest written last


@dataclass
class Manifest:
    """What a committed dataset is: its contract, size, parts and where it came from (lineage)."""

    schema: str
    schema_version: int
    num_rows: int
    files: list[dict[str, Any]]
    config_fingerprint: str | None = None
    config: dict[str, Any] | None = None
    parents: list[dict[str, Any]] = field(default_factory=list)
    code_version: str = field(default_factory=code_version)
    created_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Manifest":
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def read_manifest(url: str) -> Manifest:
    murl = join(url, MANIFEST_NAME)
    if not exists(murl):
        raise StorageError(f"{url} is not a committed dataset: it has no {MANIFEST_NAME}")
    return Manifest.from_json(read_json(murl))


def is_dataset(url: str) -> bool:
    return exists(join(url, MANIFEST_NAME))


class DatasetWriter:
    """Writes one dataset shard by shard, then commits it with its manifest.

    ``commit_shard`` is idempotent under a stable shard id: committing a shard that a previous (crashed)
    run already committed keeps the earlier part and writes nothing, so reruns neither lose nor duplicate
    rows. Shards written under another config fingerprint are refused unless ``overwrite`` is set.
    """

    def __init__(
        self,
        url: str,
        schema_name: str,
        *,
        config: dict[str, Any] | None = None,
        config_fingerprint: str | None = None,
        parents: list[dict[str, Any]] | None = None,
        overwrite: bool = False,
    ) -> None:
        self.url = url
        self.contract = schemas.get(schema_name)
        self.config = config
        self.config_fingerprint = config_fingerprint
        self.parents = parents or []
        if overwrite:
            delete(join(url, SHARDS_DIR))
        else:
            self._check_same_run()

    def _check_same_run(self) -> None:
        markers = [n for n in listdir(join(self.url, SHARDS_DIR)) if n.endswith(".json")]
        if not markers:
            return
        theirs = read_json(join(self.url, SHARDS_DIR, markers[0])).get("config_fingerprint")
        if theirs != self.config_fingerprint:
            raise StorageError(
                f"{self.url} already holds shards written by config {theirs}, not this run's "
                f"{self.config_fingerprint}: refusing to mix them. "
                "Start a new run (another output, or overwrite) to replace it."
            )

    def committed(self) -> dict[str, dict[str, Any]]:
        """Shard id -> marker, for every shard already committed under this URL."""
        markers = {}
        base = join(self.url, SHARDS_DIR)
        for name in listdir(base):
            if name.endswith(".json"):
                markers[name[: -len(".json")]] = read_json(join(base, name))
        return markers

    def commit_shard(self, shard_id: str, table: pa.Table) -> dict[str, Any]:
        marker_url = join(self.url, SHARDS_DIR, f"{shard_id}.json")
        if exists(marker_url):
            return read_json(marker_url)
        table = self.contract.conform(table)
        name = f"part-{shard_id}-{uuid.uuid4().hex[:8]}.parquet"
        fs, path = resolve(join(self.url, name))
        if isinstance(fs, pafs.LocalFileSystem):
            os.makedirs(os.path.dirname(path), exist_ok=True)
        pq.write_table(table, path, filesystem=fs, compression="zstd")
        marker = {
            "shard_id": shard_id,
            "file": name,
            "num_rows": table.num_rows,
            "config_fingerprint": self.config_fingerprint,
        }
        write_json(marker_url, marker)
        return marker

    def read_shard(self, shard_id: str, columns: list[str] | None = None) -> pa.Table | None:
        """The rows of a shard committed earlier (by this run or a crashed one), or ``None``."""
        marker_url = join(self.url, SHARDS_DIR, f"{shard_id}.json")
        if not exists(marker_url):
            return None
        fs, path = resolve(join(self.url, read_json(marker_url)["file"]))
        return pq.read_table(path, filesystem=fs, columns=columns)

    def finalize(self, extra: dict[str, Any] | None = None) -> Manifest:
        markers = self.committed()
        files = [
            {"path": m["file"], "num_rows": m["num_rows"], "shard_id": sid} for sid, m in sorted(markers.items())
        ]
        manifest = Manifest(
            schema=self.contract.name,
            schema_version=self.contract.version,
            num_rows=sum(f["num_rows"] for f in files),
            files=files,
            config_fingerprint=self.config_fingerprint,
            config=self.config,
            parents=self.parents,
            extra=extra or {},
        )
        write_json(join(self.url, MANIFEST_NAME), manifest.to_json())
        self._remove_unlisted_parts({f["path"] for f in files})
        return manifest

    def _remove_unlisted_parts(self, listed: set[str]) -> None:
        for name in listdir(self.url):
            if name.startswith("part-") and name not in listed:
                delete(join(self.url, name))


def write_table(url: str, table: pa.Table, schema_name: str, **meta: Any) -> Manifest:
    """Write a whole table as a committed single-part dataset, replacing any dataset already there."""
    extra = meta.pop("extra", None)
    writer = DatasetWriter(url, schema_name, overwrite=True, **meta)
    writer.commit_shard("00000", table)
    return writer.finalize(extra=extra)


def read_table(url: str, columns: list[str] | None = None, schema_name: str | None = None) -> pa.Table:
    """Read a committed dataset whole (only the parts its manifest lists)."""
    manifest = read_manifest(url)
    if schema_name is not None and manifest.schema != schema_name:
        raise StorageError(f"{url} holds a {manifest.schema!r} dataset, expected {schema_name!r}")
    contract = schemas.get(manifest.schema)
    if manifest.schema_version != contract.version:
        raise StorageError(
            f"{url} has {manifest.schema!r} schema version {manifest.schema_version}; "
            f"this code reads version {contract.version}"
        )
    fs, _ = resolve(url)
    tables = [
        pq.read_table(resolve(join(url, f["path"]))[1], filesystem=fs, columns=columns) for f in manifest.files
    ]
    if not tables:
        schema = contract.arrow if columns is None else pa.schema([contract.arrow.field(c) for c in columns])
        return schema.empty_table()
    return pa.concat_tables(tables)


def iter_batches(url: str, batch_size: int = 10_000, columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
    """Stream a committed dataset batch by batch, never holding it whole."""
    manifest = read_manifest(url)
    fs, _ = resolve(url)
    for f in manifest.files:
        parquet = pq.ParquetFile(resolve(join(url, f["path"]))[1], filesystem=fs)
        yield from parquet.iter_batches(batch_size=batch_size, columns=columns)


def dataset_ref(url: str) -> dict[str, Any]:
    """How a child dataset names a parent in its lineage."""
    manifest = read_manifest(url)
    return {"url": url, "schema": manifest.schema, "config_fingerprint": manifest.config_fingerprint}

