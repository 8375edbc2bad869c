"""synth without an engine: the paper's prompt template on text, seeded draws, row checks, shards, config."""

from __future__ import annotations

import pickle

import numpy as np
import pyarrow as pa
import pytest

from o1e import storage
from o1e.config import load_config
from o1e.llm.base import prompt_fingerprint
from o1e.synth import prompts as P
from o1e.synth.config import PromptConfig, SynthConfig
from o1e.synth.rows import (Reservoir, count_known, duplicate_first_rows, iter_new_shards, iter_shards, load_pool,
                        row_problem)


def pool_of(pairs: list[tuple[str, str, str]]) -> P.ExamplePool:
    ids, queries, responses = zip(*pairs)
    return P.ExamplePool(pa.array(ids), pa.array(queries), pa.array(responses))


POOL = pool_of([("q1", "what is dna", "DNA is a molecule."), ("q2", "why is the sky blue", "Rayleigh scattering."),
                ("q3", "who wrote hamlet", "Shakespeare wrote Hamlet.")])


def test_paper_template_on_text():
    cfg = PromptConfig()
    prompt = P.Prompt("q9", 0, "does aspirin thin blood",
                      (P.Example("what is dna", "DNA is a molecule."), P.Example("who wrote hamlet", "Shakespeare.")))
    system, user = P.messages(cfg, prompt)
    assert system == {"role": "system", "content": (
        "You are a helpful assistant. Follow the task description. Never ask for clarification and "
        "do not repeat the query: just give the response.")}
    assert user["role"] == "user"
    # Four blocks in the paper's order: task line, in-context examples, the query, an open Response slot,
    # with the reference template's trailing spaces ("Task: ", "Examples: ", "Query: ", "Response: ").
    assert user["content"] == (
        "Task: \nThink about a plausible response to address the query.\n\n"
        "Examples: \n"
        "Query: what is dna\nResponse: DNA is a molecule.\n"
        "Query: who wrote hamlet\nResponse: Shakespeare.\n\n"
        "Query: \ndoes aspirin thin blood\nResponse: "
    )


def test_examples_block_cut_at_20480_characters():
    cfg = PromptConfig()
    assert cfg.examples_max_chars == 20_480 and cfg.num_examples == 3
    long = tuple(P.Example(f"query {i}", "x" * 9_000) for i in range(3))
    block = P.examples_block(cfg, long)
    assert len(block) == 20_480
    assert block == "\n".join(f"Query: query {i}\nResponse: {'x' * 9_000}" for i in range(3))[:20_480]
    user = P.user_message(cfg, "q", long)
    assert user.endswith("\n\nQuery: \nq\nResponse: ") and block in user


def test_text_and_example_count_come_from_config():
    cfg = PromptConfig(system="S", task="Write a passage that answers the query.", num_examples=5,
                       template="{task}|{examples}|{query}", example_template="<{query}={response}>",
                       example_separator=";")
    prompts = P.candidate_prompts(cfg, POOL, seed=1, query_id="q", query="Q?", num_candidates=2)
    assert all(len(p.examples) == 5 for p in prompts)
    system, user = P.messages(cfg, prompts[0])
    assert system["content"] == "S"
    examples = ";".join(f"<{e.query}={e.response}>" for e in prompts[0].examples)
    assert user["content"] == f"Write a passage that answers the query.|{examples}|Q?"


def test_same_seed_same_prompts_fresh_draw_per_candidate():
    cfg = PromptConfig()
    big = pool_of([(f"q{i}", f"query {i}", f"passage {i}") for i in range(500)])
    first = P.candidate_prompts(cfg, big, seed=7, query_id="q42", query="text", num_candidates=5)
    again = P.candidate_prompts(cfg, big, seed=7, query_id="q42", query="text", num_candidates=5)
    other = P.candidate_prompts(cfg, big, seed=8, query_id="q42", query="text", num_candidates=5)
    assert first == again
    assert [p.examples for p in first] != [p.examples for p in other]
    assert len({p.examples for p in first}) == 5  # each candidate draws its own examples
    assert [p.candidate_index for p in first] == list(range(5))
    # A candidate's prompt depends on (seed, query id, index) only: asking for fewer keeps the same ones.
    assert P.candidate_prompts(cfg, big, seed=7, query_id="q42", query="text", num_candidates=2) == first[:2]
    fps = {prompt_fingerprint(P.messages(cfg, p)) for p in first}
    assert len(fps) == 5


def test_renderer_drops_trailing_examples_one_at_a_time():
    cfg = PromptConfig()
    prompt = P.candidate_prompts(cfg, POOL, seed=3, query_id="q9", query="text", num_candidates=1)[0]
    renderer = P.ExplorationPrompts(cfg)
    assert renderer.kind == "chat"
    assert list(renderer.variants(prompt)) == [P.messages(cfg, prompt, k) for k in (3, 2, 1, 0)]
    assert pickle.loads(pickle.dumps(renderer)) == renderer  # it travels to the engine's replicas
    assert renderer != P.ExplorationPrompts(PromptConfig(num_examples=2))


