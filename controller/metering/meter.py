"""The meter: energy registers per direction and use, and interval records, in integers.

Metering(gw, cfg, store, now) attaches to a Gateway as a tap (like diagnostics): it takes
the frames only it reads (MTR_Energy, the meter's counters; EMS_Time, the wall time)
through their own input checks, and poll(now), called with every gateway poll,
integrates the powers the gateway accepted (MTR_Power, INV_Status) over the time since
the previous poll.

Registers (Wh, store.NAMES), their sources (docs/metering.md, "Registers"):
- grid import / export: deltas of MTR_Energy's counters while they arrive (wrap-safe:
  32-bit modular deltas; a delta beyond MAX_GRID_W over its span is a reset or a new
  meter and is replaced by the power integral of that span); without them the integral
  of MTR_Power (flag NO_COUNTERS);
- EV charged / discharged: the integral of INV_Status.PActual, the inverter's measured
  battery-side power: the energy into and out of the EV's battery, what its state of
  charge follows;
- V2H / V2G / backup: the discharge at the AC side (PActual times the configured
  efficiency): islanded it is backup; on the grid the part the site exports (up to the
  meter's export) is V2G, the rest served the home (V2H).

Guarantees:
- integration in integers: each held power times the time to the next poll, summed per
  register as whole W x ms plus W x us below them, the remainder below one Wh kept: a
  register is the exact integral of the sampled (held) powers rounded down to the Wh,
  however long the run; no allocation on the path of a poll (small ints on a 32-bit
  board while polls come less than 5 s apart at 200 kW: the products stay below 2**30);
- every Wh counted lands in exactly one interval record: the records of a run sum to the
  change of the registers (what a power cut loses is lost from both);
- the block is stored on every interval close and whenever a register gained
  `metering.persist_wh` since the last store: a power cut loses less than persist_wh
  (plus the last Wh's remainder) of any register; a cut at any byte of a store or an
  append keeps the old or the new state (store.py).
"""

from controller import events
from controller.bus import candb
from controller.bus.inputs import Input
from controller.clock import ticks_diff
from controller.metering import store as st

WH = 3600000  # W x ms in one Wh
MAX_GRID_W = 200000  # MTR_Power.ActivePower's range: a counter delta beyond it over its span is no energy
TIME_TOLERANCE_S = 2  # EMS_Time is whole seconds: steps within it are not corrections
GRID_IMPORT, GRID_EXPORT, EV_CHARGED, EV_DISCHARGED, V2H, V2G, BACKUP = 0, 1, 2, 3, 4, 5, 6
PINT_I, PINT_E = 7, 8  # accumulators of the grid's power integral while the counters arrive


