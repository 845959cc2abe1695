"""A two-way bridge between the HIL's in-process python-can bus and any python-can interface
(socketcan on vcan0 or can0 for a rig, a PCAN or Kvaser adapter, another virtual channel), so
that `v2xgw hil serve --interface NAME --channel CH` puts the simulated site on that bus.

Guarantees: every data frame received on one side is sent on the other once, with its id,
extended flag, DLC and data (CAN FD frames keep their flags); error frames are counted, not
forwarded (a bus's error frames belong to it); a frame the other side refuses to send (a
full TX queue, a bus-off adapter) is counted in `send_errors` and dropped, never retried in
a loop and never fatal. Frames the bridge sent are not received back by it (python-can's
buses do not receive their own transmissions unless asked to), so nothing circulates.
"""

import threading

import can


class BusBridge:
    """Forwards between `inner` (the HIL's bus) and `outer` (the external interface) in two
    threads; start() and stop() (idempotent, joins the threads)."""

    def __init__(self, inner, outer, poll_s=0.05):
        self.inner = inner
        self.outer = outer
        self.poll_s = poll_s
        self.forwarded = {"to_outer": 0, "to_inner": 0}
        self.error_frames = 0
        self.send_errors = 0
        self._stop = threading.Event()
        self._threads = []

    def _pump(self, src, dst, key):
        while not self._stop.is_set():
            try:
                msg = src.recv(timeout=self.poll_s)
            except (can.CanError, OSError, ValueError):
                self.send_errors += 1  # a receive error ends nothing: the next recv tries again
                continue
            if msg is None:
                continue
            if msg.is_error_frame:
                self.error_frames += 1
                continue
            try:
                dst.send(can.Message(arbitration_id=msg.arbitration_id, is_extended_id=msg.is_extended_id,
                                     is_remote_frame=msg.is_remote_frame, dlc=msg.dlc, data=msg.data,
                                     is_fd=msg.is_fd, bitrate_switch=msg.bitrate_switch))
                self.forwarded[key] += 1
            except (can.CanError, OSError, ValueError):
                self.send_errors += 1

    def start(self):
        for src, dst, key in ((self.inner, self.outer, "to_outer"), (self.outer, self.inner, "to_inner")):
            t = threading.Thread(target=self._pump, args=(src, dst, key), daemon=True, name="bus-bridge-" + key)
            t.start()
            self._threads.append(t)
        return self

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(2.0)
        self._threads = []