def test_draws_are_uniform_with_replacement_and_can_exclude_self():
    rng = np.random.default_rng(0)
    drawn = [POOL.draw(rng, 3) for _ in range(3000)]
    counts = {q: sum(e.query == q for d in drawn for e in d) for q in ("what is dna", "why is the sky blue")}
    assert all(2700 < c < 3300 for c in counts.values())  # 9000 draws over 3 rows
    assert any(len({e.query for e in d}) < 3 for d in drawn)  # with replacement
    cfg = PromptConfig(exclude_self=True)
    for p in P.candidate_prompts(cfg, POOL, 0, "q1", "what is dna", 20):
        assert all(e.query != "what is dna" for e in p.examples)
    assert P.candidate_prompts(cfg, pool_of([("q1", "a", "b")]), 0, "q1", "a", 1)[0].examples == ()


def test_row_problems():
    assert row_problem("", ["p"])[0] == "empty_query"
    assert row_problem("  \n", ["p"])[0] == "empty_query"
    assert row_problem("q", [])[0] == "missing_positive"
    assert row_problem("q", ["", " "])[0] == "missing_positive"
    assert row_problem("q", None)[0] == "missing_positive"
    assert row_problem("q", ["", "p"]) is None


def _rows_dataset(url: str, n: int) -> None:
    table = pa.Table.from_pylist([
        {"query_id": f"q{i}", "query": f"query {i}" if i != 3 else "", "positive_ids": [f"d{i}"],
         "positives": [f"passage {i}"], "negative_ids": [], "negatives": []} for i in range(n)
    ] + [{"query_id": "q5", "query": "again", "positive_ids": ["d"], "positives": ["p"], "negative_ids": [],
          "negatives": []}])
    writer = storage.DatasetWriter(url, "training_rows")
    writer.commit_shard("a", table.slice(0, 7))
    writer.commit_shard("b", table.slice(7))
    writer.finalize()


def test_shards_are_stable_and_skippable(tmp_path):
    url = str(tmp_path / "rows")
    _rows_dataset(url, 10)
    shards = list(iter_shards(url, 4))
    assert [s.shard_id for s in shards] == ["000000", "000001", "000002"]
    assert [s.first_row for s in shards] == [0, 4, 8]
    assert sum(s.rows.num_rows for s in shards) == 11
    assert shards[1].rows.column("query_id").to_pylist() == ["q4", "q5", "q6", "q7"]
    resumed = list(iter_shards(url, 4, skip={"000000", "000002"}))
    assert [s.shard_id for s in resumed] == ["000001"]
    assert resumed[0].rows.equals(shards[1].rows)
    pool = load_pool(url, 100_000, 0)
    assert len(pool) == 10  # the empty query is not an example
    assert duplicate_first_rows(url) == {"q5": 5}
    known = pa.array(["q1", "q4", "q5", "q9/0"])  # query ids, and a candidate's key that names none
    assert count_known(url, known) == 4  # q1, q4 and q5 (which occurs twice)
    new = list(iter_new_shards(url, 3, known, "run"))
    assert [s.shard_id for s in new] == ["run-000000", "run-000001", "run-000002"]
    assert [s.rows.column("query_id").to_pylist() for s in new] == [["q0", "q2", "q3"], ["q6", "q7", "q8"], ["q9"]]
    assert new[1].row_number(0) == 6 and new[2].row_numbers == [9]


def test_example_pool_is_bounded_and_whole_under_the_bound(tmp_path):
    url = str(tmp_path / "rows")
    _rows_dataset(url, 40)
    usable = [(f"q{i}", f"query {i}", f"passage {i}") for i in range(40) if i != 3] + [("q5", "again", "p")]
    whole = load_pool(url, 40, seed=0, batch_rows=7)
    assert [whole.example(i) for i in range(len(whole))] == [P.Example(q, r) for _, q, r in usable]
    cfg = PromptConfig()
    for query_id in ("q1", "q17", "new"):  # under the bound: exactly the prompts of the whole pool
        assert (P.candidate_prompts(cfg, whole, 0, query_id, "x", 3)
                == P.candidate_prompts(cfg, pool_of(usable), 0, query_id, "x", 3))
    sample = load_pool(url, 8, seed=0, batch_rows=7)
    assert len(sample) == 8
    kept = [sample.query_ids[i].as_py() for i in range(8)]
    order = [q for q, _, _ in usable]
    assert sorted(kept, key=order.index) == kept  # a subset, in input order
    again = load_pool(url, 8, seed=0, batch_rows=3)  # the draw depends on the seed, not on batching
    assert [again.query_ids[i].as_py() for i in range(8)] == kept
    assert [load_pool(url, 8, seed=1).query_ids[i].as_py() for i in range(8)] != kept


