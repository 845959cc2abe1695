"""Entry point on a board or a Linux gateway: `micropython -m controller.main [options]`.

Options (no argparse on MicroPython):
  --config FILE             JSON configuration (docs/configuration.md); defaults otherwise
  --interface NAME          socketcand | machine | pyb | any python-can interface (CPython)
  --channel NAME            bus channel (socketcand default vcan0; machine/pyb: the CAN id)
  --host H --port P         socketcand server
  --duration S              stop after S seconds (default: run forever)
  --secret FILE             device secret (hex) for UDS security access: enables diagnostics
                            (UDS over ISO-TP, 0x7E0/0x7E8/0x7DF)
  --data DIR                where the boot record, update slots, fault memory and the
                            configuration written over UDS live (files; default: the current folder)
  --serial S                serial number reported as 0xF18C
  --selftest S              seconds a trial image has to pass its self-test (default 120)
  --secc-iface IFACE        serve ISO 15118-20 EVs on IFACE in this process (where the platform
                            has sockets): with --tls-cert F --tls-key F [--tls-ca F], or --no-tls
Boot: the slot the boot record selects runs (controller/update/launch.py; a board's boot.py
selects it, otherwise main() does, once, and hands over to the slot's copy of this module);
a trial image is confirmed after its self-test (controller/update/selftest.py).
Configuration: the file (--config), then the keys written over UDS (--data/config.bin).
Exit status 2 for an invalid configuration or option, naming the key; 3 when a restart is
needed (a UDS ECUReset, a trial image that failed its self-test) on a platform that cannot
restart itself (Linux: the supervisor starts it again, which boots the selected slot).
"""

import sys

from controller import config


def _heap_in_use():
    """MicroPython heap in use now (after a collection), None on CPython."""
    try:
        import gc

        gc.collect()
        return gc.mem_alloc()
    except (ImportError, AttributeError):
        return None


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
            "port": "29536", "duration": None, "secret": None, "data": ".", "serial": "unset", "selftest": "120",
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


CONFIG_FILE = "config.bin"
CONFIG_SIZE = 4096


def stored_config(cfg, opts):
    """(cfg with the keys written over UDS on top, (store, overrides in force)); a store is
    opened when updates are on (--secret) or one exists. An unreadable or invalid stored
    key is reported and left out."""
    import os

    from controller.update.launch import data_dir

    path = data_dir(opts["data"]) + CONFIG_FILE
    if not opts["secret"]:
        try:
            os.stat(path)
        except OSError:
            return cfg, (None, None)  # no store: the storage code is not even loaded (RAM)
    from controller.storage import ConfigStore, FileMedium

    store = ConfigStore(FileMedium(path, CONFIG_SIZE))
    cfg, overrides = store.apply(cfg, lambda text: print("warning:", text, file=sys.stderr))
    return cfg, (store, overrides)


def attach_diagnostics(gw, opts, now, reset=None, booted=None, updater=None, stored=(None, None)):
    """UDS over ISO-TP with the fault memory, boot record, update slots and the configuration
    written over UDS in files under --data. `booted` is the boot selector's decision for
    this boot: select_boot() is never called here (it ran once, before the application)."""
    from controller.diag.diagnostics import Diagnostics
    from controller.storage import BlobStore, FileMedium
    from controller.update import launch

    with open(opts["secret"]) as f:
        secret = bytes.fromhex(f.read().strip())
    if updater is None:
        updater = launch.open_updater(opts["data"])
    version = launch.version(updater, booted)
    store = BlobStore(FileMedium(launch.data_dir(opts["data"]) + "dtc.bin", 8192), 4000)
    identity = {"serial": opts["serial"][:16], "sw_version": version[:16], "system_name": "v2x-gateway"}
    return Diagnostics(gw, identity, secret, now, updater=updater, dtc_store=store, reset=reset,
                       config_store=stored[0], config_overrides=stored[1])


