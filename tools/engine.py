"""Where independent tasks run: in this process, on K local worker processes, or on Ray.

`v2xgw energy fleet` and `v2xgw hil campaign` (with `hil matrix` and `hil soak` on it) hand
their tasks to an Engine and get each result back as it ends, with the index of its item.
Guarantees:
- the function and its results are the same whichever engine runs them, so a caller that
  reduces results by index (or with an order-independent sum) gets the same numbers with
  `--workers 1`, `--workers 2` and `--ray auto`;
- at most `in_flight` tasks are out at once, so results are reduced as they come and no
  process holds every task's output;
- an engine that cannot be reached is an EngineError raised within `connect_timeout_s` (a
  closed port at once; an open port that is not Ray after the timeout), never a hang.

Ray (https://docs.ray.io) is optional (`pip install 'v2x-gateway[ray]'`): imported only when
`--ray` is given. `--ray auto` starts a local Ray for this run (or joins the one RAY_ADDRESS
names); `--ray HOST:PORT` or `--ray ray://HOST:PORT` joins a running cluster (docs/fleet.md,
"On a Ray cluster").
"""

import os
import socket
import subprocess
import sys
import time

RAY_TIMEOUT_ENV = "V2XGW_RAY_TIMEOUT_S"  # how long ray.init may take (default 60 s)


class EngineError(RuntimeError):
    """An engine that cannot be started or reached; str() says which and why."""


def _check_workers(workers):
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise ValueError("--workers must be at least 1, got %r" % (workers,))


class Engine:
    """Runs fn(item) for each item; results as (index, result) in the order they end.

    workers: local processes (None: one per CPU, capped at the number of items; 1: in this
    process, no pool); ray: None, "auto" or a cluster address."""

    def __init__(self, workers=None, ray=None):
        _check_workers(workers)
        if ray is not None and workers is not None:
            raise ValueError("--workers and --ray exclude each other")
        self.workers = workers
        self.ray_address = ray
        self._ray = None

    def local_workers(self, n_items):
        """The local processes a run of n_items uses: --workers, else one per CPU, at most one
        per item (1: in this process)."""
        return self.workers or max(1, min(n_items, os.cpu_count() or 1))

    def describe(self, n_items=None):
        """What ran (or runs) the tasks, for a report: {"engine", "workers"[, "address"]};
        for local processes the count a run of n_items uses (n_items None: one per CPU)."""
        if self.ray_address is not None:
            out = {"engine": "ray", "address": self.ray_address}
            if self._ray is not None:
                out["workers"] = int(self._ray.cluster_resources().get("CPU", 0))
            return out
        w = self.local_workers(n_items if n_items is not None else (os.cpu_count() or 1))
        return {"engine": "processes" if w > 1 else "in-process", "workers": w}

    # ------------------------------------------------------------------ Ray
    def start(self):
        """Connect to (or start) Ray when asked; a no-op for local processes. EngineError when
        Ray is missing or cannot be reached."""
        if self.ray_address is None or self._ray is not None:
            return self
        try:
            import ray
        except ImportError:
            raise EngineError("--ray: Ray is not installed (pip install 'v2x-gateway[ray]')") from None
        addr = self.ray_address
        kw = dict(log_to_driver=False, include_dashboard=False, configure_logging=False)
        if addr == "auto":
            if not os.environ.get("RAY_ADDRESS"):
                kw["address"] = "local"  # a new local Ray for this run, not a stale one
        else:
            _probe(addr)
            kw["address"] = addr
        if addr != "auto":
            _probe_ray(addr, float(os.environ.get(RAY_TIMEOUT_ENV, "60")))
        try:
            ray.init(**kw)  # in the main thread: Ray's start-up does not work from another
        except Exception as e:
            raise EngineError("--ray %s: %s" % (addr, (str(e).splitlines() or [type(e).__name__])[0])) from None
        self._ray = ray
        return self

    def close(self):
        if self._ray is not None:
            self._ray.shutdown()
            self._ray = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------------ running
    def run(self, fn, items, in_flight=None):
        """Yield (index, fn(items[index])) as each task ends. fn must be a module-level
        function (it is pickled to the workers); an exception in fn propagates."""
        items = list(items)
        if not items:
            return
        if self.ray_address is not None:
            self.start()
            yield from self._run_ray(fn, items, in_flight)
            return
        workers = self.local_workers(len(items))
        if workers <= 1:
            for i, it in enumerate(items):
                yield i, fn(it)
            return
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
        limit = in_flight or 2 * workers
        with ProcessPoolExecutor(max_workers=min(workers, len(items))) as ex:
            pending = {}
            nxt = 0
            while nxt < len(items) or pending:
                while nxt < len(items) and len(pending) < limit:
                    pending[ex.submit(fn, items[nxt])] = nxt
                    nxt += 1
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in sorted(done, key=lambda f: pending[f]):
                    yield pending.pop(fut), fut.result()

    def _run_ray(self, fn, items, in_flight):
        ray = self._ray
        remote = ray.remote(fn)
        limit = in_flight or max(2, 2 * int(ray.cluster_resources().get("CPU", 1)))
        pending = {}
        nxt = 0
        while nxt < len(items) or pending:
            while nxt < len(items) and len(pending) < limit:
                pending[remote.remote(items[nxt])] = nxt
                nxt += 1
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                yield pending.pop(ref), ray.get(ref)


