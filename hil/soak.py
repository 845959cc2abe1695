"""Soak: hours of plant time with random faults, checked by the site invariants.

make_shards() turns (hours, seed) into shards: scenario files in the public format
(docs/scenarios.md), one per `shard_s` of plant time, each with its own site, its
controller clock start and a random stream of faults (FAULTS). Generation is a pure
function of its arguments: the same seed gives the same shards, and every shard can be
written out and replayed alone with `v2xgw hil run` (replay_command()). run_soak()
plays them in lockstep through the campaign runner (hil/campaign.py: local worker
processes or Ray, tools/engine.py) and aggregates the site-invariant
violations (hil/invariants.py) per rule and per shard. docs/soak.md describes the fault
model and what the soak found.
"""

import json
import math
import os
import random
import sys
import time

from controller.clock import TICKS_PERIOD
from hil.invariants import RULES

NODES = ("meter", "inverter", "relay", "ev", "ems")
GRID_CODES = ("EN50549-1", "IEEE1547-2018-CatII", "IEEE1547-2018-CatIII", "DK-EN50549-1")
# Fault kinds; communication faults count per node. A shard deals its faults from shuffled
# decks of FAULTS, so every kind comes once before any comes twice.
FAULTS = tuple("can_silence:" + n for n in NODES) + tuple("can_corrupt:" + n for n in NODES) + (
    "grid_outage", "voltage_sag", "voltage_swell", "frequency_step", "frequency_ramp", "phase_jump",
    "mode", "ev_limits", "load_step")
SHARD_S = 3600.0
MEAN_GAP_S = 30.0  # mean time between the starts of two faults (exponential)
COMM_S = (0.001, 900.0)  # silence / corruption: 1 ms .. 15 min, log-uniform (beyond half the ticks period, 537 s)
OUTAGE_S = (0.02, 900.0)  # utility breaker open, log-uniform
DISTURBANCE_S = (0.02, 120.0)  # voltage and frequency excursions, log-uniform
WRAP_SHARE = 1.0 / 3.0  # shards whose controller clock starts just before a ticks wrap
WRAP_LEAD_S = (0.001, 30.0)
SAMPLE_US = 1_000_000  # the runner's plot samples: one per plant second (a soak shard is long)


def _logu(rng, lo, hi):
    return math.exp(rng.uniform(math.log(lo), math.log(hi)))


def _r(x, nd=3):
    return round(x, nd)


def _mode(rng):
    kind = rng.choice(("idle", "charge", "v2h", "v2g"))
    m = {"kind": kind}
    if kind in ("charge", "v2g") or rng.random() < 0.3:
        m["setpoint_kw"] = _r(rng.uniform(-12.0, 12.0), 2)  # both signs, in every mode that takes one
    return m


def _load(rng):
    if rng.random() < 0.1:
        return {"rlc": {"p_kw": _r(rng.uniform(1.0, 8.0), 2), "q_factor": 1.0,
                        "reactive_mismatch_pct": _r(rng.uniform(-5.0, 5.0), 2)}}
    return {"p_kw": _r(rng.uniform(0.0, 10.0), 2), "q_kvar": _r(rng.uniform(-2.0, 2.0), 2)}


