"""What keeps the firmware alive for months: the watchdog and garbage collection, both at
one chosen point of the control period (right after the tick has sent its commands).

- Watchdog: fed after every completed tick, so a loop that stops ticking (a hang, an
  endless wait, an exception swallowed somewhere) resets the board. On a board it is
  machine.WDT (the timeout cannot be changed once started, nor the watchdog stopped);
  on Linux under systemd with WatchdogSec=, the same feed is a WATCHDOG=1 notification
  on $NOTIFY_SOCKET (sd_notify(3)); elsewhere there is none, and `watchdog` says so.
- Garbage collection: MicroPython collects by itself when an allocation does not fit,
  which can fall in the middle of the fast path. Here it collects at the chosen point
  once `gc_every_bytes` have been allocated since the last collection (0: every
  period), and moves the automatic collection's threshold beyond that, so that the
  automatic one only runs as a backstop. CPython frees by reference counting and needs
  none of this (`gc_mode` is "none" there).
- Figures for `v2xgw bench` and the controller's closing line: heap in use after
  import, its high-water mark, bytes allocated per period, collections and the longest.
"""

import sys

from controller.clock import ticks_diff


class Housekeeping:
    __slots__ = ("wdt", "watchdog", "_notify", "_notify_every", "_notified", "gc", "gc_mode", "every",
                 "heap_import", "heap_max", "allocated", "periods", "collections", "gc_max_us", "_base", "_ticks_us",
                 "_counted")

    def __init__(self, watchdog_ms, gc_every_bytes, ticks_us, heap_import=None):
        """watchdog_ms 0: no watchdog. ticks_us: the clock (to time the collections)."""
        self._ticks_us = ticks_us
        self.wdt = None
        self._notify = None
        self._notify_every = 0
        self._notified = None
        self.watchdog = "off"
        if watchdog_ms:
            self._start_watchdog(watchdog_ms)
        self.every = gc_every_bytes
        self.collections = 0
        self.gc_max_us = 0
        self.periods = 0
        self.allocated = 0
        self._counted = 0  # periods up to the last collection (what `allocated` covers)
        self.heap_import = heap_import
        self.heap_max = 0
        self._base = 0
        try:
            import gc

            gc.mem_alloc  # noqa: B018 (MicroPython's heap statistics; CPython has none)
        except (ImportError, AttributeError):
            self.gc = None
            self.gc_mode = "none"
            return
        self.gc = gc
        self.gc_mode = "chosen point"
        gc.collect()
        if self.heap_import is None:
            self.heap_import = gc.mem_alloc()
        if hasattr(gc, "threshold"):
            # the automatic collection only as a backstop: well beyond our own budget
            gc.threshold((gc_every_bytes if gc_every_bytes > 0 else 2048) * 4)
        self._base = gc.mem_alloc()
        self.heap_max = self._base

    def _start_watchdog(self, ms):
        try:
            import machine

            self.wdt = machine.WDT(timeout=ms)
            self.watchdog = "machine.WDT %d ms" % ms
            return
        except (ImportError, AttributeError, ValueError, OSError):
            pass
        if sys.platform == "linux":
            try:
                import os

                path = os.getenv("NOTIFY_SOCKET")
                usec = os.getenv("WATCHDOG_USEC")
            except (ImportError, AttributeError):
                path = usec = None
            if path and usec:
                self._notify = path
                # notify twice per watchdog period, as sd_watchdog_enabled(3) advises
                self._notify_every = int(usec) // 2
                self.watchdog = "systemd %d ms" % (int(usec) // 1000)
                return
        self.watchdog = "none on this platform"

    def _sd_notify(self, now):
        if self._notified is not None and ticks_diff(now, self._notified) < self._notify_every:
            return
        self._notified = now
        try:
            import socket

            path = self._notify
            if path[0] == "@":
                path = "\0" + path[1:]  # abstract namespace
            s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            try:
                s.sendto(b"WATCHDOG=1", path)
            finally:
                s.close()
        except (ImportError, AttributeError, OSError):
            pass  # the supervisor will see the silence and act; nothing to do here

    def after_tick(self, now):
        """Call once per completed tick: feed the watchdog, collect when due."""
        if self.wdt is not None:
            self.wdt.feed()
        elif self._notify is not None:
            self._sd_notify(now)
        gc = self.gc
        if gc is None:
            return
        self.periods += 1
        used = gc.mem_alloc()
        if used > self.heap_max:
            self.heap_max = used
        if used - self._base >= self.every:
            self.allocated += used - self._base
            self._counted = self.periods
            t0 = self._ticks_us()
            gc.collect()
            d = ticks_diff(self._ticks_us(), t0)
            self.collections += 1
            if d > self.gc_max_us:
                self.gc_max_us = d
            self._base = gc.mem_alloc()

    def per_period(self):
        """Bytes allocated per period, averaged over the periods up to the last collection."""
        return self.allocated // self._counted if self._counted else 0

    def line(self):
        """The figures for the controller's closing line."""
        if self.gc is None:
            return "heap n/a (%s) watchdog %s" % (self.gc_mode, self.watchdog)
        return ("heap_import %d heap_max %d alloc_per_period %d gc %d gc_max_us %d watchdog %s"
                % (self.heap_import, self.heap_max, self.per_period(), self.collections, self.gc_max_us,
                   self.watchdog))
