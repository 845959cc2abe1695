"""Entry point on a board or a Linux gateway: `micropython -m controller.main [options]`.

Options (no argparse on MicroPython):
  --config FILE             JSON configuration (docs/configuration.md); defaults otherwise
  --interface NAME          socketcand | machine | pyb | any python-can interface (CPython)
  --channel NAME            bus channel (socketcand default vcan0; machine/pyb: the CAN id)
  --host H --port P         socketcand server
  --duration S              stop after S seconds (default: run forever)
  --secret FILE             device secret (hex) for UDS security access: enables diagnostics
                            (UDS over ISO-TP, 0x7E0/0x7E8/0x7DF)
  --data DIR                where the fault memory, boot record and update slots live
                            (files; default: the current folder)
  --serial S                serial number reported as 0xF18C
  --secc-iface IFACE        serve ISO 15118-20 EVs on IFACE in this process (where the platform
                            has sockets): with --tls-cert F --tls-key F [--tls-ca F], or --no-tls
Exit status 2 for an invalid configuration or option, naming the key; 3 when a UDS
ECUReset asked for a restart on a platform that cannot restart itself (Linux: let the
supervisor start it again, which boots the newly flashed slot).
"""

import sys

from controller import config
from controller.bus.ports import open_port
from controller.clock import RealClock
from controller.control.gateway import Gateway
from controller.housekeeping import Housekeeping
from controller.runtime import run


def _heap_in_use():
    """MicroPython heap in use now (after a collection), None on CPython."""
    try:
        import gc

        gc.collect()
        return gc.mem_alloc()
    except (ImportError, AttributeError):
        return None


HEAP_IMPORT = _heap_in_use()  # what the firmware's modules take, measured before anything runs


def _forget(name):
    """Let the garbage collector free a module the run no longer needs (the
    configuration schema: about 11 KB of a board's heap). Whoever needs it later
    (a configuration write over UDS) imports it again."""
    mod = sys.modules.pop(name, None)
    if mod is None:
        return
    parent, _, attr = name.rpartition(".")
    p = sys.modules.get(parent)
    if p is not None and getattr(p, attr, None) is mod:
        try:
            delattr(p, attr)
        except (AttributeError, TypeError):
            pass
    g = globals()
    for k in [k for k in g if g[k] is mod]:
        del g[k]


FLAGS = ("no-tls",)


def parse(argv):
    opts = {"config": None, "interface": "socketcand", "channel": None, "host": "127.0.0.1",
            "port": "29536", "duration": None, "secret": None, "data": ".", "serial": "unset",
            "secc-iface": None, "tls-cert": None, "tls-key": None, "tls-ca": None, "no-tls": False}
    i = 0
    while i < len(argv):
        a = argv[i]
        if a[2:] in FLAGS and a.startswith("--"):
            opts[a[2:]] = True
            i += 1
            continue
        if not a.startswith("--") or a[2:] not in opts or i + 1 >= len(argv):
            raise config.ConfigError(a, "unknown option or missing value")
        opts[a[2:]] = argv[i + 1]
        i += 2
    return opts


SLOT_SIZE = 512 * 1024


def attach_diagnostics(gw, opts, now, reset=None):
    """UDS over ISO-TP with the fault memory, boot record and update slots in files under --data."""
    from controller.update import slots as update
    from controller.diag.diagnostics import Diagnostics
    from controller.storage import BlobStore, FileMedium

    with open(opts["secret"]) as f:
        secret = bytes.fromhex(f.read().strip())
    d = opts["data"].rstrip("/") + "/"
    updater = update.Updater(FileMedium(d + "boot.bin", 4096),
                             (FileMedium(d + "slot0.bin", SLOT_SIZE), FileMedium(d + "slot1.bin", SLOT_SIZE)))
    slot = updater.select_boot()
    version = "base"
    if slot != update.NONE:
        m = updater.manifest(slot)
        version = str(m.get("software_version", "?")) if m else "base"
    # self-test of this boot: the firmware imported, the configuration validated and the
    # gateway was built; a trial image that never gets here is rolled back by the boot counter
    updater.confirm()
    store = BlobStore(FileMedium(d + "dtc.bin", 8192), 4000)
    identity = {"serial": opts["serial"][:16], "sw_version": version[:16], "system_name": "v2x-gateway"}
    return Diagnostics(gw, identity, secret, now, updater=updater, dtc_store=store, reset=reset)


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
        if opts["secc-iface"]:
            from controller.iso15118 import service

            why = service.option_problem(opts["tls-cert"], opts["tls-key"], opts["tls-ca"], opts["no-tls"])
            if why:
                raise config.ConfigError("--secc-iface", why)
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
    clock = RealClock()
    reset = []
    if opts["secret"]:
        try:
            attach_diagnostics(gw, opts, clock.ticks_us(), reset.append)
        except (OSError, ValueError) as e:
            print("error: diagnostics:", e, file=sys.stderr)
            return 2
    # receive only the frames the controller reads: on a busy bus the others would cost
    # a parse each (a board's CAN controller drops them in hardware where it can)
    gw.apply_acceptance_filter()
    services = []
    if opts["secc-iface"]:
        try:  # the EV link, polled by the control loop
            from controller.iso15118 import service

            services.append(service.start(gw, opts["secc-iface"], clock.ticks_us, opts["tls-cert"], opts["tls-key"],
                                          opts["tls-ca"], opts["no-tls"]))
        except (ImportError, ValueError, OSError) as e:
            print("error: --secc-iface:", e, file=sys.stderr)
            return 2
    # a lost socketcand connection ends the run (exit 1) instead of spinning on a dead
    # socket: the supervisor restarts the controller, which reconnects
    lost = lambda: getattr(port, "connected", True) is False  # noqa: E731
    _forget("controller.config")  # what only start-up needs: freed for the run
    _forget("controller.protection.grid_codes")
    hk = Housekeeping(cfg["control"]["watchdog_ms"], cfg["control"]["gc_every_bytes"], clock.ticks_us, HEAP_IMPORT)
    stats = run(gw, port, clock, duration_us=dur, should_stop=lambda: len(reset) > 0 or lost(), services=services,
                housekeeping=hk)
    was_lost = lost()  # asked before close(): a closed port reports itself disconnected
    for s in services:
        s.close()
        print(s.stats())
    print("ticks %d late_max_us %d overruns %d refused %d filtered %d %s"
          % (stats.ticks, stats.late_max, stats.overruns, gw.refused_total, port.rx_filtered, hk.line()))
    port.close()
    if was_lost:
        print("error: bus connection lost", file=sys.stderr)
        return 1
    if reset:
        # ECUReset: a board restarts itself; on Linux the process exits with 3 and its
        # supervisor (systemd Restart=, a shell loop) starts it again, which boots the slot
        try:
            import machine

            if hasattr(machine, "reset") and sys.platform != "linux":
                machine.reset()
        except ImportError:
            pass
        print("reset requested")
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