def _fault(rng, kind, t, f_n):
    """The scenario events of one fault starting at t (a list: a fault may end later)."""
    if kind.startswith("can_"):
        ev, node = kind.split(":")
        return [{"t_s": t, "kind": ev, "node": node, "duration_s": _r(_logu(rng, *COMM_S), 4)}]
    if kind == "grid_outage":
        d = _logu(rng, *OUTAGE_S)
        back = [{"t_s": _r(t + d), "kind": "grid_reconnect"}]
        if rng.random() < 0.3:  # the grid comes back out of phase
            back.append({"t_s": _r(t + d), "kind": "grid_phase_jump", "deg": _r(rng.uniform(-90.0, 90.0), 1)})
        return [{"t_s": t, "kind": "grid_disconnect"}] + back
    if kind in ("voltage_sag", "voltage_swell"):
        pu = rng.uniform(0.0, 0.88) if kind == "voltage_sag" else rng.uniform(1.1, 1.3)
        d = _logu(rng, *DISTURBANCE_S)
        out = {"t_s": t, "kind": "grid_voltage", "pu": _r(pu)}
        if rng.random() < 0.3:
            out["ramp_s"] = _r(rng.uniform(0.05, 5.0))
        return [out, {"t_s": _r(t + d), "kind": "grid_voltage", "pu": 1.0}]
    if kind in ("frequency_step", "frequency_ramp"):
        df = rng.choice((-1, 1)) * _logu(rng, 0.05, 3.0)
        d = _logu(rng, *DISTURBANCE_S)
        out = {"t_s": t, "kind": "grid_frequency", "hz": _r(f_n + df)}
        back = {"t_s": _r(t + d), "kind": "grid_frequency", "hz": f_n}
        if kind == "frequency_ramp":
            rate = _r(_logu(rng, 0.1, 5.0))
            out["ramp_hz_per_s"] = rate
            back["ramp_hz_per_s"] = rate
        return [out, back]
    if kind == "phase_jump":
        return [{"t_s": t, "kind": "grid_phase_jump", "deg": _r(rng.choice((-1, 1)) * rng.uniform(2.0, 90.0), 1)}]
    if kind == "mode":
        return [{"t_s": t, "kind": "mode", "mode": _mode(rng)}]
    if kind == "ev_limits":
        ev = {"t_s": t, "kind": "ev_limits"}
        fields = [f for f in ("max_charge_kw", "max_discharge_kw", "min_soc") if rng.random() < 0.6] or ["max_charge_kw"]
        for f in fields:
            ev[f] = _r(rng.uniform(0.05, 0.6), 2) if f == "min_soc" else _r(rng.uniform(0.0, 12.0), 2)
        return [ev]
    if kind == "load_step":
        return [{"t_s": t, "kind": "load_step", **_load(rng)}]
    raise ValueError(kind)


def make_shard(seed, index, duration_s, mean_gap_s=MEAN_GAP_S, hour0=0.0):
    """One shard: {"index", "hour0", "clock_start_us", "faults": {kind: n}, "scenario": dict}."""
    rng = random.Random(f"v2xgw-soak/{seed}/{index}")  # str seeds hash deterministically (sha512)
    code = rng.choice(GRID_CODES)
    f_n = 60.0 if code.startswith("IEEE") else 50.0
    controller = {}
    if rng.random() < 0.3:
        controller.setdefault("site", {})["export_limit_kw"] = _r(rng.uniform(0.0, 6.0), 2)
    if rng.random() < 0.3:
        controller.setdefault("site", {})["main_fuse_a"] = _r(rng.uniform(20.0, 35.0), 1)
    clock = 0
    if rng.random() < WRAP_SHARE:
        clock = TICKS_PERIOD - int(_logu(rng, *WRAP_LEAD_S) * 1e6)
    events = []
    faults = {k: 0 for k in FAULTS}
    deck = []
    t = rng.expovariate(1.0 / mean_gap_s)
    while t < duration_s:
        if not deck:
            deck = list(FAULTS)
            rng.shuffle(deck)
        kind = deck.pop()
        faults[kind] += 1
        events.extend(e for e in _fault(rng, kind, _r(t), f_n) if e["t_s"] <= duration_s)
        t += rng.expovariate(1.0 / mean_gap_s)
    sc = {
        "name": f"soak-s{seed}-{index:03d}",
        "description": f"v2xgw hil soak --seed {seed}: shard {index}, plant hours {hour0:g}..{hour0 + duration_s / 3600:g}"
                       + (f"; controller clock starts at {clock} us (--clock-start)" if clock else ""),
        "duration_s": _r(duration_s),
        "seed": rng.randrange(2**31),
        "site": {"grid_code": code, "nominal_frequency_hz": f_n},
        "ev": {"soc": _r(rng.uniform(0.3, 0.95)), "capacity_kwh": _r(rng.uniform(40.0, 100.0), 1),
               "max_charge_kw": _r(rng.uniform(3.0, 12.0), 2), "max_discharge_kw": _r(rng.uniform(3.0, 12.0), 2),
               "min_soc": _r(rng.uniform(0.1, 0.3), 2)},
        "inverter": {"rating_kva": 11.0},
        "load": _load(rng),
        "mode": _mode(rng),
        "controller": controller,
        "events": sorted(events, key=lambda e: e["t_s"]),  # stable: a fault's own events keep their order
    }
    return {"index": index, "hour0": hour0, "clock_start_us": clock, "faults": faults, "scenario": sc}


