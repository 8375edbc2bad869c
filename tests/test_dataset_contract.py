"""The dataset contract as consuming teams meet it: verified reads against the manifest, and what
DuckDB, Polars and pandas see when they read a dataset folder directly, at every moment of a commit."""

import glob
import hashlib
import json
import os
import threading
import time

import duckdb
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import eval_run_rows, outside_counts
from o1e import storage


def rows(n, start=0, tag="v1"):
    return eval_run_rows(n, start, prefix=f"{tag}-")


def test_manifest_records_count_size_and_checksum(root):
    url = storage.join(root, "ds")
    manifest = storage.write_table(url, rows(7), "eval_run", config_fingerprint="fp")
    (entry,) = manifest.files
    data = storage.read_bytes(storage.join(url, entry["path"]))
    assert manifest.manifest_version == storage.MANIFEST_VERSION == 2
    assert (entry["num_rows"], entry["size"], entry["sha256"]) == (7, len(data), hashlib.sha256(data).hexdigest())
    assert storage.verify_dataset(url) == []


def test_replaced_part_is_an_error_naming_it(root):
    url = storage.join(root, "ds")
    manifest = storage.write_table(url, rows(40), "eval_run")
    part = storage.join(url, manifest.files[0]["path"])
    sink = pa.BufferOutputStream()
    pq.write_table(rows(10), sink)
    storage.write_bytes(part, sink.getvalue().to_pybytes())  # another valid Parquet file, 10 rows
    with pytest.raises(storage.StorageError, match=f"part .*{manifest.files[0]['path']}.*manifest says"):
        storage.read_table(url)
    with pytest.raises(storage.StorageError, match="manifest says"):
        list(storage.iter_batches(url))
    (problem,) = storage.verify_dataset(url)
    assert manifest.files[0]["path"] in problem


def test_same_size_tampering_is_caught_by_the_checksum(tmp_path):
    url = str(tmp_path / "ds")
    manifest = storage.write_table(url, rows(5), "eval_run")
    path = os.path.join(url, manifest.files[0]["path"])
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 0xFF  # same size, one byte changed
    open(path, "wb").write(bytes(data))
    with pytest.raises(storage.StorageError, match="checksum"):
        storage.read_table(url, checksum=True)
    assert any("checksum" in p for p in storage.verify_dataset(url))


def test_missing_part_and_stray_part_are_reported(tmp_path):
    url = str(tmp_path / "ds")
    manifest = storage.write_table(url, rows(5), "eval_run")
    pq.write_table(rows(3), os.path.join(url, "part-stray.parquet"))
    assert any("part-stray.parquet is not listed" in p for p in storage.verify_dataset(url))
    os.remove(os.path.join(url, manifest.files[0]["path"]))
    with pytest.raises(storage.StorageError, match="is missing"):
        storage.read_table(url)


def test_outside_readers_see_nothing_before_commit_and_agree_after(tmp_path):
    url = str(tmp_path / "ds")
    writer = storage.DatasetWriter(url, "eval_run", config_fingerprint="fp")
    writer.commit_shard("00000", rows(3, 0))
    writer.commit_shard("00001", rows(4, 3))
    assert outside_counts(url) == {"duckdb": 0, "polars": 0, "pandas": 0}  # staged under _shards/
    # ... the run dies; a rerun commits every shard again (two already there) and finalizes:
    rerun = storage.DatasetWriter(url, "eval_run", config_fingerprint="fp")
    for i in range(3):
        rerun.commit_shard(f"{i:05d}", rows(5, 10 * i))
    manifest = rerun.finalize()
    assert manifest.num_rows == 3 + 4 + 5
    assert set(outside_counts(url).values()) == {manifest.num_rows}
    assert sorted(os.path.basename(p) for p in glob.glob(os.path.join(url, "*.parquet"))) == sorted(
        f["path"] for f in manifest.files)
    assert not [n for n in os.listdir(os.path.join(url, "_shards")) if not n.endswith(".json")]

    # An overwrite (another config) leaves none of the old parts once it commits.
    again = storage.DatasetWriter(url, "eval_run", config_fingerprint="other", overwrite=True)
    again.commit_shard("00000", rows(2, tag="v2"))
    assert set(outside_counts(url).values()) == {12}  # the old version, whole, until the commit
    manifest = again.finalize()
    assert set(outside_counts(url).values()) == {2}
    assert set(pl.read_parquet(os.path.join(url, "*.parquet"))["query_id"].str.slice(0, 2)) == {"v2"}
    assert storage.verify_dataset(url) == []


