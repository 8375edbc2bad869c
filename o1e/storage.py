"""One way to read and write files and datasets, at a local path or an ``s3://bucket/prefix`` URL.

Object storage goes through ``pyarrow.fs.S3FileSystem``. The endpoint comes from ``O1E_S3_ENDPOINT``,
``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL`` (any S3-compatible store), the region from
``AWS_REGION``/``AWS_DEFAULT_REGION``; credentials come from the AWS default chain (environment,
profile, instance role) and are never read, stored or printed by this project.

A *dataset* is a folder of Parquet part files plus ``_manifest.json``. The manifest is written last,
atomically, and lists every part with its row count, size and sha256: o1e's readers read only listed
parts and check each against its entry. Work can be committed shard by shard
(``DatasetWriter.commit_shard``): the part and a marker go under ``_shards/``, so a rerun after a crash
skips what was committed and redoes only what was not, and outside readers of ``DIR/*.parquet`` see
nothing of it until ``finalize`` moves the parts into place.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import posixpath
import re
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
S3_MAX_ATTEMPTS = 8
"""Attempts per S3 request (``O1E_S3_MAX_ATTEMPTS`` overrides it): with AWS's exponential back-off, 8 ride
out about 45 s of an unreachable endpoint before the run fails."""
S3_CHECK_ATTEMPTS = 2  # the pre-flight check of an output bucket: an endpoint that is down fails at once
S3_TIMEOUT_S = 30.0


class StorageError(RuntimeError):
    """A path, URL or dataset that cannot be read or written as asked."""


# ---------------------------------------------------------------------------------------------------
# Paths and file systems


def is_s3(url: str) -> bool:
    return url.startswith("s3://")


_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


def _s3_path(url: str) -> str:
    """``bucket/prefix`` of an ``s3://`` URL, after checking it names a well-formed bucket."""
    path = url[len("s3://"):].rstrip("/")
    bucket = path.split("/", 1)[0]
    if not _BUCKET.fullmatch(bucket):
        raise StorageError(f"malformed S3 URL {url!r}: expected s3://bucket/prefix with a bucket name of "
                           "3-63 lower-case letters, digits, dots or hyphens")
    return path


def s3_endpoint() -> str | None:
    for name in ("O1E_S3_ENDPOINT", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"):
        if os.environ.get(name):
            return os.environ[name]
    return None


@functools.lru_cache(maxsize=8)
def _s3_filesystem(endpoint: str | None, region: str | None,
                   max_attempts: int = S3_MAX_ATTEMPTS) -> pafs.S3FileSystem:
    kwargs: dict[str, Any] = {}
    if endpoint:
        parsed = urlparse(endpoint if "://" in endpoint else f"https://{endpoint}")
        kwargs["endpoint_override"] = parsed.netloc
        kwargs["scheme"] = parsed.scheme
    if region:
        kwargs["region"] = region
    # Transient faults (5xx, SlowDown, reset connections, timeouts) are retried with exponential back-off.
    return pafs.S3FileSystem(retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=max_attempts),
                             connect_timeout=S3_TIMEOUT_S, request_timeout=S3_TIMEOUT_S, **kwargs)


def s3_max_attempts() -> int:
    value = os.environ.get("O1E_S3_MAX_ATTEMPTS", "")
    if not value:
        return S3_MAX_ATTEMPTS
    if not value.isdigit() or int(value) < 1:
        raise StorageError(f"O1E_S3_MAX_ATTEMPTS={value!r}: expected a whole number of at least 1")
    return int(value)


def resolve(url: str) -> tuple[pafs.FileSystem, str]:
    """The file system and the path inside it for a local path, ``file://`` URL or ``s3://`` URL."""
    if is_s3(url):
        path = _s3_path(url)
        return _s3_filesystem(s3_endpoint(), _region(), s3_max_attempts()), path
    if url.startswith("file://"):
        url = url[len("file://"):]
    elif "://" in url or url.lower().startswith("s3:"):
        raise StorageError(f"unsupported URL {url!r}: use a local path or s3://bucket/prefix")
    return pafs.LocalFileSystem(), os.path.abspath(os.path.expanduser(url))