def open_engine(workers, ray):
    """(the started Engine that --workers / --ray ask for, None) or (None, exit code) after one
    line "error: ..." on stderr: 2 for a value that is no engine (--ray with no HOST:PORT), 1
    for a Ray that is not installed or cannot be reached. Every command with these options
    opens its engine here."""
    try:
        return Engine(workers=workers, ray=ray).start(), None
    except ValueError as e:
        print("error: %s" % e, file=sys.stderr)
        return None, 2
    except EngineError as e:
        print("error: %s" % e, file=sys.stderr)
        return None, 1


def _probe(addr, timeout_s=5.0):
    """Refuse at once an address that nothing listens on (ray.init would wait for minutes)."""
    hp = addr.split("://", 1)[-1]
    host, _, port = hp.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError("--ray: %r is not auto, HOST:PORT or ray://HOST:PORT" % addr)
    t0 = time.monotonic()
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as e:
        raise EngineError("--ray %s: cannot reach %s:%s (%s after %.1f s)" % (
            addr, host, port, e.strerror or type(e).__name__, time.monotonic() - t0)) from None


def _probe_ray(addr, timeout_s):
    """Join the cluster once in a child process that is killed after timeout_s: ray.init on an
    address that accepts TCP but is not Ray waits far longer, and cannot be interrupted."""
    code = "import ray; ray.init(address=%r, log_to_driver=False); ray.shutdown()" % addr
    try:
        p = subprocess.run([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise EngineError("--ray %s: no Ray cluster answered within %g s" % (addr, timeout_s)) from None
    if p.returncode != 0:
        lines = [ln for ln in p.stderr.decode(errors="replace").splitlines() if ln.strip()]
        raise EngineError("--ray %s: cannot join: %s" % (addr, lines[-1] if lines else "exit %d" % p.returncode))


def add_arguments(parser):
    """--workers K | --ray ADDRESS|auto on an argparse parser (mutually exclusive)."""
    g = parser.add_mutually_exclusive_group()
    g.add_argument("--workers", type=_positive, metavar="K",
                   help="local worker processes (default: one per CPU; 1 runs in this process)")
    g.add_argument("--ray", metavar="ADDRESS", help="run on Ray: auto (a local Ray) or a cluster's HOST:PORT / "
                                                  "ray://HOST:PORT (pip install 'v2x-gateway[ray]')")


def _positive(text):
    import argparse
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not a whole number" % text) from None
    if v < 1:
        raise argparse.ArgumentTypeError("must be at least 1, got %d" % v)
    return v