class Metering:
    __slots__ = ("gw", "store", "interval_s", "persist_wh", "eff_pm", "energy_in", "time_in",
                 "tot", "base", "saved", "rem", "sub", "ctr_live", "ctr_i", "ctr_e", "ctr_at",
                 "origin", "secs", "sub_us", "start", "end_rel", "covered", "flags", "synced", "pending",
                 "_t", "_pg", "_pb", "_island", "_due",
                 "refused", "save_errors", "counter_resets", "records", "stores", "time_steps")

    def __init__(self, gw, cfg, store=None, now=0):
        m = cfg["metering"]
        self.gw = gw
        self.interval_s = m["interval_s"]
        self.persist_wh = m["persist_wh"]
        self.eff_pm = int(cfg["inverter"]["efficiency"] * 1000 + 0.5)
        M = candb.BY_NAME
        self.energy_in = Input(M["MTR_Energy"], M["MTR_Energy"].timeout_ms)
        self.time_in = Input(M["EMS_Time"], 0)
        self.tot = [0] * st.N
        self.base = [0] * st.N  # the registers when the open interval opened
        self.saved = [0] * st.N  # the registers in the last store
        # W x ms below one Wh per register, then the grid's power integral since the last
        # counter frame (PINT_I/PINT_E, while counters arrive); W x us below one W x ms
        self.rem = [0] * (st.N + 2)
        self.sub = [0] * (st.N + 2)
        self.ctr_live = False
        self.ctr_i = self.ctr_e = 0
        self.ctr_at = now
        self.synced = False
        self.pending = None
        self.refused = None  # why the stored state was not read (then nothing is stored)
        self.save_errors = self.counter_resets = self.records = self.stores = self.time_steps = 0
        self._t = now
        self._pg = self._pb = None
        self._island = False
        self._due = False
        self.store = store
        utc = 0
        if store is not None:
            try:
                utc = self._restore()
            except st.ForeignFormat as e:
                self.refused = str(e)
                self.store = None
        # the wall time runs from the last one known (flagged until EMS_Time arrives); the
        # seconds since `origin` stay a small int on a 32-bit board
        self.origin = utc
        self.secs = 0
        self.sub_us = 0
        self._open(utc - utc % self.interval_s, st.PARTIAL)
        gw.taps.append(self)

    # ------------------------------------------------------------ the gateway's tap
    def rx_ids(self):
        return [(self.energy_in.msg.frame_id, False), (self.time_in.msg.frame_id, False)]

    def on_port_frame(self, frame, now):
        if frame[1]:
            return False
        cid = frame[0]
        if cid == self.energy_in.msg.frame_id:
            inp = self.energy_in
        elif cid == self.time_in.msg.frame_id:
            inp = self.time_in
        else:
            return False
        self.poll(now)  # the time up to this frame, with the values before it
        reason = inp.accept(frame[2], now)
        if reason:
            self.gw.refuse(reason, cid)
        elif inp is self.energy_in:
            self._on_counters(now)
        else:
            self._on_time(inp.values["UnixTime"])
        return True

    def poll(self, now):
        """Integrate the held powers over the time since the last poll, then take the newest
        ones; close the interval at its end; store when due."""
        dt = ticks_diff(now, self._t)
        self._t = now
        if dt > 0:
            self._advance(dt)
        gw = self.gw
        to = gw.timed_out
        if to[events.IN_METER]:
            self._pg = None
            self.flags |= st.GRID_GAP
        else:
            self._pg = gw.mtr_power.values.get("ActivePower")
        if to[events.IN_INVERTER]:
            self._pb = None
            self.flags |= st.INVERTER_GAP
        else:
            self._pb = gw.inv_status.values.get("PActual")
        self._island = gw.backup.state != 0
        if self.ctr_live and self.energy_in.stale(now):
            self.ctr_live = False  # from now on the power integral; what it held since the last frame counts
        if not self.ctr_live:
            self.flags |= st.NO_COUNTERS
        if self.secs >= self.end_rel:
            self.close()
        elif self._due:
            self.save()

    def _advance(self, dt):
        s = self.sub_us + dt
        if s >= 1000000:
            k = s // 1000000
            self.secs += k
            self.covered += k
            s -= k * 1000000
        self.sub_us = s
        # p x dt in two small ints (a 32-bit board's small int ends at 2**30): whole ms and
        # the microseconds beyond them, each summed exactly per register
        ms = dt // 1000
        us = dt - ms * 1000
        pg = self._pg
        if pg is not None:
            if pg > 0:
                self._add(PINT_I, pg, ms, us)
            elif pg < 0:
                self._add(PINT_E, -pg, ms, us)
        rem = self.rem
        if not self.ctr_live:
            self._move(PINT_I, GRID_IMPORT)
            self._move(PINT_E, GRID_EXPORT)
        pb = self._pb
        if pb is not None:
            if pb > 0:
                self._add(EV_CHARGED, pb, ms, us)
            elif pb < 0:
                self._add(EV_DISCHARGED, -pb, ms, us)
                ac = -pb * self.eff_pm // 1000
                if self._island:
                    self._add(BACKUP, ac, ms, us)
                else:
                    x = -pg if pg is not None and pg < 0 else 0
                    g = ac if ac < x else x
                    self._add(V2G, g, ms, us)
                    self._add(V2H, ac - g, ms, us)
        tot = self.tot
        for i in range(st.N):
            r = rem[i]
            if r >= WH:
                q = r // WH
                rem[i] = r - q * WH
                tot[i] += q
                if tot[i] - self.saved[i] >= self.persist_wh:
                    self._due = True

    def _add(self, i, w, ms, us):
        """w watts for ms milliseconds plus us microseconds on accumulator i."""
        x = self.sub[i] + w * us
        if x >= 1000:
            q = x // 1000
            x -= q * 1000
            self.rem[i] += q
        self.sub[i] = x
        self.rem[i] += w * ms

    def _move(self, src, dst):
        """Accumulator src onto dst (the grid integral onto the grid registers)."""
        rem = self.rem
        sub = self.sub
        x = sub[dst] + sub[src]
        if x >= 1000:
            x -= 1000
            rem[dst] += 1
        sub[dst] = x
        rem[dst] += rem[src]
        rem[src] = sub[src] = 0

    def _on_counters(self, now):
        v = self.energy_in.values
        ci = v["EnergyImport"]
        ce = v["EnergyExport"]
        if self.ctr_live:
            di = (ci - self.ctr_i) & 0xFFFFFFFF
            de = (ce - self.ctr_e) & 0xFFFFFFFF
            bound = MAX_GRID_W * (ticks_diff(now, self.ctr_at) // 1000) // WH + 2
            if di <= bound and de <= bound:
                self.tot[GRID_IMPORT] += di
                self.tot[GRID_EXPORT] += de
            else:  # a reset or another meter: this span from the power integral
                self.counter_resets += 1
                self.flags |= st.NO_COUNTERS
                self._move(PINT_I, GRID_IMPORT)
                self._move(PINT_E, GRID_EXPORT)
                self._carry(GRID_IMPORT)
                self._carry(GRID_EXPORT)
            self.rem[PINT_I] = self.rem[PINT_E] = self.sub[PINT_I] = self.sub[PINT_E] = 0
            for i in (GRID_IMPORT, GRID_EXPORT):
                if self.tot[i] - self.saved[i] >= self.persist_wh:
                    self._due = True
        # else the first frame (or the first after a silence): a reference; the energy
        # before it was integrated from the power already
        self.ctr_i = ci
        self.ctr_e = ce
        self.ctr_at = now
        self.ctr_live = True

    def _carry(self, i):
        r = self.rem[i]
        q = r // WH
        self.rem[i] = r - q * WH
        self.tot[i] += q

    # ------------------------------------------------------------ wall time
    @property
    def utc(self):
        """The wall time now, UTC seconds (an estimate until synchronised)."""
        return self.origin + self.secs

    def _on_time(self, t):
        d = t - self.utc
        if self.synced and -TIME_TOLERANCE_S <= d <= TIME_TOLERANCE_S:
            return  # whole seconds on the bus: no correction within the tolerance
        first = not self.synced
        self.synced = True
        self.time_steps += 1
        end = self.start + self.interval_s
        self.origin = t
        self.secs = 0
        self.sub_us = 0
        if first and -TIME_TOLERANCE_S <= d <= TIME_TOLERANCE_S:
            self.end_rel = end - t
            return
        self.flags |= st.CLOCK_ADJUSTED
        start = t - t % self.interval_s
        if start != self.start:
            # the open interval now lies in another span: it takes that span's start and
            # covers it only in part
            self.start = start
            self.flags |= st.PARTIAL
            end = start + self.interval_s
        self.end_rel = end - t

    # ------------------------------------------------------------ intervals and storage
    def _open(self, start, flags):
        self.start = start
        self.end_rel = start + self.interval_s - self.origin
        self.covered = 0
        if not self.synced:
            flags |= st.NOT_SYNCED
        if not self.ctr_live:
            flags |= st.NO_COUNTERS
        if self._pg is None:  # a measurement missing now (or not yet seen since the start)
            flags |= st.GRID_GAP
        if self._pb is None:
            flags |= st.INVERTER_GAP
        self.flags = flags
        b = self.base
        t = self.tot
        for i in range(st.N):
            b[i] = t[i]

    def deltas(self):
        """The open interval's energy so far, Wh per register."""
        return [self.tot[i] - self.base[i] for i in range(st.N)]

    def close(self):
        """Close the open interval: its record goes to the block (stored first) and then
        to the ring; the next interval opens where it ended."""
        rec = st.pack_record(self.start, self.covered if self.covered < 0xFFFF else 0xFFFF, self.flags,
                             self.deltas())
        self._open(self.start + self.interval_s, 0)
        self.pending = rec
        self.records += 1
        if self.save():
            try:
                self.store.append(rec)
            except OSError:
                self.save_errors += 1
        return rec

    def save(self):
        """Store the block now; True when stored."""
        self._due = False
        if self.store is None:
            return False
        b = st.Block()
        b.utc = self.utc
        b.start = self.start
        b.covered = self.covered if self.covered < 0xFFFF else 0xFFFF
        b.flags = self.flags
        b.totals = self.tot
        b.deltas = self.deltas()
        b.pending = self.pending
        try:
            self.store.store(b)
        except OSError:
            self.save_errors += 1
            return False
        s = self.saved
        for i in range(st.N):
            s[i] = self.tot[i]
        self.stores += 1
        return True

    def _restore(self):
        """The stored state: the registers, the last closed record appended if a cut came
        before its append, the interval open at the cut closed as a partial record.
        Returns the wall time of the last store."""
        store = self.store
        b = store.load()
        if b is None:
            return 0
        if b.pending is not None and store.newest() != b.pending:
            store.append(b.pending)
        for i in range(st.N):
            self.tot[i] = self.saved[i] = b.totals[i]
            self.base[i] = b.totals[i] - b.deltas[i]
        self.pending = b.pending
        self.start = b.start
        self.covered = b.covered
        self.flags = b.flags | st.PARTIAL
        self.origin = b.utc
        self.secs = 0
        if b.covered or self.deltas() != [0] * st.N:
            self.close()
        return b.utc

    def flush(self):
        """Store the registers before a planned stop (the open interval stays open)."""
        return self.save()

    def totals(self):
        """{register name: Wh}."""
        return dict(zip(st.NAMES, self.tot))
