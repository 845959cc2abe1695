"""Long work in bounded steps, so that it never stalls the control loop.

A flash erase or an image verification takes tens of milliseconds on a PC and whole
seconds on a microcontroller; run in one go inside the loop it would silence the
gateway's commands past the relay's receive timeout (dbc/relay.dbc: 50 ms) and the
relay would open the home. Such work is written as a generator: each `next()` does a
bounded piece (one erase sector, one hash chunk, a few bits of a scalar
multiplication) and the generator's return value is the result. The caller either
advances it once per poll of the loop (controller.diag.uds turns it into a step function
that answers 0x78 response-pending meanwhile) or, outside the loop, runs it to its end
with `run_to_end`.
"""


def run_to_end(gen):
    """Advance `gen` until it returns; its return value."""
    try:
        while True:
            next(gen)
    except StopIteration as e:
        return e.value
