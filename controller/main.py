"""Entry point on a board or a Linux gateway: `micropython -m controller.main [options]`.

Options (no argparse on MicroPython):
  --config FILE             JSON configuration (docs/configuration.md); defaults otherwise
  --interface NAME          socketcand | machine | pyb | any python-can interface (CPython)
  --channel NAME            bus channel (socketcand default vcan0; machine/pyb: the CAN id)
  --host H --port P         socketcand server
  --duration S              stop after S seconds (default: run forever)
Exit status 2 for an invalid configuration or option, naming the key.
"""

import sys

from controller import config
from controller.clock import RealClock
from controller.gateway import Gateway
from controller.ports import open_port
from controller.runtime import run


def parse(argv):
    opts = {"config": None, "interface": "socketcand", "channel": None, "host": "127.0.0.1",
            "port": "29536", "duration": None}
    i = 0
    while i < len(argv):
        a = argv[i]
        if not a.startswith("--") or a[2:] not in opts or i + 1 >= len(argv):
            raise config.ConfigError(a, "unknown option or missing value")
        opts[a[2:]] = argv[i + 1]
        i += 2
    return opts


def main(argv):
    try:
        opts = parse(argv)
        cfg = config.load(opts["config"]) if opts["config"] else config.defaults()
        spec = {"interface": opts["interface"]}
        if opts["channel"] is not None:
            spec["channel"] = opts["channel"]
        if opts["interface"] == "socketcand":
            spec.setdefault("channel", "vcan0")
            spec["host"] = opts["host"]
            try:
                spec["port"] = int(opts["port"])
            except ValueError:
                raise config.ConfigError("--port", "must be a whole number")
        dur = None
        if opts["duration"] is not None:
            try:
                dur = int(float(opts["duration"]) * 1000000)
            except ValueError:
                raise config.ConfigError("--duration", "must be a number of seconds")
    except config.ConfigError as e:
        print("error:", e, file=sys.stderr)
        return 2
    port = open_port(spec)
    gw = Gateway(cfg, port)
    stats = run(gw, port, RealClock(), duration_us=dur)
    print("ticks %d late_max_us %d overruns %d refused %d" % (stats.ticks, stats.late_max, stats.overruns, gw.refused_total))
    port.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
