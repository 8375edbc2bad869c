"""The training data order and the negatives each query is compared with (train/data.py, train/losses.py),
without Ray: a seeded order new each epoch, every row once an epoch whatever the worker count, the same
order on a resume, and a query's own positive never among its negatives."""

from __future__ import annotations

import random

import pytest
import torch
import torch.nn.functional as F

from o1e.sequences import SequenceConfig, add_special_tokens
from o1e.train import data as train_data
from o1e.train.config import LossConfig
from o1e.train.losses import info_nce, joint_loss, shared_positive_mask

GOLD = "The gold passage: cells divide by mitosis, and every query here is answered by it."


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from o1e.models import resolve_model_dir

    tok = AutoTokenizer.from_pretrained(resolve_model_dir("all-MiniLM-L6-v2"))
    tok.eos_token = tok.sep_token
    add_special_tokens(tok)
    return tok


def shared_gold_rows() -> list[dict]:
    """16 queries with one gold passage (same id, same text); one row also lists the gold text among its
    mined negatives under another id, another lists it under the gold id with other text."""
    rows = []
    for i in range(16):
        rows.append({"query_id": f"q{i}", "query": f"question {i} about cell division", "thought": f"thought {i}",
                     "positive_ids": ["gold"], "positives": [GOLD],
                     "negative_ids": [f"n{i}a", f"n{i}b", f"n{i}c"],
                     "negatives": [f"negative {i} a", f"negative {i} b", f"negative {i} c"],
                     "teacher_scores": None})
    rows[3]["negatives"][1], rows[3]["negative_ids"][1] = GOLD, "gold-copy"
    rows[5]["negatives"][0], rows[5]["negative_ids"][0] = "gold passage, other wording", "gold"
    return rows


@pytest.mark.parametrize("num_rows,world,batch", [(16, 2, 3), (16, 2, 4), (7, 3, 4), (13, 4, 3), (5, 5, 8)])
def test_every_row_once_an_epoch_whatever_the_worker_count(num_rows, world, batch):
    steps = train_data.epoch_steps(num_rows, 0, 0, world, batch)
    assert len(steps) == train_data.steps_per_epoch(num_rows, world, batch)
    seen = [p for step in steps for rank in step for p in rank]
    assert all(len(rank) >= 1 for step in steps for rank in step)  # no worker ever idles
    assert all(max(map(len, step)) - min(map(len, step)) <= 1 for step in steps)
    assert set(seen) == set(range(num_rows))
    borrowed = len(seen) - num_rows  # only when the last step has fewer rows than workers
    assert borrowed == max(0, world - (num_rows % (world * batch) or world * batch))


def test_order_is_seeded_new_each_epoch_and_the_same_on_resume():
    first, second = train_data.epoch_order(16, 42, 0), train_data.epoch_order(16, 42, 1)
    assert first != second and sorted(first) == sorted(second) == list(range(16))
    assert first == train_data.epoch_order(16, 42, 0) and first != train_data.epoch_order(16, 7, 0)
    assert first != list(range(16))

    uninterrupted = list(train_data.training_steps(16, 42, 2, 3, epochs=3))
    assert len(uninterrupted) == 9
    for stop in range(len(uninterrupted) + 1):
        # A checkpoint after `stop` steps stores (epoch, index + 1) of its last step, as train/worker.py does.
        epoch, index = (0, 0) if stop == 0 else (uninterrupted[stop - 1][0], uninterrupted[stop - 1][1] + 1)
        resumed = uninterrupted[:stop] + list(train_data.training_steps(16, 42, 2, 3, 3, epoch, index))
        assert resumed == uninterrupted, stop
    print("\nepoch 0 order:", first, "\nepoch 1 order:", second)


