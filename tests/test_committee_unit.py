"""The committee's pure parts: votes against hand-computed expectations, planning, rejects, members."""

from __future__ import annotations

import math
import os

import numpy as np
import pyarrow as pa
import pytest

from o1e.committee.buckets import in_order, read_bucket, write_buckets
from o1e.committee.config import BM25Member, CommitteeConfig
from o1e.committee.members import BM25Scorer, ScoringBatch
from o1e.committee.plan import assemble_shard, index_candidates, index_training, plan_committee
from o1e.committee.vote import softmax, vote
from o1e.config import ConfigError, load_config

E = math.e


# --------------------------------------------------------------------------------------------------
# soft vote


def test_soft_weighted_sum_of_softmaxes():
    # softmax([0, ln 3]) = [1/4, 3/4]; softmax([ln 3, 0]) = [3/4, 1/4]; weights 1 and 2.
    result = vote([[0.0, math.log(3)], [math.log(3), 0.0]], [1.0, 2.0], "soft")
    assert result.aggregate == pytest.approx([0.25 + 1.5, 0.75 + 0.5])
    assert result.selected == 0
    assert result.margin == pytest.approx(0.5)
    assert result.member_top1.tolist() == [1, 0]
    assert result.agreed is False


def test_soft_confident_member_beats_a_lukewarm_majority():
    scores = [[10.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 1.0, 0.0]]
    result = vote(scores, [1.0, 1.0, 1.0], "soft")
    a = 1 / (1 + 2 * E**-10)
    b = E**-10 / (1 + 2 * E**-10)
    expected = [a + 2 * (1 / (2 + E)), b + 2 * (E / (2 + E)), b + 2 * (1 / (2 + E))]
    assert result.aggregate == pytest.approx(expected)
    assert result.selected == 0
    assert result.margin == pytest.approx(expected[0] - expected[1])
    assert vote(scores, [1.0, 1.0, 1.0], "hard").selected == 1  # the majority, by contrast


def test_soft_tie_goes_to_lowest_index():
    result = vote([[0.0, 1.0], [1.0, 0.0]], [1.0, 1.0], "soft")
    assert result.aggregate[0] == result.aggregate[1]
    assert result.selected == 0
    assert result.margin == 0.0
    tie = vote([[5.0, 5.0, 1.0]], [1.0], "soft")
    assert tie.selected == 0 and tie.member_top1.tolist() == [0]


def test_soft_is_invariant_to_a_members_scale_offset():
    scores = np.array([[12.0, 30.0, 7.0], [0.3, 0.1, 0.2]])
    shifted = scores + np.array([[1000.0], [-50.0]])
    assert vote(shifted, [1, 1], "soft").aggregate == pytest.approx(vote(scores, [1, 1], "soft").aggregate)
    assert softmax(np.array([1000.0, 1000.0])) == pytest.approx([0.5, 0.5])  # no overflow


def test_zero_weight_member_does_not_vote():
    result = vote([[0.0, 9.0], [9.0, 0.0]], [0.0, 1.0], "soft")
    assert result.selected == 0
    assert result.agreed is False  # agreement still counts every member


# --------------------------------------------------------------------------------------------------
# hard vote


def test_hard_majority():
    result = vote([[0, 5, 1], [0, 7, 2], [9, 0, 1]], [1, 1, 1], "hard")
    assert result.aggregate.tolist() == [1.0, 2.0, 0.0]
    assert result.selected == 1
    assert result.margin == 1.0
    assert result.agreed is False


def test_hard_tie_goes_to_lowest_index_and_weights_break_it():
    scores = [[0, 5, 1], [9, 0, 1]]
    tied = vote(scores, [1, 1], "hard")
    assert tied.aggregate.tolist() == [1.0, 1.0, 0.0]
    assert tied.selected == 0 and tied.margin == 0.0
    assert vote(scores, [2, 1], "hard").selected == 1
    # a member's own tie: its vote goes to the lower index
    assert vote([[3, 3, 1]], [1], "hard").member_top1.tolist() == [0]


def test_unanimous_hard_vote_agrees():
    result = vote([[1, 0, 4], [0, 0, 2]], [1, 1], "hard")
    assert result.selected == 2 and result.agreed is True and result.margin == 2.0


