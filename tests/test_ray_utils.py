"""Sizing CPU shares and keeping calls in flight, on a real local Ray cluster (``o1e.ray_utils``)."""

from __future__ import annotations

import time

from o1e.ray_utils import free_cpus


def test_free_cpus_counts_what_a_finished_task_is_about_to_return(ray_cluster):
    """Ray returns a finished task's CPUs a moment after its result: a share sized right then must still see
    them (the eval stage sized its encoders just after its planning task, and computed on one core of two)."""
    ray = ray_cluster
    total = ray.cluster_resources()["CPU"]
    task = ray.remote(lambda: 1).options(num_cpus=total)
    for _ in range(3):
        ray.get(task.remote())
        assert free_cpus(ray) == total


def test_as_finished_keeps_each_lane_bounded_and_resubmits_what_the_caller_retries(ray_cluster):
    from collections import deque

    from o1e.ray_utils import as_finished

    ray = ray_cluster
    double = ray.remote(lambda x: 2 * x).options(num_cpus=0)
    outstanding, most, lanes_used = [0, 0], [0, 0], []

    def submit(item, lane):
        outstanding[lane] += 1
        most[lane] = max(most[lane], outstanding[lane])
        lanes_used.append(lane)
        return double.remote(item)

    retry: deque = deque()
    got = []
    for item, lane, ref in as_finished(ray, range(10), submit, lanes=2, per_lane=2, retry=retry):
        outstanding[lane] -= 1
        got.append((item, ray.get(ref)))
        if item == 3 and got.count((3, 6)) == 1:
            retry.append(item)  # as a caller does with a call whose actor died
    assert sorted(got) == sorted([(i, 2 * i) for i in range(10)] + [(3, 6)])
    assert most == [2, 2] and lanes_used[:4] == [0, 1, 0, 1]  # the least busy lane first
    assert list(as_finished(ray, [], submit)) == []


def test_in_flight_bounds_each_pool_apart_and_polls_while_it_waits(ray_cluster):
    from o1e.ray_utils import InFlight

    ray = ray_cluster
    nap = ray.remote(lambda s: time.sleep(s) or s).options(num_cpus=0)
    polls = []
    calls = InFlight(ray, [1, 2], per_lane=1, poll=lambda: polls.append(1), poll_s=0.2)
    calls.submit(lambda lane: nap.remote(0.0), "x", pool=0)
    assert not calls.room(0) and calls.room(1)
    calls.submit(lambda lane: nap.remote(0.0), "a", pool=1)
    calls.submit(lambda lane: nap.remote(0.0), "b", pool=1)
    assert not calls.room(1) and len(calls) == 3
    assert sorted(calls.next_done()[:2] for _ in range(3)) == [("a", 0), ("b", 1), ("x", 0)]
    assert not calls and calls.room(0) and calls.room(1)
    polls.clear()
    calls.submit(lambda lane: nap.remote(1.5), "slow")
    assert calls.next_done()[0] == "slow" and len(polls) >= 3  # redrawn every 0.2 s while it waited


def test_read_ahead_makes_each_request_depth_items_early_and_keeps_their_order():
    from o1e.ray_utils import read_ahead

    made = []

    def requests():
        for i in range(6):
            made.append(i)
            yield i

    got = []
    for item in read_ahead(requests(), 2):
        assert made[-1] == min(item + 2, 5)  # two more already made (submitted) when one is yielded
        got.append(item)
    assert got == list(range(6)) and list(read_ahead(iter([]), 3)) == []