def main(argv, booted=None):
    """Run the controller; the exit status. `booted`: the boot selector's decision for this
    boot when it was taken before (board boot.py; the base firmware handing over to a
    slot): NONE (0xFF) the base firmware, 0 or 1 the slot this code runs from. None: not
    taken yet, main() takes it (once) and hands over to the slot's copy of this module."""
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
        try:
            trial_s = float(opts["selftest"])
        except ValueError:
            raise config.ConfigError("--selftest", "must be a number of seconds")
    except config.ConfigError as e:
        print("error:", e, file=sys.stderr)
        return 2
    from controller.update import launch

    if booted is None:
        booted = launch.boot_slot(opts["data"], print)
        if booted in (0, 1):
            import controller.main as app  # the slot's copy: boot_slot() dropped this one from sys.modules

            return app.main(argv, booted)
    from controller.bus.ports import open_port
    from controller.clock import RealClock
    from controller.control.gateway import Gateway
    from controller.housekeeping import Housekeeping
    from controller.runtime import run

    heap_import = _heap_in_use()  # what the firmware's modules take, before anything runs

    try:
        cfg, stored = stored_config(cfg, opts)
        updater = launch.open_updater(opts["data"]) if opts["secret"] or booted in (0, 1) else None
    except (OSError, ValueError) as e:
        print("error: --data:", e, file=sys.stderr)
        return 2
    port = open_port(spec)
    gw = Gateway(cfg, port)
    clock = RealClock()
    reset = []
    diag = None
    if opts["secret"]:
        try:
            diag = attach_diagnostics(gw, opts, clock.ticks_us(), reset.append, booted, updater, stored)
        except (OSError, ValueError) as e:
            print("error: diagnostics:", e, file=sys.stderr)
            return 2
        from controller.update.image import KEY_LABEL

        if KEY_LABEL == "development":
            print("warning: update images are checked against the DEVELOPMENT key (public: anyone can sign "
                  "for it); deploy a release build", file=sys.stderr)
    selftest = launch.start_selftest(updater, gw, booted, clock.ticks_us(), trial_s)
    # a lost socketcand connection ends the run (exit 1) instead of spinning on a dead
    # socket: the supervisor restarts the controller, which reconnects
    lost = lambda: getattr(port, "connected", True) is False  # noqa: E731
    services = []
    if opts["secc-iface"]:
        try:  # the EV link, polled by the control loop
            from controller.iso15118 import service

            services.append(service.start(gw, opts["secc-iface"], clock.ticks_us, opts["tls-cert"], opts["tls-key"],
                                          opts["tls-ca"], opts["no-tls"]))
        except (ImportError, ValueError, OSError) as e:
            print("error: --secc-iface:", e, file=sys.stderr)
            return 2
    # what only start-up needs is freed for the run: the configuration schema, the profile
    # machinery and, on a unit that runs no update, the boot selection
    _forget("controller.config")
    _forget("controller.protection.grid_codes")
    # the meter after that: its modules and its ring's table then take the room the
    # start-up left, not more than the start-up's peak (a board's heap)
    meter = None
    if cfg["metering"]["enabled"]:  # the energy meter (controller/metering/boot.py)
        had = "controller.storage" in sys.modules
        try:
            from controller.metering.boot import attach

            meter = attach(gw, cfg, opts["data"], clock.ticks_us(), diag, create=bool(opts["secret"]))
        except (OSError, ValueError) as e:
            print("error: --data: metering:", e, file=sys.stderr)
            return 2
        except MemoryError:  # the control loop first: a heap without room for it runs without
            for name in ("controller.metering.boot", "controller.metering.diag", "controller.metering.meter",
                         "controller.metering.store", "controller.metering") + (() if had else ("controller.storage",)):
                _forget(name)
            print("warning: metering: not enough RAM on this heap (docs/metering.md); running without it",
                  file=sys.stderr)
    if selftest is None and diag is None:
        launch = None  # noqa: F841 (this frame's reference, or the module would stay)
        _forget("controller.update.launch")
    # receive only the frames the controller reads (the meter's too): on a busy bus the
    # others would cost a parse each (a board's CAN controller drops them in hardware where it can)
    gw.apply_acceptance_filter()
    hk = Housekeeping(cfg["control"]["watchdog_ms"], cfg["control"]["gc_every_bytes"], clock.ticks_us, heap_import)

    def stop():  # after every control period
        if selftest is not None and selftest.state == selftest.RUNNING:
            state = selftest.tick(clock.ticks_us())
            if state == selftest.PASSED:
                print("self-test passed: slot %d confirmed" % booted)
            elif state == selftest.FAILED:  # restart: the next boot counts another attempt
                print("self-test failed: %s; restarting" % selftest.why, file=sys.stderr)
                reset.append(0)
        return len(reset) > 0 or lost()

    stats = run(gw, port, clock, duration_us=dur, should_stop=stop, services=services, housekeeping=hk)
    for s in services:
        s.close()
        print(s.stats())
    print("ticks %d late_max_us %d overruns %d refused %d filtered %d %s"
          % (stats.ticks, stats.late_max, stats.overruns, gw.refused_total, port.rx_filtered, hk.line()))
    if diag is not None:
        diag.flush()  # a fault-memory save still under way lands before the restart
    if meter is not None:
        meter.flush()  # the registers as they are now: a planned stop loses no energy
    was_lost = lost()  # before close(): a closed socketcand port reads as lost too
    port.close()
    if was_lost:
        print("error: bus connection lost", file=sys.stderr)
        return 1
    if reset:
        # ECUReset or a failed self-test: a board restarts itself; on Linux the process exits
        # with 3 and its supervisor (systemd Restart=, a shell loop) starts it again, which
        # boots the slot the boot record selects
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