def make_shards(hours, seed, shard_s=SHARD_S, mean_gap_s=MEAN_GAP_S):
    """The soak's shards: ceil(hours * 3600 / shard_s) of them, the last one shorter."""
    total = hours * 3600.0
    n = max(1, math.ceil(total / shard_s - 1e-9))
    out = []
    for i in range(n):
        d = min(shard_s, total - i * shard_s)
        out.append(make_shard(seed, i, d, mean_gap_s, hour0=i * shard_s / 3600.0))
    return out


def shard_path(out_dir, shard):
    return os.path.join(out_dir, shard["scenario"]["name"] + ".json")


def replay_command(path, shard):
    cmd = f"v2xgw hil run {path}"
    if shard["clock_start_us"]:
        cmd += f" --clock-start {shard['clock_start_us']}"
    return cmd + " --report replay.json"


def run_shard(shard):
    """Play one shard in lockstep; a summary of its report (picklable, small)."""
    from hil import scenario
    from hil.runner import run_lockstep

    sc = scenario.validate(shard["scenario"])
    t0 = time.perf_counter()
    report, rec = run_lockstep(sc, clock_start_us=shard["clock_start_us"], sample_us=SAMPLE_US, errors="report")
    wall = time.perf_counter() - t0
    kinds = {}
    for e in report["events"]:
        kinds[e["kind"]] = kinds.get(e["kind"], 0) + 1
    inv = report["invariants"]
    error = report["run"].get("error")
    played = error["t_s"] if error else sc["duration_s"]  # plant time the shard reached
    return {"index": shard["index"], "name": sc["name"], "hour0": shard["hour0"], "plant_s": sc["duration_s"],
            "played_s": played,
            "clock_start_us": shard["clock_start_us"], "grid_code": sc["site"]["grid_code"],
            "f_n": sc["site"]["nominal_frequency_hz"], "faults": shard["faults"],
            "violations": inv["by_rule"], "first": inv["first"], "metrics": report["metrics"],
            "controller_events": kinds, "wall_s": round(wall, 2),
            "speedup": round(played / wall, 1) if wall > 0 else None,
            "frames_refused": report["run"]["frames_refused_by_controller"],
            "error": error}  # the run stopped there: an exception (the controller's, say)


def run_soak(hours, seed, workers=None, shard_s=SHARD_S, mean_gap_s=MEAN_GAP_S, out_dir="soak-out", progress=None,
             engine=None):
    """Generate, write and play the shards on `engine` (tools/engine.py; None: `workers`
    local processes, default one per CPU); the soak report (a dict). progress(done, total,
    result) is called as each shard ends. The shard files are written here, before any
    runs; a task writes nothing."""
    from hil import campaign
    from tools.engine import Engine

    shards = make_shards(hours, seed, shard_s, mean_gap_s)
    os.makedirs(out_dir, exist_ok=True)
    for sh in shards:
        with open(shard_path(out_dir, sh), "w") as f:
            json.dump(sh["scenario"], f, indent=1)
            f.write("\n")
    if engine is None:
        engine = Engine(workers=1 if len(shards) == 1 else workers)
    ray = engine.describe().get("address")
    t0 = time.perf_counter()
    finished = []
    # each shard's result as it comes (JSON lines): a long soak that is stopped keeps what it did
    log = open(os.path.join(out_dir, "results.jsonl"), "w")

    def done(i, r):
        finished.append(r)
        log.write(json.dumps(r) + "\n")
        log.flush()
        if progress:
            progress(len(finished), len(shards), r)
        return r

    try:
        # the longest shards first: a shorter last one fills in at the end
        results = campaign.run_scenarios(shards, run_shard, engine, done, cost=lambda sh: sh["scenario"]["duration_s"])
    finally:
        log.close()
    wall = time.perf_counter() - t0
    workers = engine.describe().get("workers") if ray else (workers or os.cpu_count() or 1)
    by_index = {sh["index"]: sh for sh in shards}
    for r in results:
        r["replay"] = replay_command(shard_path(out_dir, by_index[r["index"]]), by_index[r["index"]])
    plant = sum(r["played_s"] for r in results)
    return {
        # plant_hours: what was played (a shard stopped by an exception ends early)
        "soak": {"hours": hours, "seed": seed, "shards": len(shards), "shard_s": shard_s, "mean_gap_s": mean_gap_s,
                 "workers": workers, **({"ray": ray} if ray else {}),  # on Ray: its CPUs
                 "plant_hours": round(plant / 3600.0, 4), "wall_s": round(wall, 1),
                 "speedup": round(plant / wall, 1) if wall > 0 else None, "out_dir": out_dir},
        "violations": {rule: sum(r["violations"][rule] for r in results) for rule in RULES},
        "errors": sum(1 for r in results if r["error"]),
        "faults": {k: sum(r["faults"][k] for r in results) for k in FAULTS},
        "failing": [{"shard": r["index"], "name": r["name"], "violations": {k: v for k, v in r["violations"].items() if v},
                     "first": r["first"][:5], "error": r["error"], "replay": r["replay"]}
                    for r in results if any(r["violations"].values()) or r["error"]],
        "shards": results,
    }


