"""The unintentional-islanding test matrix (IEC 62116 / IEEE 1547.1 style).

For each inverter output level (100, 66 and 33 % of rating) the site exports that
power into a parallel RLC load of quality factor 1.0 tuned to absorb it, and the
utility breaker opens. Cases: reactive mismatch of the load from -5 % to +5 % in 1 %
steps at matched real power, and real-power mismatch of -10, -5, +5, +10 % at
matched reactive power. Each case is one scenario in the public format, run in
lockstep; the table lists the detection time (first island_detected after the
breaker opened) and how long the dead line stayed energised.

Reference for the test structure: IEC 62116:2014 (test procedure for islanding
prevention of utility-interconnected PV inverters) and IEEE 1547.1-2020 clause 5.10
(unintentional islanding, RLC load with Qf = 1.0). Those standards also prescribe
measurement details (load tuning procedure, per-case tolerances) that a simulation
does not need; what is kept is the grid of operating points and the 2 s limit.
"""

import json
import os

LEVELS = (100, 66, 33)
REACTIVE_MISMATCH = tuple(range(-5, 6))
REAL_MISMATCH = (-10, -5, 5, 10)
T_DISCONNECT = 1.0
LIMIT_S = 2.0

# --grid-support: the functions IEEE 1547.1-2020 keeps on for its islanding tests, P(f)
# (frequency droop / LFSM) and volt-var, plus volt-watt; "off" runs without any of them
GRID_SUPPORT = {
    "on": {"p_of_f": True, "q_mode": "volt_var", "volt_watt": True},
    "off": {"p_of_f": False, "q_mode": "unity_pf", "volt_watt": False},
}


def cases(grid_code="EN50549-1", f_nom=50.0, rating_kva=11.0, efficiency=0.97, run_s=3.0, grid_support="off"):
    """The matrix as scenario dicts (the public format), with a label per case;
    grid_support "on" or "off" (GRID_SUPPORT)."""
    out = []
    for level in LEVELS:
        points = [(0, m) for m in REACTIVE_MISMATCH] + [(p, 0) for p in REAL_MISMATCH]
        for real, reactive in points:
            p_ac = rating_kva * level / 100.0
            sc = {
                "name": f"island-{level}pct-p{real:+d}-q{reactive:+d}",
                "description": "unintentional-islanding matrix case",
                "duration_s": T_DISCONNECT + run_s,
                "site": {"grid_code": grid_code, "nominal_frequency_hz": f_nom},
                "ev": {"soc": 0.8, "max_discharge_kw": 2 * rating_kva, "max_charge_kw": 2 * rating_kva},
                "inverter": {"rating_kva": rating_kva},
                "load": {"rlc": {"p_kw": p_ac * (1 + real / 100.0), "q_factor": 1.0,
                                 "reactive_mismatch_pct": float(reactive)}},
                "mode": {"kind": "v2g", "setpoint_kw": -p_ac / efficiency},
                "controller": {"limits": {"ramp_up_kw_per_s": None}, "grid_support": dict(GRID_SUPPORT[grid_support])},
                "events": [{"t_s": T_DISCONNECT, "kind": "grid_disconnect"}],
            }
            out.append(({"level_pct": level, "real_mismatch_pct": real, "reactive_mismatch_pct": reactive}, sc))
    return out


def _run_case(item):
    from hil import scenario
    from hil.runner import run_lockstep

    label, sc = item
    report, _ = run_lockstep(scenario.validate(sc))
    m = report["metrics"]
    method = next((e.get("method") for e in report["events"] if e["kind"] == "island_detected"), None)
    return {**label, "detection_s": m["island_detection_s"], "method": method,
            "dead_line_energized_ms": m["dead_line_energized_ms"], "trip_count": m["trip_count"],
            "home_interruption_ms": m["home_interruption_ms"]}


