"""One definite-time protection stage: a comparator and a pickup delay.

The unit behind IEEE 1547-2018 6.4.1 / 6.5.1 (UV1, UV2, OV1, OV2, UF1, UF2, OF1, OF2 with
their clearing times) and EN 50549-1:2019 4.9.3 (U<, U<<, U>, U>>, f<, f>: threshold and
operate time), in the manner of EPRI OpenDER's trip criteria: a strict comparison
feeding timing.ConditionalDelay.

Guarantees (now in ticks_us, wrap-safe):
- trips (update returns True) at the first sample at which the value has been beyond
  the threshold continuously for clearing_time_s, measured from the first sample seen
  beyond it; never earlier;
- a value equal to the threshold is not beyond it ("under" trips on value < threshold,
  "over" on value > threshold, the standards' shall-trip regions);
- a single sample back inside the threshold restarts the timing (instantaneous dropout,
  no hysteresis: neither standard specifies a reset ratio for these stages).

"Clearing time" in IEEE 1547 ends when the DER has ceased to energize, so it includes
the measurement window, this delay, the control period and the relay or inverter
opening time. Here it is modelled as the pickup delay alone; meter latency and the
opening time add on top. A site that must meet a clearing time exactly configures
clearing_time_s minus those (measured) latencies.
"""

from controller.timing import ConditionalDelay

UNDER = "under"
OVER = "over"


class TripStage:
    """update(value, now) -> True while this stage calls for a trip."""

    __slots__ = ("kind", "threshold", "clearing_time_s", "name", "source", "_over", "_delay", "picked_up",
                 "tripped")

    def __init__(self, kind, threshold, clearing_time_s, name, source):
        if kind != UNDER and kind != OVER:
            raise ValueError("kind must be 'under' or 'over', not %s" % kind)
        if clearing_time_s < 0:
            raise ValueError("clearing time must not be negative")
        self.kind = kind
        self.threshold = threshold
        self.clearing_time_s = clearing_time_s
        self.name = name
        self.source = source
        self._over = kind == OVER
        self._delay = ConditionalDelay(int(clearing_time_s * 1000000.0 + 0.5))
        self.picked_up = False
        self.tripped = False

    def beyond(self, value):
        """True if value lies in this stage's trip region (strictly beyond the threshold)."""
        if self._over:
            return value > self.threshold
        return value < self.threshold

    def update(self, value, now):
        p = value > self.threshold if self._over else value < self.threshold
        self.picked_up = p
        self.tripped = self._delay.update(p, now)
        return self.tripped

    def reset(self):
        self._delay.reset()
        self.picked_up = False
        self.tripped = False
