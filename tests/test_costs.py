"""Actor-seconds: each holding's CPUs and GPUs times the part of its time inside a run's window."""

from o1e import costs


def test_actor_seconds_count_what_was_held_inside_the_window():
    # Times before any real holding of this process (perf_counter never goes below zero here).
    pool, replica = costs.hold(2, 0.5), costs.hold(1, 1.0, 1.0)
    pool.since, pool.until = -100.0, -90.0
    replica.since = -95.0  # still held
    assert costs.actor_seconds(-100.0, -80.0) == {"CPU": 2 * 0.5 * 10 + 15.0, "GPU": 15.0}
    assert costs.actor_seconds(-92.0, -91.0) == {"CPU": 2 * 0.5 + 1.0, "GPU": 1.0}
    assert costs.actor_seconds(-200.0, -100.0) == {"CPU": 0.0, "GPU": 0.0}  # nothing held yet
    replica.until = -85.0
    costs.release(replica)  # released already: a second release keeps the first end
    assert replica.until == -85.0
    assert costs.actor_seconds(-100.0, -80.0) == {"CPU": 10.0 + 10.0, "GPU": 10.0}
