"""Timeline plot of a run: grid and home voltage, frequency, powers, SoC and controller events."""


def plot_run(report, samples, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [s[0] for s in samples]
    fig, ax = plt.subplots(4, 1, sharex=True, figsize=(11, 9), constrained_layout=True)
    ax[0].plot(t, [s[1] for s in samples], label="utility side of relay")
    ax[0].plot(t, [s[2] for s in samples], label="home bus", linestyle="--")
    ax[0].axhline(0.7, color="grey", linewidth=0.6, linestyle=":")
    ax[0].set_ylabel("voltage [pu]")
    ax[1].plot(t, [s[3] for s in samples], label="meter frequency")
    ax[1].set_ylabel("frequency [Hz]")
    ax[2].plot(t, [s[4] / 1000 for s in samples], label="grid import")
    ax[2].plot(t, [s[5] / 1000 for s in samples], label="EV battery (+ charging)")
    ax[2].plot(t, [s[6] / 1000 for s in samples], label="home load")
    ax[2].set_ylabel("power [kW]")
    ax[3].plot(t, [s[7] * 100 for s in samples], label="EV state of charge")
    ax[3].set_ylabel("SoC [%]")
    ax[3].set_xlabel("plant time [s]")
    shown = [e for e in report["events"] if e["kind"] not in ("frame_refused", "mode_change")]
    for e in shown[:60]:  # a readable plot; the report keeps every event
        for a in ax:
            a.axvline(e["t_s"], color="tab:red", alpha=0.25, linewidth=0.8)
        detail = e.get("reason") or e.get("input") or e.get("mode") or e.get("method") or ""
        ax[0].annotate(f"{e['kind']} {detail}".strip(), (e["t_s"], 1.0), xycoords=("data", "axes fraction"),
                       rotation=90, fontsize=7, va="top", ha="right", color="tab:red")
    for a in ax:
        a.grid(True, alpha=0.3)
        a.legend(loc="lower right", fontsize=8)
    fig.suptitle(f"{report['scenario']}")
    fig.savefig(path, dpi=110)
    plt.close(fig)