def test_reading_only_listed_parts_recipe(tmp_path):
    """The documented recipe (docs/data.md): read the parts the manifest lists, whatever else the folder holds."""
    url = str(tmp_path / "ds")
    storage.write_table(url, rows(6), "eval_run")
    pq.write_table(rows(3), os.path.join(url, "part-stray.parquet"))
    manifest = json.load(open(os.path.join(url, "_manifest.json")))
    parts = [os.path.join(url, f["path"]) for f in manifest["files"]]
    assert duckdb.sql(f"select count(*) from read_parquet({parts!r})").fetchall()[0][0] == manifest["num_rows"] == 6
    assert pl.read_parquet(parts).height == 6
    assert len(pd.read_parquet(parts[0])) == 6


def test_glob_reader_never_sees_a_half_written_or_superseded_part(tmp_path):
    url = str(tmp_path / "ds")
    versions = {"v1": storage.write_table(url, rows(50, tag="v1"), "eval_run", config_fingerprint="v1")}
    listings, stop, failures = [], threading.Event(), []

    def reader():
        while not stop.is_set():
            names = sorted(os.path.basename(p) for p in glob.glob(os.path.join(url, "*.parquet")))
            listings.append(names)
            for name in names[len(listings) % 4::4]:  # read a quarter of them whole, in turn
                try:
                    pq.read_table(os.path.join(url, name))
                except FileNotFoundError:
                    continue  # deleted between the listing and the read: an old version going away
                except Exception as err:  # noqa: BLE001 - anything else is a half-written part
                    failures.append(f"{name}: {err}")

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for attempt in range(3):  # three overwrites, each committing 24 shards then finalizing
            tag = f"v{attempt + 2}"
            writer = storage.DatasetWriter(url, "eval_run", config_fingerprint=tag, overwrite=True)
            for shard in range(24):
                writer.commit_shard(f"{shard:05d}", rows(50, 50 * shard, tag=tag))
            versions[tag] = writer.finalize()
        settled = len(listings)
        while len(listings) < settled + 2:  # let the reader look at the last version too
            time.sleep(0.01)
    finally:
        stop.set()
        thread.join()
    version_of = {f["path"]: tag for tag, manifest in versions.items() for f in manifest.files}
    assert not failures
    assert len(listings) > 20
    seen = [{version_of.get(name, "unlisted") for name in names} for names in listings]
    assert "unlisted" not in set().union(*seen)  # no temporary, staged or stray part, ever
    assert all(len(tags) <= 1 for tags in seen), [t for t in seen if len(t) > 1][:3]  # never two versions
    assert {"v1", "v4"} <= set().union(*seen)
    assert set(outside_counts(url).values()) == {24 * 50}


def test_every_kind_of_dataset_a_stage_writes_reads_the_same_outside(tmp_path, demo_data):
    """prepare, the committee (with oracle candidates) and eval write 10 datasets of 7 kinds; DuckDB, Polars
    and pandas count exactly the manifest's rows in each, and o1e verify finds nothing wrong. The other two
    kinds, eval's ``thoughts`` and ``embeddings`` cache, are checked on test_eval_o1's shared O1 eval run."""
    from o1e.committee.config import CommitteeConfig
    from o1e.committee.driver import run_committee
    from o1e.committee.oracle import write_oracle_inputs
    from o1e.eval.config import EvalConfig
    from o1e.eval.driver import run_eval
    from o1e.config import load_config
    from o1e.verify import find_datasets
    from o1e.synth.config import PrepareConfig
    from o1e.synth.prepare import run_prepare

    run_prepare(load_config(PrepareConfig, None, [f"output={tmp_path}/prepare", "mining.count=3"]), show=False)
    write_oracle_inputs(demo_data, str(tmp_path / "oracle"))
    run_committee(CommitteeConfig(training_rows=str(tmp_path / "oracle" / "training_rows"),
                                  candidates=str(tmp_path / "oracle" / "candidates"), members=[{"kind": "bm25"}],
                                  executor="local", progress=False, output=str(tmp_path / "vote")), show=False)
    run_eval(EvalConfig(output=str(tmp_path / "eval"), top_k=10), show=False)
    datasets, unfinished = find_datasets(str(tmp_path))
    kinds = {storage.read_manifest(url).schema for url in datasets}
    assert not unfinished and len(datasets) == 10 and kinds == {
        "training_rows", "candidates", "training", "committee_scores", "eval_run", "eval_per_query", "rejects"}
    for url in datasets:
        manifest = storage.read_manifest(url)
        assert set(outside_counts(url).values()) == {manifest.num_rows}, url
        assert storage.verify_dataset(url) == [], url
