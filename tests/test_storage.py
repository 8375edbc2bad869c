import json
import os

import pyarrow as pa
import pytest

from conftest import eval_run_rows as rows
from o1e import storage


def test_write_read_roundtrip_with_manifest(root):
    url = storage.join(root, "run")
    manifest = storage.write_table(url, rows(5), "eval_run", config={"a": 1}, config_fingerprint="fp1",
                                   parents=[{"url": "x"}])
    back = storage.read_table(url)
    assert back.num_rows == 5 and back.column("doc_id").to_pylist() == [f"d{i}" for i in range(5)]
    assert back.schema.field("rank").type == pa.int32()  # conformed to the contract
    read = storage.read_manifest(url)
    assert read.num_rows == manifest.num_rows == 5
    assert (read.schema, read.schema_version, read.config_fingerprint) == ("eval_run", 2, "fp1")
    assert read.parents == [{"url": "x"}] and read.code_version and read.created_at


def test_overwrite_replaces_and_cleans_old_parts(root):
    url = storage.join(root, "run")
    storage.write_table(url, rows(5), "eval_run")
    storage.write_table(url, rows(2, start=10), "eval_run")
    assert storage.read_table(url).column("query_id").to_pylist() == ["10", "11"]
    assert len([n for n in storage.listdir(url) if n.startswith("part-")]) == 1


def test_uncommitted_dataset_is_invisible(root):
    url = storage.join(root, "partial")
    writer = storage.DatasetWriter(url, "eval_run", config_fingerprint="fp")
    writer.commit_shard("00000", rows(3))
    with pytest.raises(storage.StorageError, match="not a committed dataset"):
        storage.read_table(url)


def test_crash_then_rerun_resumes_without_duplicates(root):
    url = storage.join(root, "shards")
    first = storage.DatasetWriter(url, "eval_run", config_fingerprint="fp")
    first.commit_shard("00000", rows(3, 0))
    first.commit_shard("00001", rows(3, 3))
    # ... the run dies here. A rerun of the same config commits every shard again:
    rerun = storage.DatasetWriter(url, "eval_run", config_fingerprint="fp")
    assert sorted(rerun.committed()) == ["00000", "00001"]
    for shard in range(4):
        rerun.commit_shard(f"{shard:05d}", rows(3, 3 * shard))
    rerun.finalize()
    ids = storage.read_table(url).column("query_id").to_pylist()
    assert ids == [str(i) for i in range(12)]  # none lost, none twice


def test_refuses_to_mix_config_fingerprints(root):
    url = storage.join(root, "mixed")
    storage.DatasetWriter(url, "eval_run", config_fingerprint="old").commit_shard("00000", rows(1))
    with pytest.raises(storage.StorageError, match="another config .*overwrite=true"):
        storage.DatasetWriter(url, "eval_run", config_fingerprint="new")
    storage.DatasetWriter(url, "eval_run", config_fingerprint="new", overwrite=True)  # a new run is allowed


def test_write_table_refuses_another_configs_dataset(root):
    url = storage.join(root, "whole")
    storage.write_table(url, rows(2), "eval_run", config_fingerprint="a")
    storage.write_table(url, rows(3), "eval_run", config_fingerprint="a")  # same config: replaced
    assert storage.read_manifest(url).num_rows == 3
    with pytest.raises(storage.StorageError, match="overwrite=true"):
        storage.write_table(url, rows(1), "eval_run", config_fingerprint="b")
    storage.write_table(url, rows(1), "eval_run", config_fingerprint="b", overwrite=True)
    assert storage.read_table(url).num_rows == 1


def test_schema_violations_are_named(tmp_path):
    bad = pa.table({"k": [0], "query_id": ["1"], "doc_id": ["d"], "rank": ["first"], "score": [1.0]})
    with pytest.raises(ValueError, match="'rank'"):
        storage.write_table(str(tmp_path / "x"), bad, "eval_run")
    with pytest.raises(ValueError, match=r"missing column\(s\) \['score'\]"):
        storage.write_table(str(tmp_path / "x"), bad.drop(["score"]), "eval_run")


def test_refuses_unknown_schema_version(tmp_path):
    url = str(tmp_path / "v")
    storage.write_table(url, rows(1), "eval_run")
    manifest = json.loads(open(os.path.join(url, "_manifest.json")).read())
    manifest["schema_version"] = 99
    open(os.path.join(url, "_manifest.json"), "w").write(json.dumps(manifest))
    with pytest.raises(storage.StorageError, match="schema version 99"):
        storage.read_table(url)


def test_atomic_local_write_leaves_no_temporaries(tmp_path):
    url = str(tmp_path / "a" / "b.json")
    storage.write_json(url, {"x": 1})
    storage.write_json(url, {"x": 2})
    assert storage.read_json(url) == {"x": 2}
    assert os.listdir(tmp_path / "a") == ["b.json"]


def test_bad_urls_and_missing_files(tmp_path):
    with pytest.raises(storage.StorageError, match="unsupported URL"):
        storage.resolve("gs://bucket/x")
    for bad in ("s3://", "s3:///x", "s3://B_/x", "s3://ab"):
        with pytest.raises(storage.StorageError, match="malformed S3 URL"):
            storage.resolve(bad)
        with pytest.raises(storage.StorageError, match="malformed S3 URL"):
            storage.join(bad, "rejects")  # never a local folder named 's3:'
    with pytest.raises(storage.StorageError, match="unsupported URL"):
        storage.resolve("s3:bucket/x")
    with pytest.raises(storage.StorageError, match="not found"):
        storage.read_bytes(str(tmp_path / "nope"))


def test_s3_attempts_setting_is_checked(monkeypatch):
    monkeypatch.setenv("O1E_S3_MAX_ATTEMPTS", "three")
    with pytest.raises(storage.StorageError, match="O1E_S3_MAX_ATTEMPTS='three'"):
        storage.resolve("s3://bucket/x")
    monkeypatch.setenv("O1E_S3_MAX_ATTEMPTS", "3")
    assert storage.s3_max_attempts() == 3


def test_s3_credentials_are_never_written(s3_bucket):
    url = s3_bucket + "/secret-check"
    storage.write_table(url, rows(1), "eval_run", config={"dataset": "s3://x"})
    text = storage.read_text(storage.join(url, "_manifest.json"))
    assert os.environ["AWS_SECRET_ACCESS_KEY"] not in text


def test_download_dir_from_s3(s3_bucket, tmp_path):
    from conftest import upload_dir

    src = tmp_path / "model"
    (src / "sub").mkdir(parents=True)
    (src / "config.json").write_text("{}")
    (src / "sub" / "w.bin").write_bytes(b"\x00" * 100)
    upload_dir(str(src), s3_bucket + "/models/m")
    dest = storage.download_dir(s3_bucket + "/models/m", str(tmp_path / "copy"))
    assert open(os.path.join(dest, "sub", "w.bin"), "rb").read() == b"\x00" * 100
