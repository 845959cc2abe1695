"""python-can buses for the tools, with the socketcand handshake made reliable.

python-can's ``socketcand`` client reads the server's reply to ``< rawmode >`` with one
``recv`` and compares it to ``< ok >``.  A server in raw mode starts forwarding bus
traffic right after that reply (socketcand does, and so does ``hil.socketcand_hub``),
so on a busy bus, or when the client is slow to read, frames arrive in the same chunk
and the constructor raises ``CanError("Expected '< ok >' got: '< ok >< frame ...'")``
although the handshake succeeded.  SavvyCAN met and fixed the same race in its own
client.  ``open_bus`` retries that case only; every other error is raised at once.
"""
import time

HANDSHAKE_ATTEMPTS = 5


def _raced(exc):
    """True if exc is python-can's socketcand handshake failing on frames after '< ok >'."""
    return "got: '< ok >< frame" in str(exc) or "got: '< ok >< error" in str(exc)


def open_bus(attempts=HANDSHAKE_ATTEMPTS, connect_timeout=3.0, **kwargs):
    """``can.Bus(**kwargs)``.  For socketcand: a server that does not accept a TCP
    connection within ``connect_timeout`` s raises OSError at once (python-can would
    retry for 10 s, printing every attempt), and the handshake is retried up to
    ``attempts`` times when the rawmode reply raced with bus traffic (see above)."""
    import socket

    import can

    if kwargs.get("interface") == "socketcand":
        host, port = kwargs.get("host", "127.0.0.1"), kwargs.get("port", 29536)
        try:
            socket.create_connection((host, port), timeout=connect_timeout).close()
        except OSError as e:
            raise OSError(e.errno, "socketcand server %s:%s: %s" % (host, port, e.strerror or e)) from None
    for i in range(attempts):
        try:
            return can.Bus(**kwargs)
        except can.CanError as e:
            if kwargs.get("interface") != "socketcand" or not _raced(e) or i == attempts - 1:
                raise
            time.sleep(0.01 * (i + 1))