# --------------------------------------------------------------------------------------------------
# median vote


def test_median_of_odd_count():
    scores = [4.0, 0.0, 2.0, 3.0, 1.0]
    result = vote([scores], [1.0], "median")
    assert result.selected == 2  # ascending: 0 (idx 1), 1 (idx 4), 2 (idx 2), 3, 4
    probs = np.exp(scores) / np.exp(scores).sum()
    assert result.margin == pytest.approx(min(probs[3] - probs[2], probs[2] - probs[4]))
    assert result.member_top1.tolist() == [0] and result.agreed is False


def test_median_of_even_count_takes_upper_middle():
    assert vote([[4.0, 1.0, 3.0, 2.0]], [1.0], "median").selected == 2  # sorted: idx 1, 3, 2, 0 -> position 2


def test_median_tie_goes_to_lowest_index():
    assert vote([[1.0, 2.0, 2.0]], [1.0], "median").selected == 1
    assert vote([[2.0, 1.0, 2.0]], [1.0], "median").selected == 0
    result = vote([[2.0, 2.0, 2.0]], [1.0], "median")
    assert result.selected == 0 and result.margin == 0.0


def test_median_uses_the_weighted_soft_aggregate():
    scores = [[0.0, 1.0, 2.0], [2.0, 1.0, 0.0]]
    # the weights tilt the aggregate towards member 1's order: 2 > ... candidate 1 stays the middle one
    result = vote(scores, [1.0, 3.0], "median")
    expected = softmax(np.array(scores[0])) + 3 * softmax(np.array(scores[1]))
    assert result.aggregate == pytest.approx(expected)
    assert result.selected == int(np.argsort(expected, kind="stable")[1])


# --------------------------------------------------------------------------------------------------
# any N >= 1


@pytest.mark.parametrize("mode", ["soft", "hard", "median"])
def test_single_candidate(mode):
    result = vote([[3.5], [-2.0]], [1.0, 1.0], mode)
    assert result.selected == 0
    assert math.isnan(result.margin)
    assert result.agreed is True
    assert result.member_top1.tolist() == [0, 0]


@pytest.mark.parametrize("mode", ["soft", "hard", "median"])
def test_many_candidates(mode):
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(4, 9))
    result = vote(scores, [1, 1, 1, 1], mode)
    assert 0 <= result.selected < 9 and result.aggregate.shape == (9,)


def test_bad_scores_are_refused():
    with pytest.raises(ValueError, match="finite"):
        vote([[1.0, float("nan")]], [1.0])
    with pytest.raises(ValueError, match="weights"):
        vote([[1.0, 2.0]], [1.0, 1.0])
    with pytest.raises(ValueError, match="unknown vote mode"):
        vote([[1.0, 2.0]], [1.0], "mean")
    with pytest.raises(ValueError, match="at least one candidate"):
        vote(np.zeros((2, 0)), [1.0, 1.0])


# --------------------------------------------------------------------------------------------------
# members


def test_bm25_member_ranks_the_overlapping_candidate_first():
    member = BM25Scorer(BM25Member())
    batch = ScoringBatch("b", golds=["Aspirin lowers the risk of heart attacks in adults"],
                         gold_of_group=[0, 0],
                         thoughts=[["the stock market fell", "aspirin lowers heart attack risk", "cats sleep a lot"],
                                   ["ASPIRIN lowers risk"]])
    scores = member.score(batch)
    assert scores[0].shape == (3,) and int(np.argmax(scores[0])) == 1
    assert scores[1].shape == (1,)


# --------------------------------------------------------------------------------------------------
# planning and rejects


def _training(rows):
    return pa.table({
        "query_id": [r[0] for r in rows], "query": [f"q {r[0]}" for r in rows],
        "positive_ids": [[f"d{i}" for i, _ in enumerate(r[1])] for r in rows],
        "positives": [r[1] for r in rows], "negative_ids": [[] for _ in rows], "negatives": [[] for _ in rows],
    })


def _candidates(rows):
    return pa.table({"query_id": [r[0] for r in rows], "candidate_index": [r[1] for r in rows],
                     "thought": [r[2] for r in rows]})


