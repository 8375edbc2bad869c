import subprocess
import sys

import pytest

from o1e.eval.config import EvalConfig
from o1e.config import ConfigError, load_config


def write(tmp_path, text):
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    return str(path)


def test_layers_defaults_yaml_then_overrides(tmp_path):
    path = write(tmp_path, "shards: 3\nretriever: {kind: dense, model: /m, batch_size: 16}\n")
    cfg = load_config(EvalConfig, path, ["retriever.batch_size=8", "dataset.split=dev"])
    assert cfg.shards == 3
    assert cfg.retriever.kind == "dense" and cfg.retriever.model == "/m"
    assert cfg.retriever.batch_size == 8  # the command line wins over the file
    assert cfg.dataset.split == "dev"
    assert cfg.top_k == 1000  # untouched default


def test_unknown_key_in_file_is_named(tmp_path):
    path = write(tmp_path, "dataset: {path: /x, splt: test}\n")
    with pytest.raises(ConfigError) as err:
        load_config(EvalConfig, path)
    assert "dataset.splt: unknown key" in str(err.value)
    assert path in str(err.value)


def test_unknown_key_and_bad_type_on_command_line():
    with pytest.raises(ConfigError, match=r"retriever\.bm25\.k3: unknown key"):
        load_config(EvalConfig, None, ["retriever.k3=1"])
    with pytest.raises(ConfigError, match=r"shards: .*integer"):
        load_config(EvalConfig, None, ["shards=two"])
    with pytest.raises(ConfigError, match="dotted.key=value"):
        load_config(EvalConfig, None, ["shards"])


def test_file_must_be_a_mapping_and_exist(tmp_path):
    with pytest.raises(ConfigError, match="mapping"):
        load_config(EvalConfig, write(tmp_path, "- a\n- b\n"))
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(EvalConfig, str(tmp_path / "missing.yaml"))


def test_fingerprint_ignores_where_results_go():
    a = load_config(EvalConfig, None, ["output=/a", "shards=1"])
    b = load_config(EvalConfig, None, ["output=/b", "shards=4", "ray.num_cpus=2"])
    c = load_config(EvalConfig, None, ["top_k=10"])
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()


def test_example_configs_load():
    import glob
    import os

    paths = glob.glob(os.path.join(os.path.dirname(__file__), "..", "eval", "configs", "*.yaml"))
    assert paths
    for path in paths:
        load_config(EvalConfig, path)


def test_cli_short_flags_and_print_config():
    out = subprocess.run(
        [sys.executable, "-m", "o1e.eval", "-d", "/data/x", "-s", "dev", "-m", "/models/m", "-n", "2", "-k", "100",
         "-o", "/out", "retriever.batch_size=4", "--print-config"],
        capture_output=True, text=True, check=True,
    ).stdout
    cfg = EvalConfig.model_validate(__import__("yaml").safe_load(out))
    assert (cfg.dataset.path, cfg.dataset.split, cfg.shards, cfg.top_k, cfg.output) == ("/data/x", "dev", 2, 100, "/out")
    assert cfg.retriever.kind == "dense" and cfg.retriever.model == "/models/m" and cfg.retriever.batch_size == 4


def test_cli_rejects_wrong_config_before_work():
    proc = subprocess.run([sys.executable, "-m", "o1e.pipeline.cli", "eval", "retriever.kind=sparse"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "invalid config" in proc.stderr and "retriever" in proc.stderr
    assert "Traceback" not in proc.stderr
