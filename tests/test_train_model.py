"""The O1 model core (o1e/sequences.py, o1e/o1model.py, train/data.py, train/losses.py) on a tiny random Llama/Qwen2.

The models are randomly initialised (no pretrained LLM exists offline): these tests check sequences,
masks, embeddings and losses, not what a trained model would write.
"""

from __future__ import annotations

import random
from collections import Counter

import pytest
import torch

from o1e import sequences as o1seq
from o1e.o1model import O1Model
from o1e.sequences import SequenceConfig
from o1e.tiny import make_random_lm
from o1e.train import data as train_data
from o1e.train.config import LossConfig
from o1e.train.losses import generation_loss, info_nce, joint_loss


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> str:
    return make_random_lm(str(tmp_path_factory.mktemp("tiny") / "llama"), hidden=64, layers=2)


@pytest.fixture()
def model(tiny_dir) -> O1Model:
    torch.manual_seed(0)
    return O1Model.from_pretrained(tiny_dir)


def tokens(model, ids) -> list[str]:
    return model.tokenizer.convert_ids_to_tokens([i for i in ids])


def test_special_tokens_added_and_embeddings_resized(model):
    tok = model.tokenizer
    for t in o1seq.SPECIAL_TOKENS:
        assert t in tok.get_vocab()
    assert model.lm.get_input_embeddings().num_embeddings == len(tok) == 30522 + 4
    assert model.lm.get_output_embeddings().weight.shape[0] == len(tok)
    assert tok.padding_side == "left"


def test_query_sequence_layout_and_labels(model):
    seq = SequenceConfig()
    batch = o1seq.encode_queries(model.tokenizer, ["what is a cell ?", "short"], ["a cell is small", ""], seq)
    row = batch["input_ids"][0].tolist()
    assert tokens(model, row) == ["<query>", "what", "is", "a", "cell", "?", "</query>", "<thought>",
                                  "a", "cell", "is", "small", "[SEP]", "<emb>"]
    labels = batch["labels"][0].tolist()
    # Only the thought and the eos are learned; prompt and <emb> are masked.
    assert [tokens(model, [t])[0] for t in labels if t != -100] == ["a", "cell", "is", "small", "[SEP]"]
    assert labels[-1] == -100 and labels[:8] == [-100] * 8
    # Left padding: the shorter row is padded on the left, <emb> last in both.
    assert batch["attention_mask"][1].tolist()[0] == 0 and batch["input_ids"][1, -1] == model.ids.emb


def test_dropped_thought_is_thought_then_emb_with_no_target(model):
    """A dropped (or empty) thought, next to the reference code's layout: its collator appends the thought
    text with the eos to ``<query>{q}</query><thought>``, so an empty thought leaves ``<thought><emb>``, and
    labels everything up to ``<thought>`` and the final ``<emb>`` as -100: nothing is left to learn."""
    batch = train_data.collate([{"query": "what is a cell ?", "thought": "a cell is small", "positives": ["p"],
                                 "negatives": ["n"]}], model.tokenizer, SequenceConfig(thought_dropout=1.0), 2,
                               random.Random(0))
    assert batch.stats["thought_dropped"] == 1
    ids, labels = batch.query["input_ids"][0].tolist(), batch.query["labels"][0].tolist()
    official = ["<query>", "what", "is", "a", "cell", "?", "</query>", "<thought>", "<emb>"]
    print("\ndropped thought:", list(zip(tokens(model, ids), labels)))
    assert tokens(model, ids) == official
    assert labels == [-100] * len(official)
    # No generation target at all: the generation loss of such a batch is zero, not an eos loss.
    gen, _ = model.query_pass(batch.query)
    assert gen.item() == 0.0


