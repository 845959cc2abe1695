"""A HIL campaign: many scenario files run in lockstep, spread over worker processes, each
report written as `v2xgw hil run --report` writes it, with a summary and a pass/fail table.

Guarantees: every scenario is validated before any runs (a bad file stops the campaign with
its name and key, nothing written); each report is exactly the report `hil run` gives for
that file (lockstep runs do not depend on the machine, the worker or the order), written to
OUT/<scenario name>.json; a run that raises is a failed row with its error, never the end of
the campaign. A row passes when the run completed, the site invariants held
(`invariant_violations` 0) and, where an island was detected, within LIMIT_S (the islanding
budget, hil/matrix.py).
"""

import json
import os
import pathlib
import time
from concurrent.futures import ProcessPoolExecutor

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


def _run_one(item):
    from hil.runner import run_lockstep

    path, sc, out_dir = item
    t0 = time.perf_counter()
    try:
        report, _ = run_lockstep(sc)
    except Exception as e:  # a failed row, the campaign goes on
        return {"scenario": str(path), "name": sc["name"], "report": None, "error": "%s: %s" % (type(e).__name__, e),
                "wall_s": round(time.perf_counter() - t0, 3)}
    dst = pathlib.Path(out_dir) / ("%s.json" % sc["name"])
    with open(dst, "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    return {"scenario": str(path), "name": sc["name"], "report": str(dst), "error": None,
            "metrics": report["metrics"], "wall_s": round(time.perf_counter() - t0, 3)}


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


def run_campaign(loaded, out_dir, workers=None, progress=None):
    """Run every (path, scenario) of `loaded`; rows in the order given."""
    names = [sc["name"] for _, sc in loaded]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise CampaignError("two scenarios share the name %r: their reports would overwrite each other" % dup[0])
    os.makedirs(out_dir, exist_ok=True)
    items = [(str(p), sc, str(out_dir)) for p, sc in loaded]
    workers = workers or min(len(items), os.cpu_count() or 1)
    rows = []
    if workers <= 1:
        for it in items:
            rows.append(_run_one(it))
            if progress:
                progress(len(rows), len(items), rows[-1])
    else:
        with ProcessPoolExecutor(max_workers=workers) as ex:
            for row in ex.map(_run_one, items):
                rows.append(row)
                if progress:
                    progress(len(rows), len(items), row)
    for r in rows:
        r["passed"], r["why"] = verdict(r)
    return rows


def summary(rows, workers, wall_s):
    failed = [r for r in rows if not r["passed"]]
    return {"scenarios": len(rows), "passed": len(rows) - len(failed), "failed": [r["scenario"] for r in failed],
            "workers": workers, "wall_s": round(wall_s, 3),
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
