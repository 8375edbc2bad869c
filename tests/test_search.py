"""The search pieces every retrieving stage shares (``o1e.retrievers``): no Ray, no model."""

from operator import itemgetter

import numpy as np

from o1e.retrievers import (drop_hits, encode_in_batches, flat_ip_index, flat_ip_search, merge_shards, rank_hits,
                            search_depth)


def test_flat_ip_search_asks_for_at_most_the_index_size():
    docs = np.eye(3, dtype=np.float32)
    scores, rows = flat_ip_search(flat_ip_index(docs), np.array([[0.1, 0.9, 0.5]], np.float32), 10)
    assert rows.tolist() == [[1, 2, 0]]  # three rows, no -1 padding
    assert np.allclose(scores, [[0.9, 0.5, 0.1]])


def test_encode_in_batches_keeps_the_callers_batches_and_reports_each():
    seen, progress = [], []
    vectors = encode_in_batches(lambda texts: seen.append(texts) or np.full((len(texts), 2), len(texts), np.float32),
                                ["a", "b", "c", "d", "e"], [2, 2, 1], progress.append)
    assert seen == [["a", "b"], ["c", "d"], ["e"]] and progress == [2, 2, 1]
    assert vectors[:, 0].tolist() == [2, 2, 2, 2, 1]
    assert encode_in_batches(lambda texts: 1 / 0, [], []).shape == (0, 1)


def test_drop_hits_removes_excluded_ids_and_keeps_order():
    ids = ["q", "p1", "a", "p2", "b", "c"]
    ranked = [0, 1, 2, 3, 4, 5]
    assert drop_hits(ranked, {"q", "p1", "p2"}, 2, ids.__getitem__) == [2, 4]
    assert drop_hits(ranked, (), 3, ids.__getitem__) == [0, 1, 2]


def test_rank_hits_drops_the_self_hit_then_orders_as_trec_eval():
    hits = [("a", 1.0), ("q1", 3.0), ("c", 1.0), ("b", 2.0)]
    assert search_depth(2, True) == 3 and search_depth(2, False) == 2
    assert rank_hits("q1", hits, 2, drop_self_hits=True) == [("b", 2.0), ("c", 1.0)]
    assert rank_hits("q1", hits, 2, drop_self_hits=False) == [("q1", 3.0), ("b", 2.0)]


def test_merge_shards_skips_padding_and_maps_numbers_to_ids():
    shard_a = (np.array([[0.9, 0.1]], np.float32), np.array([[4, 0]]))
    shard_b = (np.array([[0.5, -1.0]], np.float32), np.array([[7, -1]]))
    ranking = merge_shards([shard_a, shard_b], {0: "d0", 4: "q", 7: "d7"}, ["q"], k=5)
    assert ranking == {"q": [("d7", 0.5), ("d0", 0.10000000149011612)]}
    assert list(map(itemgetter(0), merge_shards([shard_a, shard_b], {0: "d0", 4: "q", 7: "d7"}, ["q"], k=1,
                                                drop_self_hits=False)["q"])) == ["q"]
