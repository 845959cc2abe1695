"""Diagnostics on the site bus: UDS (ISO 14229) over ISO-TP (ISO 15765-2), fault memory.

Binds the pieces to a running Gateway without the gateway knowing UDS:
- an ISO-TP endpoint (ECU side: physical request 0x7E0, response 0x7E8, functional
  0x7DF by default) is a tap on the gateway's port: poll() hands it the frames meant
  for it;
- the UDS server answers from the gateway's live values, its configuration, the fault
  memory and, when given, the firmware updater;
- every controller event that means a fault (trip, island, input loss, refused frames,
  backup overload, relay fault) is recorded in the fault memory with a snapshot, and the
  memory is saved through `dtc_store` (an object with load() -> bytes|None and
  save(bytes); with save_steps(bytes, step), as storage.BlobStore has, in bounded steps)
  when it changed;
- configuration written over UDS is validated and stored through `config_store`
  (storage.ConfigStore, with the `config_overrides` in force) before it is accepted.
Guarantee: a malformed request gets the negative response ISO 14229 prescribes (the
server never raises); nothing here blocks the control loop: a fault-memory save erases
or writes at most SAVE_STEP_BYTES per poll(). A change during a save is saved by the
save that follows it; a cut at any byte leaves the previous or the new fault memory.
"""

from controller.diag import dtc
from controller.diag import uds
from controller.diag.isotp import IsoTp
from controller.timing import Elapsed

SAVE_STEP_BYTES = 512  # fault-memory bytes erased or programmed per poll (one step)


class Diagnostics:
    __slots__ = ("gw", "isotp", "uds", "dtcs", "store", "save_errors", "_saving", "_up", "_now")

    def __init__(self, gw, identity, secret, now, updater=None, dtc_store=None, reset=None,
                 rx_id=0x7E0, tx_id=0x7E8, functional_id=0x7DF, config_store=None, config_overrides=None):
        self.gw = gw
        self.isotp = IsoTp(gw.port.send, tx_id=tx_id, rx_id=rx_id, functional_id=functional_id)
        self.dtcs = dtc.DtcMemory()
        self.store = dtc_store
        self.save_errors = 0
        self._saving = None  # the fault-memory save in progress (a generator), or None
        if dtc_store is not None:
            data = dtc_store.load()
            if data:
                self.dtcs = dtc.DtcMemory.from_bytes(data)
        self.dtcs.new_operation_cycle()
        self._up = Elapsed()  # the operating time: right for months (a raw ticks difference wraps at ~9 min)
        self._up.restart(now)
        self._now = now
        hooks = None
        routines = {}
        if updater is not None:
            hooks = uds.UpdaterHooks(updater)
            routines = hooks.routines()
        self.uds = uds.UdsServer(identity, secret, now=now, live=uds.gateway_live(gw, self._uptime_s),
                                 config=uds.ConfigAccess(gw.cfg, config_store, config_overrides), dtcs=self.dtcs,
                                 update=hooks, routines=routines, reset=reset,
                                 # no programming or reset while the home hangs on the backup
                                 allow=self._allow)
        gw.taps.append(self)
        gw.listeners.append(self.on_event)

    def _uptime_s(self):
        return self._up.s

    def _allow(self, action):
        if action in ("program", "reset"):
            return self.gw.backup.state == 0
        return True

    # -- the gateway calls these -------------------------------------------------
    def rx_ids(self):
        """The ids ISO-TP receives on: physical and (if any) functional requests."""
        return self.isotp.rx_ids()

    def on_port_frame(self, frame, now):
        self._now = now
        return self.isotp.on_port_frame(frame, now)

    def on_event(self, code, detail, value):
        a = dtc.for_event(code, detail)
        if a is None:
            return
        code_, failed = a[0], a[1]
        if failed:
            self.dtcs.record(code_, dtc.gateway_snapshot(self.gw), self._now)
        else:
            self.dtcs.passed(code_)

    def poll(self, now):
        """Move requests and responses; keep timers; save the fault memory when it changed,
        one bounded step per poll."""
        self._now = now
        self._up.update(now)
        tp = self.isotp
        tp.poll(now)
        req = tp.recv()
        if req is not None:
            rsp = self.uds.handle(req, now, functional=tp.rx_functional)
            if rsp:
                tp.send(rsp, now)
        rsp = self.uds.poll(now)
        if rsp:
            tp.send(rsp, now)
        self.dtcs.tick(now)
        if self.store is not None:
            self._save_step()

    def _save_step(self):
        """One piece of the fault-memory save. A save starts from a snapshot of the memory
        (to_bytes) taken when it starts, and clears `changed` then: a change while it runs
        sets `changed` again, and the next save follows this one (never starves the way
        restarting on every change would under a stream of refused frames)."""
        gen = self._saving
        if gen is None:
            if not self.dtcs.changed:
                return
            self.dtcs.changed = False
            steps = getattr(self.store, "save_steps", None)
            try:
                if steps is None:  # a store without steps: one save, as before
                    self.store.save(self.dtcs.to_bytes())
                    return
                self._saving = steps(self.dtcs.to_bytes(), SAVE_STEP_BYTES)
            except (OSError, ValueError):
                self._save_failed()
                return
            return  # the snapshot was this poll's piece
        try:
            next(gen)
        except StopIteration:
            self._saving = None
        except (OSError, ValueError):
            self._save_failed()

    def _save_failed(self):
        # the previous copy on the medium stays valid; try again with the next poll
        self._saving = None
        self.save_errors += 1
        self.dtcs.changed = True

    def flush(self):
        """Finish a save in progress and save a pending change, in one go: before a
        restart (ECUReset) or a shutdown, outside the control loop."""
        if self.store is None:
            return
        give_up = self.save_errors + 3  # a medium that keeps failing: counted, not retried forever
        while (self._saving is not None or self.dtcs.changed) and self.save_errors < give_up:
            self._save_step()