def test_lengths_are_cut_as_the_paper_says(model):
    seq = SequenceConfig()
    stats = Counter()
    long_query = " ".join(["protein"] * 50)
    long_thought = " ".join(["cell"] * 400)
    batch = o1seq.encode_queries(model.tokenizer, [long_query], [long_thought], seq, stats)
    ids = batch["input_ids"][0].tolist()
    assert len(ids) == 256 and ids[-1] == model.ids.emb and ids[-2] == model.ids.eos
    q_end = ids.index(model.ids.query_close)
    assert q_end - 1 == 32  # <query> + 32 query tokens
    assert stats["thought_truncated"] == 1 and stats["query_truncated"] == 1
    docs = o1seq.encode_documents(model.tokenizer, [" ".join(["gene"] * 300), "tiny doc"], seq, stats)
    assert docs["input_ids"].shape[1] == 193 and docs["input_ids"][0, -1] == model.ids.emb
    assert docs["input_ids"][1, -1] == model.ids.emb and stats["doc_truncated"] == 1


def test_two_emb_variant_layout(model):
    seq = SequenceConfig(two_emb=True)
    batch = o1seq.encode_queries(model.tokenizer, ["what is a cell"], ["small"], seq)
    assert tokens(model, batch["input_ids"][0].tolist()) == [
        "<query>", "what", "is", "a", "cell", "<emb>", "<thought>", "small", "[SEP]", "<emb>"]


def test_group_sampling_repeats_short_negatives_and_keeps_positive_first():
    rng = random.Random(0)
    group, order = train_data.sample_group(["pos"], ["n1", "n2"], 16, rng)
    assert len(group) == 16 and group[0] == "pos" and set(group[1:]) == {"n1", "n2"}
    assert order[0] == 0 and all(i in (1, 2) for i in order[1:])
    group, _ = train_data.sample_group(["p"], [f"n{i}" for i in range(30)], 16, rng)
    assert len(set(group[1:])) == 15  # enough negatives: no repetition


def test_collate_skips_bad_rows_and_counts_them(model):
    rows = [
        {"query": "q1", "thought": "t1", "positives": ["good doc"], "negatives": ["neg a", "neg b"]},
        {"query": "q2", "thought": "", "positives": ["doc two"], "negatives": []},
        {"query": "q3", "thought": "t3", "positives": [], "negatives": ["x"]},
        {"query": "  ", "thought": "t4", "positives": ["d"], "negatives": ["x"]},
    ]
    batch = train_data.collate(rows, model.tokenizer, SequenceConfig(thought_dropout=0.0), 4, random.Random(0))
    assert batch.num_queries == 2 and batch.docs["input_ids"].shape[0] == 8 and batch.group_size == 4
    assert batch.stats["skipped_missing_positive"] == 1 and batch.stats["skipped_empty_query"] == 1
    assert batch.stats["empty_thought"] == 1 and batch.stats["negatives_borrowed"] == 1
    assert train_data.collate(rows[2:], model.tokenizer, SequenceConfig(), 4, random.Random(0)) is None


def test_teacher_scores_follow_the_sampled_group(model):
    rows = [{"query": "q", "thought": "t", "positives": ["p"], "negatives": ["a", "b"],
             "teacher_scores": [9.0, 1.0, 2.0]}]
    batch = train_data.collate(rows, model.tokenizer, SequenceConfig(), 3, random.Random(1))
    assert batch.teacher is not None and batch.teacher[0, 0] == 9.0
    assert sorted(batch.teacher[0, 1:].tolist()) in ([1.0, 2.0], [1.0, 1.0], [2.0, 2.0])


def test_thought_dropout_rate(model):
    rows = [{"query": f"q{i}", "thought": "some thought", "positives": ["p"], "negatives": ["n"]}
            for i in range(2000)]
    stats = Counter()
    rng = random.Random(0)
    for i in range(0, 2000, 500):
        stats.update(train_data.collate(rows[i:i + 500], model.tokenizer, SequenceConfig(), 2, rng).stats)
    assert 0.08 < stats["thought_dropped"] / 2000 < 0.12


def test_embedding_is_normalised_last_emb_state_and_padding_invariant(model):
    model.eval()
    docs = ["a short passage", "a much longer passage about proteins and cells and genes"]
    together = model.embed_documents(docs)
    alone = torch.cat([model.embed_documents([d]) for d in docs])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-5)
    assert torch.allclose(together.norm(dim=-1), torch.ones(2))
    enc = o1seq.encode_documents(model.tokenizer, docs[:1], model.seq)
    with torch.no_grad():
        hidden = model.lm(**enc, output_hidden_states=True).hidden_states[-1]
    assert enc["input_ids"][0, -1] == model.ids.emb
    torch.testing.assert_close(together[0], torch.nn.functional.normalize(hidden[0, -1], dim=-1))


