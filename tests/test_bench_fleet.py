"""Benchmark: `energy fleet` homes per second, one worker against two (tools/bench_fleet.py).

    pytest tests/test_bench_fleet.py --benchmark-enable

With the default ``--benchmark-disable`` it runs once as a test and checks that one and two
workers give identical numbers and that the driver's heap does not grow with the number of
homes beyond their rows; never a speed (the figures: `python -m tools.bench_fleet`,
docs/fleet.md).
"""

from tools import bench_fleet


def test_bench_fleet_two_workers_against_one(benchmark):
    engines = [("1 worker", {"workers": 1}), ("2 workers", {"workers": 2})]
    res, same = benchmark.pedantic(bench_fleet.throughput, args=(4, 7, engines), rounds=1, iterations=1)
    assert same
    assert set(res) == {"1 worker", "2 workers"} and all(v["homes_per_s"] > 0 for v in res.values())


def test_the_driver_heap_does_not_grow_with_the_fleet():
    mem = bench_fleet.driver_memory([4, 32], 3)
    # 8x the homes: the per-slot sums are the same size; only the small per-home rows grow
    # (a few kB each), far from 8x the heap of the smaller fleet
    assert mem[32] < 2.5 * mem[4] + 32 * 8_000, mem