def test_sixteen_queries_sharing_a_gold_passage_never_see_it_as_a_negative(tokenizer):
    """Two workers, batch 3 (steps of 6 rows), two epochs. Every step is collated per worker as
    train/worker.py does; both workers' queries are scored against both workers' passages in one call, which
    is what the cross-device gather computes (tests/test_train_losses.py checks that equality)."""
    rows = shared_gold_rows()
    cfg = LossConfig(group_size=4)
    seq = SequenceConfig(thought_dropout=0.1)
    decode = lambda text: tokenizer.decode(tokenizer(text, add_special_tokens=False)["input_ids"])  # noqa: E731
    gold_texts = {decode(GOLD), decode("gold passage, other wording")}  # same text, or same id
    torch.manual_seed(0)
    copies_seen = {"without mask": 0, "with mask": 0}
    orders = []
    for epoch, index, positions in train_data.training_steps(16, 42, 2, 3, epochs=2):
        batches = [train_data.collate([rows[p] for p in positions[rank]], tokenizer, seq, 4,
                                      random.Random(hash((42, epoch, index, rank)))) for rank in range(2)]
        orders.append([rows[p]["query_id"] for rank in positions for p in rank])
        n = sum(b.num_queries for b in batches)
        texts = [t for b in batches for t in tokenizer.batch_decode(b.docs["input_ids"], skip_special_tokens=True)]
        query, docs = F.normalize(torch.randn(n, 16), dim=-1), F.normalize(torch.randn(n * 4, 16), dim=-1)
        doc_keys = torch.cat([b.doc_keys for b in batches])
        positive_keys = torch.cat([b.positive_keys for b in batches])
        target = torch.arange(n) * 4
        mask = shared_positive_mask(doc_keys, positive_keys, target)
        gold = torch.tensor([t in gold_texts for t in texts])
        for i in range(n):
            copies = gold.clone()
            copies[target[i]] = False  # the query's own target is its positive, not a negative
            copies_seen["without mask"] += int(copies.sum())
            copies_seen["with mask"] += int((copies & ~mask[i]).sum())
            assert torch.equal(mask[i], copies)  # exactly the gold copies are left out, nothing else
        out = info_nce(query, docs, 4, cfg, doc_keys, positive_keys)
        logits = (query @ docs.T / cfg.temperature).masked_fill(mask, float("-inf"))
        torch.testing.assert_close(out.loss, F.cross_entropy(logits, target))
    print(f"\ngold copies among the negatives of 16 queries over 2 epochs (6 steps): "
          f"{copies_seen['without mask']} without the mask, {copies_seen['with mask']} with it")
    assert copies_seen["without mask"] > 100 and copies_seen["with mask"] == 0
    assert orders[:3] != orders[3:]  # epoch 2 batches other queries together
    assert sorted(sum(orders[:3], [])) == sorted(sum(orders[3:], [])) == sorted(r["query_id"] for r in rows)
    print("step batches, epoch 0:", orders[:3], "\nstep batches, epoch 1:", orders[3:])


def test_masked_info_nce_equals_hand_computed_loss(tokenizer):
    rows = [shared_gold_rows()[i] for i in (0, 1, 2, 4)]  # no gold copy among their negatives
    batch = train_data.collate(rows, tokenizer, SequenceConfig(thought_dropout=0.0), 4, random.Random(0))
    torch.manual_seed(1)
    q = F.normalize(torch.randn(4, 8), dim=-1)
    d = F.normalize(torch.randn(16, 8), dim=-1)
    out = info_nce(q, d, 4, LossConfig(group_size=4), batch.doc_keys, batch.positive_keys)
    # Column 4j is query j's positive, the same gold passage: for query i only column 4i may stay.
    logits = q @ d.T / 0.02
    others_gold = torch.tensor([[j % 4 == 0 and j != 4 * i for j in range(16)] for i in range(4)])
    expected = F.cross_entropy(logits.masked_fill(others_gold, float("-inf")), torch.arange(4) * 4)
    torch.testing.assert_close(out.loss, expected)
    unmasked = info_nce(q, d, 4, LossConfig(group_size=4, mask_shared_positives=False), batch.doc_keys,
                        batch.positive_keys)
    torch.testing.assert_close(unmasked.loss, F.cross_entropy(logits, torch.arange(4) * 4))
    joint = joint_loss([q], d, torch.tensor(0.0), 4, LossConfig(group_size=4), None, batch.doc_keys,
                       batch.positive_keys)
    torch.testing.assert_close(joint.loss, 0.8 * expected)


def test_rows_without_passage_ids_mask_only_copies_of_the_positive(tokenizer):
    """MS MARCO-style rows carry texts but no ids: passages without ids are told apart by their text, so
    only a copy of the positive's text is masked (a bug once masked every id-less negative)."""
    rows = [{"query_id": f"q{i}", "query": f"question {i}", "thought": "", "positives": [f"answer {i}"],
             "negatives": [f"wrong {i} a", f"wrong {i} b", "answer 0"]} for i in range(2)]
    batch = train_data.collate(rows, tokenizer, SequenceConfig(thought_dropout=0.0), 4, random.Random(0))
    texts = tokenizer.batch_decode(batch.docs["input_ids"], skip_special_tokens=True)
    target = torch.arange(2) * 4
    mask = shared_positive_mask(batch.doc_keys, batch.positive_keys, target)
    expected = torch.tensor([[t == "answer 0" and j != 0 for j, t in enumerate(texts)],
                             [False] * len(texts)])
    assert torch.equal(mask, expected) and mask[0].sum() == texts.count("answer 0") - 1 >= 1