def _region() -> str | None:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")


def join(url: str, *parts: str) -> str:
    if is_s3(url):
        return "s3://" + posixpath.join(_s3_path(url), *parts)
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


def move(src_url: str, dest_url: str) -> None:
    """Move a file: a rename on a local disk; on S3 (no rename) a server-side copy, then a delete of the
    source, so the destination key appears whole, at once."""
    fs, src = resolve(src_url)
    _, dest = resolve(dest_url)
    try:
        fs.move(src, dest)
    except OSError as err:
        raise StorageError(f"cannot move {src_url} to {dest_url}: {err}") from err


def _bucket_info(bucket: str) -> pafs.FileInfo:
    """A bucket lookup that fails fast when the endpoint does not answer (the pre-flight's few attempts), but
    rides out an endpoint that answers with a transient error (SlowDown, 5xx) with the work's attempts."""
    try:
        return _s3_filesystem(s3_endpoint(), _region(), S3_CHECK_ATTEMPTS).get_file_info(bucket)
    except OSError as err:
        if not re.search(r"HTTP status 5\d\d", str(err)):
            raise
    return _s3_filesystem(s3_endpoint(), _region(), s3_max_attempts()).get_file_info(bucket)


def answers(url: str) -> bool:
    """Whether ``url``'s storage answers: always for a local path; for S3, a bucket lookup that fails fast
    when the endpoint is unreachable (``_bucket_info``)."""
    fs, path = resolve(url)
    if isinstance(fs, pafs.LocalFileSystem):
        return True
    try:
        _bucket_info(path.split("/", 1)[0])
    except OSError:
        return False
    return True


def check_output(url: str) -> None:
    """Fail before any work when results could not be written to ``url``: a local folder that cannot be
    created or written, a malformed ``s3://`` URL, or a bucket that does not answer."""
    fs, path = resolve(url)
    probe = f".o1e-write-check-{uuid.uuid4().hex[:8]}"
    if isinstance(fs, pafs.LocalFileSystem):
        if os.path.exists(path) and not os.path.isdir(path):
            raise StorageError(f"output {url} is a file, not a folder: choose another output")
        missing = []  # the folders this check creates, removed again after it: a failed run leaves nothing
        parent = path
        while not os.path.exists(parent):
            missing.append(parent)
            parent = os.path.dirname(parent)
        try:
            os.makedirs(path, exist_ok=True)
            with open(os.path.join(path, probe), "wb"):
                pass
            os.remove(os.path.join(path, probe))
        except OSError as err:
            raise StorageError(f"output {url} is not writable ({err.strerror}): choose another output "
                               "or fix its permissions") from None
        finally:
            for folder in missing:
                if os.path.isdir(folder):
                    os.rmdir(folder)
        return
    bucket = path.split("/", 1)[0]
    try:
        info = _bucket_info(bucket)
    except OSError as err:
        raise StorageError(f"S3 endpoint for {url} does not answer ({_first_line(err)}): check O1E_S3_ENDPOINT "
                           "and the network") from None
    if info.type != pafs.FileType.Directory:
        raise StorageError(f"bucket {bucket!r} of output {url} does not exist: create it or name another bucket")
    try:
        write_bytes(join(url, probe), b"")
        delete(join(url, probe))
    except StorageError as err:
        raise StorageError(f"output {url} is not writable ({_first_line(err)}): check the credentials' "
                           "permissions on the bucket") from None


def _first_line(err: BaseException) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


# ---------------------------------------------------------------------------------------------------
# Datasets: Parquet parts + a manifest written last
#
# Commit protocol (docs/data.md, "The dataset contract"): a shard's part is written under _shards/ (a name that
# glob readers of DIR/*.parquet and pyarrow/pandas/Spark folder readers skip), then its marker
# _shards/<id>.json. finalize() deletes the parts of the previous version, moves the new parts into DIR,
# then writes _manifest.json. A reader of DIR/*.parquet therefore sees only whole parts and never a mix
# of two versions; during finalize it can see a subset of the new version's parts.