def run_matrix(grid_code="EN50549-1", f_nom=50.0, workers=None, grid_support="off", engine=None, progress=None):
    """The matrix's rows, in the order of cases(), run through the campaign runner on
    `engine` (tools/engine.py; None: `workers` local processes, default one per CPU).
    progress(done, total, row) as each case ends."""
    from hil import campaign
    from tools.engine import Engine

    items = cases(grid_code, f_nom, grid_support=grid_support)
    done = [0]

    def count(i, row):
        done[0] += 1
        if progress:
            progress(done[0], len(items), row)
        return row

    return campaign.run_scenarios(items, _run_case, engine or Engine(workers=workers), count)


def summary(rows):
    times = [r["detection_s"] for r in rows if r["detection_s"] is not None]
    return {"cases": len(rows), "detected": len(times),
            "within_2s": sum(1 for t in times if t <= LIMIT_S), "within_0_5s": sum(1 for t in times if t <= 0.5),
            "max_detection_s": max(times) if times else None}


def table_md(rows, grid_code, f_nom, grid_support="off"):
    lines = [f"Unintentional-islanding matrix, grid code {grid_code}, {f_nom:g} Hz, grid support {grid_support} "
             f"(detection time in s; "
             f"'-' = not detected within the run)", "",
             "| output | real mismatch | reactive mismatch | detection [s] | method | dead line energised [ms] |",
             "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        d = "-" if r["detection_s"] is None else f"{r['detection_s']:.3f}"
        lines.append(f"| {r['level_pct']} % | {r['real_mismatch_pct']:+d} % | {r['reactive_mismatch_pct']:+d} % | {d} | "
                     f"{r['method'] or '-'} | {r['dead_line_energized_ms']:.1f} |")
    s = summary(rows)
    lines += ["", f"{s['detected']} of {s['cases']} islands detected, {s['within_2s']} within 2 s, "
              f"{s['within_0_5s']} within 0.5 s; slowest {s['max_detection_s']} s."]
    return "\n".join(lines) + "\n"


def plot(rows, path, grid_code, f_nom, grid_support="off"):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True, sharey=True)
    for level in LEVELS:
        q = [r for r in rows if r["level_pct"] == level and r["real_mismatch_pct"] == 0]
        p = [r for r in rows if r["level_pct"] == level and r["reactive_mismatch_pct"] == 0]
        ax[0].plot([r["reactive_mismatch_pct"] for r in q], [r["detection_s"] if r["detection_s"] is not None
                   else float("nan") for r in q], marker="o", label=f"{level} %")
        ax[1].plot([r["real_mismatch_pct"] for r in p], [r["detection_s"] if r["detection_s"] is not None
                   else float("nan") for r in p], marker="o", label=f"{level} %")
    for a, x in zip(ax, ("reactive mismatch [%]", "real-power mismatch [%]")):
        a.axhline(LIMIT_S, color="tab:red", linestyle="--", linewidth=0.8, label="2 s limit")
        a.axhline(0.5, color="tab:orange", linestyle=":", linewidth=0.8, label="0.5 s aim")
        a.set_xlabel(x)
        a.grid(True, alpha=0.3)
        a.legend(fontsize=8)
    ax[0].set_ylabel("detection time [s]")
    fig.suptitle(f"Unintentional islanding, {grid_code}, {f_nom:g} Hz, grid support {grid_support}")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(rows, out_dir, grid_code, f_nom, grid_support="off"):
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "matrix.json"), "w") as f:
        json.dump({"grid_code": grid_code, "nominal_frequency_hz": f_nom, "grid_support": grid_support,
                   "settings": GRID_SUPPORT[grid_support], "summary": summary(rows), "rows": rows}, f, indent=2)
    with open(os.path.join(out_dir, "matrix.md"), "w") as f:
        f.write(table_md(rows, grid_code, f_nom, grid_support))
    plot(rows, os.path.join(out_dir, "matrix.png"), grid_code, f_nom, grid_support)