def test_embed_queries_averages_normalised_thought_vectors(model):
    model.eval()
    q = model.embed_queries(["what is a cell"], [["t one", "t two"]])
    a = model.embed_queries(["what is a cell"], ["t one"])
    b = model.embed_queries(["what is a cell"], ["t two"])
    torch.testing.assert_close(q, (a + b) / 2)


def test_single_pass_equals_two_pass(model):
    """The joint single pass gives the same generation loss, embeddings, joint loss and gradients as a
    separate generation pass plus embedding pass over the same query + thought."""
    model.eval()  # no dropout: the two computations must be compared on equal terms
    rows = [{"query": f"query number {i}", "thought": f"thought {i} about cells", "positives": [f"pos {i}"],
             "negatives": [f"neg {i} a", f"neg {i} b"]} for i in range(4)]
    batch = train_data.collate(rows, model.tokenizer, SequenceConfig(thought_dropout=0.0), 3, random.Random(0))
    cfg = LossConfig(group_size=3)

    def run(query_fn):
        model.zero_grad()
        gen, q = query_fn(batch.query)
        out = joint_loss(q, model.doc_pass(batch.docs), gen, batch.group_size, cfg)
        out.loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        return out, q, grads

    single, q1, g1 = run(model.query_pass)
    double, q2, g2 = run(model.two_pass_query)
    torch.testing.assert_close(single.generation, double.generation)
    torch.testing.assert_close(q1[0], q2[0])
    torch.testing.assert_close(single.loss, double.loss)
    assert g1.keys() == g2.keys() and len(g1) > 10
    for name in g1:
        torch.testing.assert_close(g1[name], g2[name], atol=1e-5, rtol=1e-4, msg=name)


def test_generation_loss_matches_transformers(model):
    model.eval()
    batch = o1seq.encode_queries(model.tokenizer, ["q"], ["a thought"], model.seq)
    with torch.no_grad():
        ref = model.lm(input_ids=batch["input_ids"], labels=batch["labels"]).loss
        ours = generation_loss(model.lm(input_ids=batch["input_ids"]).logits, batch["labels"])
    torch.testing.assert_close(ours, ref)


def test_info_nce_by_hand():
    torch.manual_seed(0)
    q = torch.nn.functional.normalize(torch.randn(2, 8), dim=-1)
    d = torch.nn.functional.normalize(torch.randn(6, 8), dim=-1)
    cfg = LossConfig(group_size=3)
    out = info_nce(q, d, 3, cfg)
    logits = q @ d.T / 0.02
    expected = -(torch.log_softmax(logits, 1)[0, 0] + torch.log_softmax(logits, 1)[1, 3]) / 2
    torch.testing.assert_close(out.loss, expected)
    own = info_nce(q, d, 3, LossConfig(group_size=3, in_batch_negatives=False, cross_device_negatives=False))
    expected_own = -(torch.log_softmax(logits[0, :3], 0)[0] + torch.log_softmax(logits[1, 3:], 0)[0]) / 2
    torch.testing.assert_close(own.loss, expected_own)
    joint = joint_loss([q], d, torch.tensor(2.0), 3, cfg)
    torch.testing.assert_close(joint.loss, 0.8 * expected + 0.2 * 2.0)