# ------------------------------------------------------------------ presentation
class Progress:
    """A line per finished shard, with the time the rest should take (for a terminal)."""

    def __init__(self, out=sys.stdout):
        self.out = out
        self.t0 = time.perf_counter()

    def __call__(self, done, total, r):
        v = sum(r["violations"].values())
        err = f"  STOPPED at {r['error']['t_s']} s: {r['error']['type']}" if r["error"] else ""
        left = (time.perf_counter() - self.t0) / done * (total - done)
        print(f"[{done:>3}/{total}] {r['name']}  {r['played_s'] / 3600:.2f} h  violations {v:<3} "
              f"wall {r['wall_s']:7.1f} s  {r['speedup']}x  (about {left / 60:.0f} min left){err}",
              file=self.out, flush=True)


def table(report):
    """Per shard: plant hours, violations per rule, wall time, speed-up; then the totals."""
    short = {"current": "curr", "forming": "form", "direction": "dir", "dead_line": "dead", "stale": "stale"}
    head = (f"{'shard':<18} {'hours':>6} " + " ".join(f"{short[r]:>5}" for r in RULES)
            + f" {'stop':>5} {'wall s':>8} {'speed-up':>9}")
    lines = [head, "-" * len(head)]
    for r in report["shards"]:
        lines.append(f"{r['name']:<18} {r['played_s'] / 3600:>6.2f} "
                     + " ".join(f"{r['violations'][x]:>5}" for x in RULES)
                     + f" {'yes' if r['error'] else '-':>5} {r['wall_s']:>8.1f} {str(r['speedup']) + 'x':>9}")
    s = report["soak"]
    lines.append("-" * len(head))
    lines.append(f"{'total':<18} {s['plant_hours']:>6.2f} " + " ".join(f"{report['violations'][x]:>5}" for x in RULES)
                 + f" {report['errors']:>5} {s['wall_s']:>8.1f} {str(s['speedup']) + 'x':>9}")
    lines.append("faults scheduled: " + ", ".join(f"{k} {v}" for k, v in report["faults"].items()))
    if report["failing"]:
        lines.append("failing shards (replay):")
        for f in report["failing"]:
            if f["error"]:
                e = f["error"]
                at = [w for w in e["where"] if "candb.py" not in w] or e["where"]  # generated codec: not the cause
                lines.append(f"  {f['name']}: stopped at {e['t_s']} s by {e['type']}: {e['message']} ({at[-1]})")
            if f["first"]:
                lines.append(f"  {f['name']}: {f['violations']}  first: {f['first'][0]['t_s']} s "
                             f"{f['first'][0]['rule']}: {f['first'][0]['detail']}")
            lines.append(f"    {f['replay']}")
    else:
        lines.append("no site invariant broken, no run stopped")
    return "\n".join(lines) + "\n"


