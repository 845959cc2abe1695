"""An in-process CAN bus (MemoryBus) and its ports: the lockstep HIL's bus and the
firmware tests' scripted site. Not imported by the firmware on a board (its own
module, so that it costs a board no RAM).
"""

from controller.bus.ports import Port, check_frame


class MemoryBus:
    """An in-process CAN bus: a frame sent by one attached port reaches every other.

    Like a real bus, a sender does not receive its own frame.  Pure Python, no
    threads, so unit tests and lockstep simulations stay deterministic.
    """

    __slots__ = ("ports",)

    def __init__(self):
        self.ports = []

    def port(self, queue_len=64):
        p = MemoryPort(self, queue_len)
        self.ports.append(p)
        return p


class MemoryPort(Port):
    """A port on a MemoryBus with a bounded receive queue (a preallocated ring).

    A full receive queue drops the new frame and counts it in the *sender's*
    ``tx_dropped`` (like a CAN controller's overrun, the sender cannot tell which
    receiver missed it, so one count per lost delivery).  ``wait`` never sleeps:
    in a single-threaded run nothing can arrive while we block, so it only reports
    whether a frame is queued.
    """

    __slots__ = ("bus", "_ring", "_head", "_n", "closed")

    def __init__(self, bus, queue_len=64):
        Port.__init__(self)
        self.bus = bus
        self._ring = [None] * queue_len
        self._head = 0
        self._n = 0
        self.closed = False

    def _push(self, frame):
        if self._accept is not None and not self._passes(frame[0], frame[1]):
            return True  # filtered on arrival, like a controller's filter: no queue slot used
        ring = self._ring
        if self._n == len(ring):
            return False
        ring[(self._head + self._n) % len(ring)] = frame
        self._n += 1
        return True

    def send(self, can_id, data, extended=False):
        check_frame(can_id, data, extended)
        if self.closed:
            return self._dropped()
        frame = (can_id, bool(extended), bytes(data))
        ok = True
        for p in self.bus.ports:
            if p is not self and not p._push(frame):
                self.tx_dropped += 1
                ok = False
        self.tx_count += 1
        return ok

    def recv(self):
        if self._n == 0:
            return None
        ring = self._ring
        frame = ring[self._head]
        ring[self._head] = None
        self._head = (self._head + 1) % len(ring)
        self._n -= 1
        self.rx_count += 1
        return frame

    def pending(self):
        """Number of frames waiting in the receive queue."""
        return self._n

    def wait(self, timeout_ms):
        return self._n > 0

    def close(self):
        self.closed = True
        if self in self.bus.ports:
            self.bus.ports.remove(self)


def memory_pair(queue_len=64):
    """Two MemoryPorts joined by their own MemoryBus: what a sends, b receives and back."""
    bus = MemoryBus()
    return bus.port(queue_len), bus.port(queue_len)
