"""Plots of a fleet run (energy/fleet_cmd.py's JSON): the flexibility curve over one week and
the hourly bid capacity by local hour of day."""

import calendar
import os
import time

from energy import ev_use

UP, DOWN, BASE = "#d62728", "#1f77b4", "#555555"


def _utc(iso):
    return calendar.timegm(time.strptime(iso, "%Y-%m-%dT%H:%M:%SZ"))


def week_start(start_s, n, slot_s):
    """Slot index of the first local Monday 00:00 in February in the period, else of the first
    local Monday, else 0 (a period shorter than a week is shown whole)."""
    first = None
    for t in range(0, max(0, n - 7 * 86400 // slot_s) + 1):
        d = ev_use.local_datetime(start_s + t * slot_s)
        if d.weekday() == 0 and d.hour == 0 and d.minute == 0:
            if first is None:
                first = t
            if d.month == 2:
                return t
    return first or 0


def plots(out, directory, stem="fleet"):
    """Write <stem>-flex.png and <stem>-bids.png into directory; return their paths."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    f = out["fleet"]
    slot_s = 60 * f["slot_minutes"]
    t0 = _utc(f["start_utc"])
    n = len(f["flex_up_mw"])
    a = week_start(t0, n, slot_s)
    b = min(n, a + 7 * 86400 // slot_s)
    x = [(i - a) * slot_s / 86400.0 for i in range(a, b)]
    paths = []

    fig, ax = plt.subplots(figsize=(10, 4.4))
    ax.fill_between(x, 0, f["flex_up_mw"][a:b], step="post", color=UP, alpha=0.35, label="flex up (more export / less charging)")
    ax.fill_between(x, 0, [-v for v in f["flex_down_mw"][a:b]], step="post", color=DOWN, alpha=0.35,
                    label="flex down (more charging / less export), shown negative")
    ax.step(x, f["baseline_mw"][a:b], where="post", color=BASE, lw=1.0, label="planned EV power (+ charge)")
    ax.axhline(0, color="black", lw=0.5)
    day0 = ev_use.local_datetime(t0 + a * slot_s)
    ax.set_xlabel("days from %s (local)" % day0.strftime("%a %Y-%m-%d %H:%M"))
    ax.set_ylabel("MW")
    ax.set_title("%d homes, %s: flexibility held for %d min from each slot" % (out["homes"], out["area"],
                                                                             f["sustain_minutes"]))
    ax.legend(loc="lower left", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    p = os.path.join(directory, stem + "-flex.png")
    fig.savefig(p, dpi=110)
    plt.close(fig)
    paths.append(p)

    from energy import fleet
    bids = f["bids"]
    h0 = _utc(bids["hour_start_utc"])
    tu = fleet.hour_of_day_table(bids["up_mw"], h0, 3600)
    td = fleet.hour_of_day_table(bids["down_mw"], h0, 3600)
    hours = sorted(set(tu) | set(td))
    fig, ax = plt.subplots(figsize=(10, 4.2))
    w = 0.4
    ax.bar([h - w / 2 for h in hours], [tu[h][0] for h in hours], w, color=UP, alpha=0.6, label="up: mean")
    ax.bar([h + w / 2 for h in hours], [td[h][0] for h in hours], w, color=DOWN, alpha=0.6, label="down: mean")
    ax.plot(hours, [tu[h][1] for h in hours], "v-", color=UP, lw=1, label="up: least (firm)")
    ax.plot(hours, [td[h][1] for h in hours], "v-", color=DOWN, lw=1, label="down: least (firm)")
    ax.set_xticks(hours)
    ax.set_xlabel("local hour of day")
    ax.set_ylabel("bid capacity (MW)")
    ax.set_title("FCR-D-style hourly bids, %d homes, %s, %s .. %s" % (out["homes"], out["area"],
                                                                     out["period"]["from_utc"][:10],
                                                                     out["period"]["to_utc"][:10]))
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    p = os.path.join(directory, stem + "-bids.png")
    fig.savefig(p, dpi=110)
    plt.close(fig)
    paths.append(p)
    return paths