def test_reservoir_holds_at_most_its_capacity_and_samples_uniformly():
    kept = np.zeros(50)
    for seed in range(400):
        reservoir, slots = Reservoir(5, seed), np.full(5, -1)
        for count in (3, 20, 27):
            chosen = reservoir.slots(count)
            assert chosen.max() < 5
            for item, slot in enumerate(chosen, start=reservoir.seen - count):
                if slot >= 0:
                    slots[slot] = item
        kept[slots] += 1
    assert (slots >= 0).all() and 20 < kept.min() and kept.max() < 65  # each item kept ~40 times in 400


def test_fingerprint_ignores_deployment_not_content():
    base = load_config(SynthConfig, None, ["engine.model=/m"])
    scaled = load_config(SynthConfig, None, ["engine.model=/m", "engine.replicas=8", "output=elsewhere",
                                             "overwrite=true", "engine.num_cpus_per_replica=4"])
    assert base.fingerprint() == scaled.fingerprint()
    for change in ("seed=1", "num_candidates=4", "prompt.task=x", "sampling.max_tokens=10", "engine.model=/n",
                   "shard_size=7"):
        assert load_config(SynthConfig, None, ["engine.model=/m", change]).fingerprint() != base.fingerprint()
    http = load_config(SynthConfig, None, ["engine.kind=openai", "engine.model=m", "engine.concurrency=3"])
    assert http.engine.kind == "openai"
    assert http.fingerprint() == load_config(SynthConfig, None, ["engine.kind=openai", "engine.model=m",
                                                                 "engine.base_url=http://other/v1"]).fingerprint()


def test_paper_defaults():
    cfg = SynthConfig()
    assert cfg.num_candidates == 3 and cfg.prompt.num_examples == 3 and cfg.prompt.examples_max_chars == 20_480
    assert cfg.sampling.max_tokens == 512 and cfg.sampling.temperature is None and cfg.sampling.top_p is None
    assert cfg.prompt.task == "Think about a plausible response to address the query."
    assert cfg.engine.max_model_len == 8192


def test_rerun_with_another_config_refuses_to_mix(tmp_path):
    from o1e.synth.driver import run_synth

    url = str(tmp_path / "rows")
    _rows_dataset(url, 10)
    out = str(tmp_path / "out")
    storage.DatasetWriter(storage.join(out, "candidates"), "candidates", config_fingerprint="someone-else"
                          ).commit_shard("000000", storage.schemas.CANDIDATES.empty())
    cfg = load_config(SynthConfig, None, [f"input={url}", f"output={out}", "engine.model=/nowhere"])
    with pytest.raises(storage.StorageError, match="another config.*overwrite=true"):
        run_synth(cfg, show=False)


def test_cli_parses_synth_steps(capsys):
    from o1e.pipeline.cli import main

    assert main(["synth", "run", "-m", "/models/x", "--num-candidates", "5", "--base-url", "http://h:1/v1", "--print-config"]) == 0
    out = capsys.readouterr().out
    assert "num_candidates: 5" in out and "kind: openai" in out and "base_url: http://h:1/v1" in out
    assert main(["synth", "prepare", "--negatives", "7", "--depth", "50", "--print-config"]) == 0
    out = capsys.readouterr().out
    assert "count: 7" in out and "depth: 50" in out
    # overrides may stand anywhere among the flags
    assert main(["synth", "prepare", "mining.seed=3", "-o", "/tmp/x", "overwrite=true", "--print-config"]) == 0
    out = capsys.readouterr().out
    assert "seed: 3" in out and "overwrite: true" in out and "output: /tmp/x" in out
    assert main(["synth", "run", "engine.kind=nope"]) == 2
    with pytest.raises(SystemExit) as usage:
        main(["synth", "prepare", "-o", "/tmp/x", "--bogus"])
    assert usage.value.code == 2


def test_summary_names_the_sampling_values_used():
    from o1e.synth.config import SynthConfig
    from o1e.synth.report import resolved_sampling

    unset = SynthConfig()
    # vLLM resolves "the engine's default" from the model's generation config and reports it.
    assert resolved_sampling(unset, {"temperature": 0.6, "top_p": 0.9}) == {"temperature": 0.6, "top_p": 0.9}
    assert resolved_sampling(unset, {}) == {"temperature": "server default", "top_p": "server default"}
    assert resolved_sampling(SynthConfig(sampling={"temperature": 0.2}), {"temperature": 0.6, "top_p": 0.9}) == {
        "temperature": 0.2, "top_p": 0.9}