def test_save_and_reload_as_plain_hf_folder(model, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model.lm = get_peft_model(model.lm, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                   init_lora_weights=False))
    model.eval()
    docs = ["a passage on genes", "another passage"]
    before_docs = model.embed_documents(docs)
    before_q = model.embed_queries(["what gene"], ["a thought"])
    model.save_pretrained(str(tmp_path / "o1"))
    # A plain transformers load: merged weights (no adapter files), tokenizer with the O1 tokens.
    assert not (tmp_path / "o1" / "adapter_config.json").exists()
    tok = AutoTokenizer.from_pretrained(tmp_path / "o1")
    assert all(t in tok.get_vocab() for t in o1seq.SPECIAL_TOKENS)
    lm = AutoModelForCausalLM.from_pretrained(tmp_path / "o1")
    assert lm.get_input_embeddings().num_embeddings == len(tok)
    reloaded = O1Model.from_pretrained(str(tmp_path / "o1"))
    reloaded.eval()
    torch.testing.assert_close(reloaded.embed_documents(docs), before_docs, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(reloaded.embed_queries(["what gene"], ["a thought"]), before_q, atol=1e-5, rtol=1e-5)


def test_generate_thoughts_shape(model):
    out = model.generate_thoughts(["what is a cell", "why"], n=3, max_new_tokens=5, seed=0)
    assert len(out) == 2 and all(len(ts) == 3 and all(isinstance(t, str) for t in ts) for ts in out)


def test_qwen2_backbone_works(tmp_path):
    m = O1Model.from_pretrained(make_random_lm(str(tmp_path / "qwen"), arch="qwen2", hidden=64, layers=1))
    m.eval()
    assert m.embed_documents(["x y z"]).shape == (1, 64)


def test_two_emb_pass_gives_query_only_and_thought_embeddings(tiny_dir):
    model = O1Model.from_pretrained(tiny_dir, seq=SequenceConfig(two_emb=True, thought_dropout=0.0))
    model.eval()
    rows = [{"query": f"q {i}", "thought": f"thought {i}", "positives": [f"p {i}"], "negatives": [f"n {i}"]}
            for i in range(3)]
    batch = train_data.collate(rows, model.tokenizer, model.seq, 2, random.Random(0))
    gen, q = model.query_pass(batch.query)
    assert len(q) == 2 and not torch.allclose(q[0], q[1])
    # The query-only embedding cannot see the thought (causal attention): same with another thought.
    other = o1seq.encode_queries(model.tokenizer, ["q 0"], ["something else entirely"], model.seq)
    _, q_other = model.query_pass(other)
    torch.testing.assert_close(q_other[0][0], q[0][0], atol=1e-5, rtol=1e-5)
    out = joint_loss(q, model.doc_pass(batch.docs), gen, 2, LossConfig(group_size=2))
    out.loss.backward()


def test_distillation_term_is_the_reference_kl_div_by_hand():
    from o1e.train.losses import distillation

    scores = torch.tensor([[5.0, 1.0, 0.0]])
    teacher = torch.tensor([[5.0, 1.0, 0.0]])
    p = torch.softmax(teacher, -1)
    # -Σ p·log softmax(student): KL(p ‖ student) plus the teacher's entropy.
    torch.testing.assert_close(distillation(scores, teacher, 1.0), -(p * torch.log_softmax(scores, -1)).sum())
    entropy = -(p * p.log()).sum()
    torch.testing.assert_close(distillation(scores, teacher, 1.0), entropy)  # agreeing: KL is 0
    assert distillation(scores, torch.tensor([[0.0, 1.0, 5.0]]), 1.0) > entropy + 1.0
    torch.manual_seed(0)
    q = torch.nn.functional.normalize(torch.randn(2, 8), dim=-1)
    d = torch.nn.functional.normalize(torch.randn(6, 8), dim=-1)
    cfg = LossConfig(group_size=3, distill_weight=0.5)
    teacher = torch.randn(2, 3)
    with_teacher = joint_loss([q], d, torch.tensor(1.0), 3, cfg, teacher=teacher)
    own = torch.einsum("qd,qgd->qg", q, d.view(2, 3, 8)) / 0.02
    by_hand = -(torch.softmax(teacher, -1) * torch.log_softmax(own, -1)).sum(-1).mean()
    torch.testing.assert_close(with_teacher.distill, by_hand)
    # As the reference code: λ·(contrastive + w·distill) + (1 − λ)·generation.
    torch.testing.assert_close(with_teacher.loss, 0.8 * (with_teacher.contrastive + 0.5 * by_hand) + 0.2 * 1.0)
    assert joint_loss([q], d, torch.tensor(1.0), 3, LossConfig(group_size=3, distill_weight=0.0),
                      teacher=teacher).distill is None


def test_cli_prints_and_rejects_train_configs(capsys):
    import os

    from o1e.pipeline.cli import main
    from o1e.train.config import CONFIG_DIR

    assert main(["train", "-c", os.path.join(CONFIG_DIR, "paper_qwen2.5-7b.yaml"), "--print-config", "-z", "3"]) == 0
    printed = capsys.readouterr().out
    assert "zero_stage: 3" in printed and "temperature: 0.02" in printed and "group_size: 16" in printed
    assert "distill_weight: 1.0" in printed  # the paper recipe trains with distillation where scores exist
    assert main(["train", "loss.group_size=0"]) == 2
    assert "loss.group_size" in capsys.readouterr().err
    assert main(["train", "-i", "/nonexistent/data", "-m", "/nonexistent/model"]) == 2
    assert "data:" in capsys.readouterr().err


@pytest.mark.parametrize("train_new_tokens", [False, True])
def test_lora_and_the_new_tokens(tiny_dir, train_new_tokens):
    """As the reference code, LoRA leaves the four new tokens' rows at their resizing initialisation;
    ``lora.train_new_tokens`` trains those rows (and no other row of the matrices)."""
    from o1e.train.config import TrainConfig
    from o1e.train.worker import build_model

    cfg = TrainConfig(lora={"r": 4, "alpha": 8, "train_new_tokens": train_new_tokens},
                      deepspeed={"gradient_checkpointing": False})
    torch.manual_seed(0)
    model = build_model(cfg, tiny_dir)
    new = [model.ids.query_open, model.ids.query_close, model.ids.thought, model.ids.emb]
    emb_before = model.lm.get_input_embeddings().weight.detach().clone()
    head_before = model.lm.get_output_embeddings().weight.detach().clone()
    batch = train_data.collate([{"query": "what is a cell", "thought": "cells are small", "positives": ["p"],
                                 "negatives": ["n"]}], model.tokenizer, SequenceConfig(thought_dropout=0.0), 2,
                               random.Random(0))
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1.0)
    gen, q, d = model(batch.query, batch.docs)
    joint_loss(q, d, gen, batch.group_size, LossConfig(group_size=2)).loss.backward()
    optimizer.step()
    lm = model.merged_lm()
    emb_rows = (lm.get_input_embeddings().weight != emb_before).any(dim=1).nonzero().flatten().tolist()
    head_rows = (lm.get_output_embeddings().weight != head_before).any(dim=1).nonzero().flatten().tolist()
    if train_new_tokens:
        # <emb> ends every sequence, so only its LM-head row and the others' input rows get a gradient here
        assert set(emb_rows) | set(head_rows) == set(new) and set(emb_rows) <= set(new) >= set(head_rows)
    else:
        assert emb_rows == head_rows == []


