"""Benchmark: the 45-case islanding matrix through the campaign runner on two worker processes.

    pytest tests/test_bench_campaign.py --benchmark-enable

With the default ``--benchmark-disable`` it runs once as a test and checks that two workers
give exactly the rows the serial run gives (every case, in order); never its speed (the
serial / two-worker / Ray wall times and the speed-up: `python -m tools.bench_campaign`,
docs/benchmarks.md "HIL campaign scaling").
"""

from tools import bench_campaign
from tools.engine import Engine


def test_bench_matrix_on_two_workers(benchmark):
    items = bench_campaign.cases()
    assert len(items) == 45
    serial, _ = bench_campaign.run(Engine(workers=1), items)
    rows = benchmark(lambda: bench_campaign.run(Engine(workers=2), items)[0])
    assert rows == serial
    assert [(r["level_pct"], r["real_mismatch_pct"], r["reactive_mismatch_pct"]) for r in rows] == \
        [tuple(label.values()) for label, _ in items]
    assert all(r["detection_s"] is not None for r in rows)


def test_the_benchmark_tool_on_a_few_cases(capsys):
    res = bench_campaign.measure(workers=2, items=bench_campaign.cases()[:4])
    assert res["cases"] == 4 and res["identical"] is True and res["workers"] == 2
    text = bench_campaign.table(res)
    assert "rows identical on every engine: yes" in text and "2 worker processes" in text