def _plan(training, candidates, shard_size, training_url="training_rows", candidates_url="candidates"):
    index = index_training(training.column("query_id"), training.column("positives").chunks)
    candidate_index = index_candidates(candidates.to_batches(max_chunksize=3), index, candidates.num_rows,
                                       candidates_url)
    return plan_committee(index, candidate_index, shard_size, training_url, candidates_url)


def _shards(training, candidates, plan, batch_size, folder):
    """The plan's shards as the driver loads them: both inputs through the buckets, in two-row batches."""
    rows = np.arange(training.num_rows)
    write_buckets(training.to_batches(max_chunksize=2), plan.row_shard, rows, str(folder / "t"))
    bucket = np.where(plan.candidate_row >= 0, plan.row_shard[plan.candidate_row], -1)
    write_buckets(candidates.to_batches(max_chunksize=2), bucket, plan.candidate_row, str(folder / "c"))
    return [assemble_shard(s, in_order(read_bucket(str(folder / "t"), i), s.rows), read_bucket(str(folder / "c"), i),
                           batch_size) for i, s in enumerate(plan.shards)]


def test_plan_rejects_what_cannot_be_voted(tmp_path):
    training = _training([("q1", ["gold one"]), ("q2", []), ("q3", ["gold three"]), ("q4", ["gold four"]),
                          ("q1", ["again"]), ("q5", ["gold five"])])
    candidates = _candidates([("q1", 1, "b"), ("q1", 0, "a"), ("q1", 2, "  "), ("q2", 0, "x"),
                              ("q4", 0, ""), ("q4", 1, "   "), ("qX", 0, "orphan"), ("q5", 0, "t"),
                              ("q5", 0, "dup"), ("q5", 1, None)])
    plan = _plan(training, candidates, 10, "tr", "cand")
    assert [r.reason for r in plan.rejects] == [  # repeats, then candidates, then queries, each in row order
        "duplicate_query", "unknown_query", "duplicate_candidate", "missing_positive", "no_candidates", "empty_candidates"]
    reasons = {(r.row, r.reason) for r in plan.rejects}
    assert reasons == {("q1", "duplicate_query"), ("qX#0", "unknown_query"), ("q5#0", "duplicate_candidate"),
                       ("q2", "missing_positive"), ("q3", "no_candidates"), ("q4", "empty_candidates")}
    assert all(r.detail for r in plan.rejects)
    assert {r.source for r in plan.rejects if r.reason == "missing_positive"} == {"tr"}
    assert plan.row_shard.tolist() == [0, -1, -1, -1, -1, 0]
    assert plan.candidate_row.tolist() == [0, 0, -1, -1, -1, -1, -1, 5, -1, -1]  # scored: non-empty firsts only
    (shard,) = _shards(training, candidates, plan, 8, tmp_path)
    assert [(g.query_id, g.candidate_indices, g.thoughts, g.gold) for g in shard.groups] == [
        ("q1", [0, 1], ["a", "b"], "gold one"),  # sorted by candidate_index, the empty one left out
        ("q5", [0], ["t"], "gold five"),
    ]
    assert shard.rows.column("query_id").to_pylist() == ["q1", "q5"] and shard.rows.column("row").to_pylist() == [0, 5]
    assert plan.shards[0].num_candidates == shard.num_candidates == 3