@pytest.mark.parametrize("total_steps,warmup_ratio", [(50, 0.1), (202, 0.1), (7, 0.3)])
def test_log_warmup_gives_deepspeeds_warmup_decay_learning_rates(total_steps, warmup_ratio):
    from deepspeed.runtime.lr_schedules import WarmupDecayLR

    from o1e.train.config import OptimConfig
    from o1e.train.step import lr_factor

    optim = OptimConfig(lr=1e-4, warmup_ratio=warmup_ratio, warmup="log")
    param = torch.nn.Parameter(torch.zeros(1))
    ds_optimizer = torch.optim.AdamW([param], lr=optim.lr)
    ds = WarmupDecayLR(ds_optimizer, total_num_steps=total_steps, warmup_min_lr=0, warmup_max_lr=optim.lr,
                       warmup_num_steps=int(total_steps * warmup_ratio), warmup_type="log")
    ours_optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=optim.lr)
    ours = torch.optim.lr_scheduler.LambdaLR(ours_optimizer, lr_factor(total_steps, optim))
    for step in range(total_steps):  # the order the engines step them: optimiser, then scheduler
        assert ours_optimizer.param_groups[0]["lr"] == pytest.approx(ds_optimizer.param_groups[0]["lr"], abs=1e-12), step
        ds_optimizer.step(), ds.step()
        ours_optimizer.step(), ours.step()
    linear = lr_factor(total_steps, OptimConfig(warmup_ratio=warmup_ratio))
    assert linear(0) > 0 and max(linear(s) for s in range(total_steps)) == 1.0
