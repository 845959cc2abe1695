"""A HIL campaign: many scenarios run in lockstep on an engine (this process, K local worker
processes or Ray, tools/engine.py), each report written as `v2xgw hil run --report` writes it,
with a summary and a pass/fail table. `hil matrix` and `hil soak` run their cases and shards
through run_scenarios() too: one code path distributes every HIL batch.

Guarantees: every scenario is validated before any runs (a bad file stops the campaign with
its name and key, nothing written); each report is exactly the report `hil run` gives for
that file (lockstep runs do not depend on the machine, the worker or the order), written by
the calling process (the driver) to OUT/<scenario name>.json: a task never writes a file, so
a Ray worker on another machine needs no shared filesystem; a run that raises is a failed
row with its error, never the end of the campaign. A row passes when the run completed, the
site invariants held (`invariant_violations` 0) and, where an island was detected, within
LIMIT_S (the islanding budget, hil/matrix.py).
"""

import json
import os
import pathlib
import time

from hil.matrix import LIMIT_S


def collect(paths):
    """Scenario files from files and folders (a folder's *.json, sorted), each once."""
    out = []
    for p in paths:
        p = pathlib.Path(p)
        files = sorted(p.glob("*.json")) if p.is_dir() else [p]
        for f in files:
            if f not in out:
                out.append(f)
    return out


class CampaignError(ValueError):
    """A campaign that cannot run: str() names the file (and key) or the option."""


def load_all(files):
    """[(path, scenario)], every file validated; CampaignError names the file and the key."""
    from hil import scenario

    out = []
    for f in files:
        try:
            out.append((f, scenario.load(str(f))))
        except scenario.ScenarioError as e:
            raise CampaignError("%s: %s" % (f, e)) from None
    return out


def write_report(report, path):
    """A run's report as JSON, byte for byte as `hil run --report` writes it."""
    with open(path, "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")


def run_scenarios(items, task, engine=None, on_result=None, cost=None):
    """task(item) for every item on `engine` (an Engine; None: one local process per CPU);
    the results in the order of `items`.

    on_result(index, result) is called in this process as each task ends (in the order they
    end); what it returns is kept for that index instead of the result, so a caller reduces a
    large result (a full report) as it comes. cost(item), when given, is an estimate of an
    item's run time: the costliest are handed out first, so no long task starts last and
    leaves the other workers idle. task must be a module-level function (it is pickled)."""
    from tools.engine import Engine

    items = list(items)
    engine = engine or Engine()
    order = list(range(len(items)))
    if cost is not None:
        order.sort(key=lambda i: -cost(items[i]))  # stable: equal costs keep their order
    kept = [None] * len(items)
    for j, result in engine.run(task, [items[i] for i in order]):
        i = order[j]
        kept[i] = on_result(i, result) if on_result else result
    return kept


def _run_one(item):
    """One scenario in lockstep: {"name", "report" | None, "error", "wall_s"}. Writes nothing."""
    from hil.runner import run_lockstep

    path, sc = item
    t0 = time.perf_counter()
    try:
        report, _ = run_lockstep(sc)
        error = None
    except Exception as e:  # a failed row, the campaign goes on
        report, error = None, "%s: %s" % (type(e).__name__, e)
    return {"scenario": path, "name": sc["name"], "report": report, "error": error,
            "wall_s": round(time.perf_counter() - t0, 3)}


def verdict(row):
    """(passed, why) of one row."""
    if row["error"]:
        return False, row["error"]
    m = row["metrics"]
    if m.get("invariant_violations"):
        return False, "%d invariant violation(s)" % m["invariant_violations"]
    det = m.get("island_detection_s")
    if det is not None and det > LIMIT_S:
        return False, "island detected after %.3f s (> %.1f s)" % (det, LIMIT_S)
    return True, ""


def check_names(loaded):
    """CampaignError when two scenarios share a name (their reports would overwrite each other)."""
    names = [sc["name"] for _, sc in loaded]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise CampaignError("two scenarios share the name %r: their reports would overwrite each other" % dup[0])


def run_campaign(loaded, out_dir, engine=None, progress=None, workers=None):
    """Run every (path, scenario) of `loaded` on `engine` (or on `workers` local processes);
    write each report to out_dir/<name>.json as it arrives; rows in the order given, each
    {"scenario", "name", "report" (the file), "error", "metrics", "wall_s", "passed", "why"}.
    progress(done, total, row) after each row."""
    from tools.engine import Engine

    check_names(loaded)
    os.makedirs(out_dir, exist_ok=True)
    items = [(str(p), sc) for p, sc in loaded]
    done = [0]

    def reduce(i, res):
        report = res.pop("report")
        row = dict(res, report=None, metrics=None)
        if report is not None:
            row["report"] = str(pathlib.Path(out_dir) / ("%s.json" % res["name"]))
            write_report(report, row["report"])
            row["metrics"] = report["metrics"]
        row["passed"], row["why"] = verdict(row)
        done[0] += 1
        if progress:
            progress(done[0], len(items), row)
        return row

    return run_scenarios(items, _run_one, engine or Engine(workers=workers), reduce,
                         cost=lambda it: it[1]["duration_s"])


def summary(rows, engine, wall_s):
    """summary.json: counts, the failed scenario files, what ran them (Engine.describe()) and
    per row its report file and verdict."""
    failed = [r for r in rows if not r["passed"]]
    return {"scenarios": len(rows), "passed": len(rows) - len(failed), "failed": [r["scenario"] for r in failed],
            "engine": engine, "workers": engine.get("workers"), "wall_s": round(wall_s, 3),
            "rows": [{k: r[k] for k in ("scenario", "name", "report", "passed", "why", "wall_s")} for r in rows]}


def table_md(rows):
    lines = ["| scenario | result | island detection (s) | invariant violations | why |", "| --- | --- | --- | --- | --- |"]
    for r in rows:
        m = r.get("metrics") or {}
        det = m.get("island_detection_s")
        lines.append("| %s | %s | %s | %s | %s |" % (r["name"], "pass" if r["passed"] else "FAIL",
                                                     "-" if det is None else "%.3f" % det,
                                                     m.get("invariant_violations", "-"), r["why"]))
    return "\n".join(lines) + "\n"
