"""Plots of a year simulation: monthly cost per strategy, and SoC and price over one week."""

import calendar
import os
import time

from energy import ev_use

COLOURS = {"dumb": "#888888", "smart_charge": "#1f77b4", "v2h": "#2ca02c", "v2x": "#d62728",
           "perfect_foresight": "#000000"}


def default_week(w):
    """UTC epoch s of the first Monday 00:00 local in February inside the period (a winter
    week), else of the period's first Monday."""
    t = w.start_s
    first = None
    while t + 7 * 86400 <= w.start_s + w.n * w.slot_s:
        d = ev_use.local_datetime(t)
        if d.weekday() == 0 and d.hour == 0 and d.minute == 0:
            if first is None:
                first = t
            if d.month == 2:
                return t
        t += w.slot_s
    if first is None:
        raise ValueError("--week: the period holds no whole week from a Monday")
    return first


def plots(w, res, runs, directory, stem, week_s=None):
    """Write <stem>-monthly.png and <stem>-week.png into directory; return their paths."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    kinds = list(res)
    months = list(res[kinds[0]]["monthly_cost_dkk"])
    fig, ax = plt.subplots(figsize=(10, 4.2))
    width = 0.8 / len(kinds)
    for i, k in enumerate(kinds):
        vals = [res[k]["monthly_cost_dkk"][m] for m in months]
        ax.bar([j + (i - (len(kinds) - 1) / 2) * width for j in range(len(months))], vals, width,
               label="%s (%.0f DKK)" % (k, res[k]["cost_dkk"]), color=COLOURS.get(k))
    ax.set_xticks(range(len(months)))
    ax.set_xticklabels([calendar.month_abbr[int(m[5:])] + " " + m[2:4] for m in months], fontsize=8)
    ax.set_ylabel("cost DKK per month (home + EV)")
    ax.set_title("%s: monthly cost per strategy" % stem)
    ax.legend(fontsize=8, ncol=3)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    p = os.path.join(directory, stem + "-monthly.png")
    fig.savefig(p, dpi=90)
    plt.close(fig)
    paths.append(p)

    if week_s is None:
        week_s = default_week(w)
    a = int((week_s - w.start_s) // w.slot_s)
    b = a + 7 * 86400 // w.slot_s
    if a < 0 or b > w.n:
        raise ValueError("--week: %s .. +7 days is outside the simulated period"
                         % time.strftime("%Y-%m-%d", time.gmtime(week_s)))
    x = [ev_use.local_datetime(w.start_s + t * w.slot_s).replace(tzinfo=None) for t in range(a, b)]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 5.5), sharex=True)
    for k in kinds:
        ax1.plot(x, [100 * runs[k].soc[t] for t in range(a, b)], label=k, color=COLOURS.get(k), lw=1)
    ax1.axhline(100 * w.site["reserve_soc"], color="#aa7700", ls="--", lw=0.8, label="reserve")
    away = [not w.plugged[t] for t in range(a, b)]
    ax1.fill_between(x, 0, 100, where=away, color="#dddddd", step="post", label="away")
    ax1.set_ylabel("EV SoC %")
    ax1.set_ylim(0, 100)
    ax1.legend(fontsize=7, ncol=4, loc="lower left")
    ax2.step(x, w.import_dkk[a:b], where="post", label="import (all-in)", color="#d62728", lw=1)
    ax2.step(x, w.export_dkk[a:b], where="post", label="export", color="#1f77b4", lw=1)
    ax2.set_ylabel("DKK/kWh")
    ax2.set_xlabel("Danish local time")
    ax2.legend(fontsize=7)
    ax2.grid(alpha=0.3)
    ax1.set_title("%s: week from %s" % (stem, x[0].strftime("%Y-%m-%d")))
    fig.autofmt_xdate()
    fig.tight_layout()
    p = os.path.join(directory, stem + "-week.png")
    fig.savefig(p, dpi=90)
    plt.close(fig)
    paths.append(p)
    return paths