def test_plan_keeps_queries_sharing_a_gold_document_together(tmp_path):
    golds = ["A", "B", "A", "C", "B", "A", "D"]
    training = _training([(f"q{i}", [g]) for i, g in enumerate(golds)])
    # candidates in another order than the training rows
    candidates = _candidates([(f"q{i}", c, f"t{i}{c}") for i in reversed(range(len(golds))) for c in range(3)])
    plan = _plan(training, candidates, shard_size=4)
    assert not plan.rejects
    # units by first appearance: A (q0 q2 q5), B (q1 q4), C (q3), D (q6)
    assert [s.rows.tolist() for s in plan.shards] == [[0, 2, 5], [1, 4, 3, 6]]
    shards = _shards(training, candidates, plan, 2, tmp_path)
    assert [[g.query_id for g in s.groups] for s in shards] == [["q0", "q2", "q5"], ["q1", "q4", "q3", "q6"]]
    assert [s.shard_id for s in shards] == ["00000", "00001"]
    for shard in shards:
        assert [shard.rows.column("query_id")[g.row].as_py() for g in shard.groups] == [g.query_id for g in shard.groups]
        for batch in shard.batches:
            assert len(batch.golds) == len(set(batch.golds))  # each gold encoded once per batch
        all_golds = [g for b in shard.batches for g in b.golds]
        assert len(all_golds) == len(set(all_golds))  # ... and once per shard
    assert [b.golds for b in shards[1].batches] == [["B"], ["C", "D"]]
    assert shards[1].batches[0].gold_of_group == [0, 0]
    assert shards[1].groups[2].thoughts == ["t30", "t31", "t32"]
    # the plan depends only on inputs and sizes
    again = _plan(training, candidates, shard_size=4)
    assert [s.rows.tolist() for s in again.shards] == [s.rows.tolist() for s in plan.shards]
    # only the buckets of shards still to do are filled (a resumed run)
    plan.row_shard[plan.row_shard == 0] = -1
    plan.candidate_row[np.isin(plan.candidate_row, plan.shards[0].rows)] = -1
    write_buckets(training.to_batches(), plan.row_shard, np.arange(7), str(tmp_path / "resumed"))
    assert sorted(os.listdir(tmp_path / "resumed")) == ["1"]


# --------------------------------------------------------------------------------------------------
# config


def test_config_defaults_are_the_papers_recipe_with_offline_members():
    cfg = CommitteeConfig()
    assert cfg.vote == "soft"
    assert [m.kind for m in cfg.members] == ["bm25", "dense"]
    assert all(m.weight == 1.0 for m in cfg.members)
    bm25 = cfg.members[0]
    assert (bm25.backend, bm25.tokenizer.split, bm25.tokenizer.lowercase, bm25.tokenizer.stemmer,
            bm25.tokenizer.stopwords) == ("rank_bm25", "space", True, "none", "none")
    assert cfg.members[1].max_length is None and cfg.members[1].normalize is True  # the model's own limit


def _placed(members, cpus, gpus, **sizes):
    cfg = CommitteeConfig(members=members, **sizes)
    return [(p.replicas, p.num_cpus, p.num_gpus) for p in cfg.placements(cpus, gpus)]


def test_placement_defaults_fill_the_cluster():
    both = [{"kind": "bm25"}, {"kind": "dense"}]
    # CPUs: the dense member (the costly one) gets one 1-CPU actor per core, BM25 one actor beside it
    assert _placed(both, 2, 0) == [(1, 0.0, 0.0), (2, 1.0, 0.0)]
    assert _placed([{"kind": "bm25"}], 8, 0) == [(8, 1.0, 0.0)]  # BM25 alone: every core
    two_dense = [{"kind": "bm25"}, {"kind": "dense", "name": "a"}, {"kind": "dense", "name": "b"}]
    assert _placed(two_dense, 8, 0) == [(1, 0.0, 0.0), (4, 1.0, 0.0), (4, 1.0, 0.0)]
    # GPUs: one dense actor per GPU (split between dense members), the CPUs left to BM25
    assert _placed(two_dense, 64, 8) == [(56, 1.0, 0.0), (4, 1.0, 1.0), (4, 1.0, 1.0)]
    # ... but never more actors than batches in flight (shards_in_flight x batches per shard): bigger ones
    assert _placed(two_dense, 64, 8, shard_size=64, batch_size=32) == [(4, 14.0, 0.0), (4, 1.0, 1.0), (4, 1.0, 1.0)]
    # set values are kept; num_cpus alone sets the actors' size, the share their number
    assert _placed([{"kind": "bm25"}, {"kind": "dense", "placement": {"num_cpus": 2}}], 8, 0) == [
        (1, 0.0, 0.0), (4, 2.0, 0.0)]
    # CPUs another member reserves are not shared out again
    assert _placed([{"kind": "bm25", "placement": {"replicas": 3, "num_cpus": 0.5}}, {"kind": "dense",
                    "placement": {"num_gpus": 0}}], 4, 2) == [(3, 0.5, 0.0), (2, 1.0, 0.0)]
    # placement is not part of the fingerprint: a rerun on another cluster resumes the same shards
    assert (CommitteeConfig(members=both).fingerprint()
            == CommitteeConfig(members=[{"kind": "bm25", "placement": {"replicas": 7}}, {"kind": "dense"}]).fingerprint())