MANIFEST_VERSION = 2
"""Version of the manifest's own layout (not of the data schema). 2: per-part size and sha256."""


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
    manifest_version: int = 1  # manifests written before version 2 had no field

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Manifest":
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def read_manifest(url: str) -> Manifest:
    murl = join(url, MANIFEST_NAME)
    if not exists(murl):
        raise StorageError(f"{url} is not a committed dataset: it has no {MANIFEST_NAME} (give a dataset an o1e "
                           "stage committed, or rerun the stage that writes it)")
    try:
        manifest = Manifest.from_json(read_json(murl))
    except (ValueError, TypeError) as err:
        raise StorageError(f"{murl} is not a valid manifest ({_first_line(err)}): rewrite the dataset") from None
    if manifest.manifest_version > MANIFEST_VERSION:
        raise StorageError(f"{murl} has manifest version {manifest.manifest_version}; this code reads up to "
                           f"{MANIFEST_VERSION}: upgrade o1e")
    return manifest


def is_dataset(url: str) -> bool:
    return exists(join(url, MANIFEST_NAME))


def _marker_fingerprints(url: str) -> set[str | None]:
    base = join(url, SHARDS_DIR)
    return {read_json(join(base, n)).get("config_fingerprint") for n in listdir(base) if n.endswith(".json")}


def check_rerun(url: str, config_fingerprint: str | None, overwrite: bool) -> None:
    """The one rule for reruns: output made by another config (a committed dataset or committed shards)
    is never replaced or mixed into unless ``overwrite`` is set."""
    if overwrite:
        return
    theirs = _marker_fingerprints(url)
    if is_dataset(url):
        theirs.add(read_manifest(url).config_fingerprint)
    _refuse_others(url, theirs, config_fingerprint)


def check_rerun_record(url: str, config_fingerprint: str | None, overwrite: bool) -> None:
    """``check_rerun`` for output recorded by a JSON file holding a ``config_fingerprint`` (a model's lineage)."""
    if not overwrite and exists(url):
        _refuse_others(url, {read_json(url).get("config_fingerprint")}, config_fingerprint)


def _refuse_others(url: str, theirs: set[str | None], ours: str | None) -> None:
    others = sorted(str(fp) for fp in theirs if fp != ours)
    if others:
        raise StorageError(
            f"{url} holds output of another config (fingerprint {', '.join(others)}; this run's is "
            f"{ours}): rerun with overwrite=true to replace it, or choose another output"
        )


ROW_GROUP_ROWS = 16_384
"""Rows per Parquet row group of every part written. A reader streaming a part (``iter_batches``, DuckDB,
Polars' scans) holds one row group of each column it reads: this bounds it, where pyarrow's default
(up to 1Mi rows, a whole part) would hold the part."""