def plot(report, path):
    """Faults and violations over plant time (one row per fault kind and per rule), and the
    speed-up of each shard."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shards = report["shards"]
    rows = list(FAULTS) + ["violation: " + r for r in RULES]
    fig, ax = plt.subplots(2, 1, figsize=(12, 8), gridspec_kw={"height_ratios": [3, 1]}, constrained_layout=True)
    a = ax[0]
    out_dir = report["soak"]["out_dir"]
    for r in shards:
        h0 = r["hour0"]
        try:
            with open(os.path.join(out_dir, r["name"] + ".json")) as f:
                evs = json.load(f)["events"]
        except OSError:
            evs = []
        for e in evs:
            k = e["kind"]
            if k in ("can_silence", "can_corrupt"):
                y = rows.index(k + ":" + e["node"])
                end = min(e["t_s"] + e["duration_s"], r["plant_s"])
                a.plot([h0 + e["t_s"] / 3600, h0 + end / 3600], [y, y], color="tab:blue",
                       linewidth=3, solid_capstyle="butt")
                a.plot([h0 + e["t_s"] / 3600], [y], "|", color="tab:blue", markersize=6)
            else:
                name = {"grid_disconnect": "grid_outage", "grid_phase_jump": "phase_jump", "mode": "mode",
                        "ev_limits": "ev_limits", "load_step": "load_step"}.get(k)
                if k == "grid_voltage" and e["pu"] != 1.0:
                    name = "voltage_sag" if e["pu"] < 1.0 else "voltage_swell"
                elif k == "grid_frequency" and e["hz"] != r["f_n"]:
                    name = "frequency_ramp" if "ramp_hz_per_s" in e else "frequency_step"
                if name:
                    a.plot([h0 + e["t_s"] / 3600], [rows.index(name)], "|", color="tab:green", markersize=7)
        for v in r["first"]:
            a.plot([h0 + v["t_s"] / 3600], [rows.index("violation: " + v["rule"])], "x", color="tab:red", markersize=7)
        if r["error"]:
            a.axvline(h0 + r["error"]["t_s"] / 3600, color="black", linewidth=1.2)
            a.axvspan(h0 + r["error"]["t_s"] / 3600, h0 + r["plant_s"] / 3600, color="grey", alpha=0.25, linewidth=0)
            a.annotate(f"stopped: {r['error']['type']}", (h0 + r["error"]["t_s"] / 3600, 0), rotation=90,
                       fontsize=7, va="top", ha="right")
    for rule in RULES:  # counts beyond the listed first ones
        n = report["violations"][rule]
        a.annotate(str(n), (1.0, rows.index("violation: " + rule)), xycoords=("axes fraction", "data"),
                   xytext=(4, 0), textcoords="offset points", va="center", fontsize=8,
                   color="tab:red" if n else "grey")
    total_h = sum(r["plant_s"] for r in shards) / 3600
    for r in shards[1:]:
        a.axvline(r["hour0"], color="grey", linewidth=0.5, alpha=0.5)
    a.set_xlim(0, total_h)
    a.set_yticks(range(len(rows)))
    a.set_yticklabels(rows, fontsize=8)
    a.set_ylim(-1, len(rows))
    a.invert_yaxis()
    a.set_xlabel("plant time [h]")
    a.grid(True, axis="x", alpha=0.3)
    s = report["soak"]
    a.set_title(f"soak seed {s['seed']}: {s['plant_hours']} plant hours played in {s['shards']} shards, "
                f"{sum(report['violations'].values())} invariant violations (the first ones of each shard marked), "
                f"{report['errors']} shards stopped", fontsize=10)
    b = ax[1]
    b.bar([r["hour0"] + r["plant_s"] / 7200 for r in shards], [r["speedup"] or 0 for r in shards],
          width=[r["plant_s"] / 3600 * 0.8 for r in shards],
          color=["tab:red" if any(r["violations"].values()) or r["error"] else "tab:grey" for r in shards])
    b.set_ylabel("speed-up [x real time]")
    b.set_xlabel("plant time [h] (red: shard with violations or stopped by an exception, black line above: where; "
                 "grey: not played)")
    b.set_xlim(a.get_xlim())
    b.grid(True, axis="y", alpha=0.3)
    fig.savefig(path, dpi=110)
    plt.close(fig)