def test_config_errors_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match="unique"):
        load_config(CommitteeConfig, None, ["members=[{kind: bm25}, {kind: bm25}]"])
    with pytest.raises(ConfigError, match="normalize"):
        load_config(CommitteeConfig, None, ["members=[{kind: dense, normalize: false}]"])
    with pytest.raises(ConfigError, match="vote"):
        load_config(CommitteeConfig, None, ["vote=mean"])
    with pytest.raises(ConfigError, match="members.0.bm25.weight"):
        load_config(CommitteeConfig, None, ["members=[{kind: bm25, weight: -1}]"])


def test_example_configs_load():
    import glob
    import os

    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    paths = sorted(glob.glob(os.path.join(here, "committee", "configs", "*.yaml")))
    assert len(paths) >= 2
    for path in paths:
        cfg = load_config(CommitteeConfig, path)
        assert cfg.members
    paper = load_config(CommitteeConfig, os.path.join(here, "committee", "configs", "paper.yaml"))
    # As the reference vote code: no prompt for any member, on either side (stella's is an option).
    assert [(m.name, m.query_prefix, m.document_prefix) for m in paper.members if m.kind == "dense"] == [
        ("bge-large-en-v1.5", "", ""), ("stella_en_1.5B_v5", "", ""), ("gte-large-en-v1.5", "", "")]
    assert [m.tokenizer.split for m in paper.members if m.kind == "bm25"] == ["space"]


# --------------------------------------------------------------------------------------------------
# diagnostics


def test_diagnostics_from_committee_scores():
    from o1e.committee.report import diagnostics
    from o1e import schemas

    rows = [
        {"query_id": "a", "members": ["x", "y", "z"], "candidate_indices": [0, 1, 2],
         "scores": [[3, 1, 0], [3, 0, 1], [0, 5, 1]], "selected_index": 0, "vote": "soft", "margin": 0.5,
         "agreed": False},
        {"query_id": "b", "members": ["x", "y", "z"], "candidate_indices": [1, 4],  # candidates 0, 2, 3 empty
         "scores": [[0, 2], [0, 1], [0, 9]], "selected_index": 4, "vote": "soft", "margin": 1.5, "agreed": True},
        {"query_id": "c", "members": ["x", "y", "z"], "candidate_indices": [2],
         "scores": [[1], [1], [1]], "selected_index": 2, "vote": "soft", "margin": float("nan"), "agreed": True},
    ]
    table = pa.Table.from_pylist(rows, schema=schemas.COMMITTEE_SCORES.arrow)
    rejects = pa.Table.from_pylist(
        [{"stage": "committee", "source": "s", "row": "q", "reason": r, "detail": "d"}
         for r in ("no_candidates", "missing_positive", "no_candidates")], schema=schemas.REJECTS.arrow)
    diag = diagnostics(table, rejects)
    assert diag["queries_voted"] == 3 and diag["rejects"] == 3
    assert diag["rejects_by_reason"] == {"missing_positive": 1, "no_candidates": 2}
    assert diag["member_matches_vote"] == pytest.approx({"x": 1.0, "y": 1.0, "z": 2 / 3})
    assert diag["pairwise_agreement"] == pytest.approx({"x ~ y": 1.0, "x ~ z": 2 / 3, "y ~ z": 2 / 3})
    assert diag["unanimous"] == pytest.approx(2 / 3)
    assert diag["mean_margin"] == pytest.approx(1.0)  # the single-candidate NaN is left out

    empty = diagnostics(schemas.COMMITTEE_SCORES.empty(), schemas.REJECTS.empty())
    assert empty["queries_voted"] == 0 and empty["members"] == [] and math.isnan(empty["mean_margin"])