def _encode_part(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd", row_group_size=ROW_GROUP_ROWS)
    return sink.getvalue().to_pybytes()


class DatasetWriter:
    """Writes one dataset shard by shard, then commits it with its manifest.

    ``commit_shard`` is idempotent under a stable shard id: committing a shard that a previous (crashed)
    run already committed keeps the earlier part and writes nothing, so reruns neither lose nor duplicate
    rows. Output of another config fingerprint is refused unless ``overwrite`` is set (``check_rerun``).
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
        check_rerun(url, config_fingerprint, overwrite)
        if overwrite:
            delete(join(url, SHARDS_DIR))

    def committed(self) -> dict[str, dict[str, Any]]:
        """Shard id -> marker, for every shard already committed under this URL."""
        markers = {}
        base = join(self.url, SHARDS_DIR)
        for name in listdir(base):
            if name.endswith(".json"):
                markers[name[: -len(".json")]] = read_json(join(base, name))
        return markers

    def _part_url(self, name: str) -> str:
        """Where a committed shard's part is now: still staged under _shards/, or moved into place."""
        staged = join(self.url, SHARDS_DIR, name)
        return staged if exists(staged) else join(self.url, name)

    def commit_shard(self, shard_id: str, table: pa.Table) -> dict[str, Any]:
        marker_url = join(self.url, SHARDS_DIR, f"{shard_id}.json")
        if exists(marker_url):
            return read_json(marker_url)
        table = self.contract.conform(table)
        data = _encode_part(table)
        name = f"part-{shard_id}-{uuid.uuid4().hex[:8]}.parquet"
        write_bytes(join(self.url, SHARDS_DIR, name), data)
        marker = {
            "shard_id": shard_id,
            "file": name,
            "num_rows": table.num_rows,
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "config_fingerprint": self.config_fingerprint,
        }
        write_json(marker_url, marker)  # written last: the marker means the shard is committed
        return marker

    def read_shard(self, shard_id: str, columns: list[str] | None = None) -> pa.Table | None:
        """The rows of a shard committed earlier (by this run or a crashed one), or ``None``."""
        marker_url = join(self.url, SHARDS_DIR, f"{shard_id}.json")
        if not exists(marker_url):
            return None
        marker = read_json(marker_url)
        return _read_part(self._part_url(marker["file"]), {"path": marker["file"], **marker}, None, False)

    def finalize(self, extra: dict[str, Any] | None = None) -> Manifest:
        markers = self.committed()
        files = [
            {"path": m["file"], "num_rows": m["num_rows"], "size": m.get("size"), "sha256": m.get("sha256"),
             "shard_id": sid}
            for sid, m in sorted(markers.items())
        ]
        listed = {f["path"] for f in files}
        for name in listdir(self.url):  # the previous version's parts go first: no reader sees a mix
            if name.startswith("part-") and name not in listed:
                delete(join(self.url, name))
        staging = join(self.url, SHARDS_DIR)
        staged = set(listdir(staging))
        for f in files:
            if f["path"] in staged:
                move(join(staging, f["path"]), join(self.url, f["path"]))
        for name in staged - listed:  # parts of crashed attempts that never got a marker
            if not name.endswith(".json"):
                delete(join(staging, name))
        manifest = Manifest(
            schema=self.contract.name,
            schema_version=self.contract.version,
            num_rows=sum(f["num_rows"] for f in files),
            files=files,
            config_fingerprint=self.config_fingerprint,
            config=self.config,
            parents=self.parents,
            extra=extra or {},
            manifest_version=MANIFEST_VERSION,
        )
        write_json(join(self.url, MANIFEST_NAME), manifest.to_json())
        return manifest


def write_table(url: str, table: pa.Table, schema_name: str, *, overwrite: bool = False, **meta: Any) -> Manifest:
    """Write a whole table as a committed single-part dataset, replacing a dataset of the same config
    fingerprint already there (another config's only with ``overwrite``)."""
    extra = meta.pop("extra", None)
    check_rerun(url, meta.get("config_fingerprint"), overwrite)
    writer = DatasetWriter(url, schema_name, overwrite=True, **meta)
    writer.commit_shard("00000", table)
    return writer.finalize(extra=extra)


def _checked_manifest(url: str, schema_name: str | None) -> Manifest:
    manifest = read_manifest(url)
    if schema_name is not None and manifest.schema != schema_name:
        raise StorageError(f"{url} holds a {manifest.schema!r} dataset, expected {schema_name!r}")
    contract = schemas.get(manifest.schema)
    if manifest.schema_version != contract.version:
        raise StorageError(
            f"{url} has {manifest.schema!r} schema version {manifest.schema_version}; "
            f"this code reads version {contract.version}: rewrite it with this version's stage"
        )
    return manifest


def _read_part(part_url: str, entry: dict[str, Any], columns: list[str] | None, checksum: bool) -> pa.Table:
    """One part, checked against its manifest entry: size and row count always, sha256 on demand."""
    fs, path = resolve(part_url)
    try:
        with fs.open_input_file(path) as f:
            size = f.size()
            if entry.get("size") is not None and size != entry["size"]:
                raise StorageError(f"part {part_url} is {size} bytes, the manifest says {entry['size']}: the "
                                   "part was changed or replaced after commit; rewrite the dataset")
            # On S3 the part is fetched whole, in one GET: pyarrow's S3 client reads a ranged GET's answer into a
            # buffer the size of the range, and the error body of a 503 SlowDown or 500 overflows the small range
            # of a small column, failing the read for good ("Failed to flush response stream") instead of retrying.
            if (checksum and entry.get("sha256")) or is_s3(part_url):
                data = f.read()
                if checksum and entry.get("sha256") and hashlib.sha256(data).hexdigest() != entry["sha256"]:
                    raise StorageError(f"part {part_url} does not match its manifest checksum: the part was "
                                       "changed after commit; rewrite the dataset")
                source: Any = pa.BufferReader(data)
            else:
                source = f
            parquet = pq.ParquetFile(source)
            rows = parquet.metadata.num_rows
            if rows != entry["num_rows"]:
                raise StorageError(f"part {part_url} holds {rows} rows, the manifest says {entry['num_rows']}: "
                                   "the part was replaced after commit; rewrite the dataset")
            return parquet.read(columns=columns)
    except FileNotFoundError:
        raise StorageError(f"part {part_url} listed by the manifest is missing: rewrite the dataset") from None
    except pa.ArrowInvalid as err:
        raise StorageError(f"part {part_url} is not readable Parquet ({_first_line(err)}): rewrite the "
                           "dataset") from None


def read_table(url: str, columns: list[str] | None = None, schema_name: str | None = None,
               checksum: bool = False) -> pa.Table:
    """Read a committed dataset whole (only the parts its manifest lists, each checked against it)."""
    manifest = _checked_manifest(url, schema_name)
    tables = [_read_part(join(url, f["path"]), f, columns, checksum) for f in manifest.files]
    if not tables:
        contract = schemas.get(manifest.schema)
        schema = contract.arrow if columns is None else pa.schema([contract.arrow.field(c) for c in columns])
        return schema.empty_table()
    return pa.concat_tables(tables)


def iter_batches(url: str, batch_size: int = 10_000, columns: list[str] | None = None,
                 schema_name: str | None = None) -> Iterator[pa.RecordBatch]:
    """Stream a committed dataset batch by batch, never holding it whole; each part checked as it is opened
    (and the dataset's schema against ``schema_name``, as ``read_table`` does)."""
    manifest = _checked_manifest(url, schema_name) if schema_name else read_manifest(url)
    for f in manifest.files:
        check_part(url, f)
        fs, path = resolve(join(url, f["path"]))
        parquet = pq.ParquetFile(path, filesystem=fs)
        yield from parquet.iter_batches(batch_size=batch_size, columns=columns)


def check_part(url: str, entry: dict[str, Any], checksum: bool = False) -> None:
    """Check one listed part of the dataset at ``url`` against its manifest entry (raises StorageError)."""
    _read_part(join(url, entry["path"]), entry, [], checksum)


def verify_dataset(url: str, checksum: bool = True) -> list[str]:
    """Every problem of the dataset at ``url``, one line each (empty when it is sound): each listed part
    against its manifest entry, the total row count, and Parquet files that outside readers of
    ``DIR/*.parquet`` would read although the manifest does not list them."""
    try:
        manifest = _checked_manifest(url, None)
    except StorageError as err:
        return [str(err)]
    problems = []
    for f in manifest.files:
        try:
            check_part(url, f, checksum)
        except StorageError as err:
            problems.append(str(err))
    total = sum(f["num_rows"] for f in manifest.files)
    if total != manifest.num_rows:
        problems.append(f"{url}: the manifest's num_rows is {manifest.num_rows}, its parts add up to {total}")
    listed = {f["path"] for f in manifest.files}
    for name in listdir(url):
        if name.endswith(".parquet") and name not in listed:
            problems.append(f"{join(url, name)} is not listed by the manifest, yet readers of *.parquet read it: "
                            "delete it")
    return problems


def parent_licences(parents: list[dict[str, Any]]) -> list[str]:
    """The source licences a dataset's parents carry (``dataset_ref``, ``o1e.beir.source_ref``)."""
    return sorted({p["licence"] for p in parents if p.get("licence")})


def dataset_ref(url: str) -> dict[str, Any]:
    """How a child dataset names a parent in its lineage, with the licences of the source data it carries."""
    manifest = read_manifest(url)
    licences = parent_licences(manifest.parents)
    return {"url": url, "schema": manifest.schema, "config_fingerprint": manifest.config_fingerprint,
            **({"licence": "; ".join(licences)} if licences else {})}
