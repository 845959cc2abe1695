"""`v2xgw csms --listen HOST:PORT`: a small OCPP 2.1 CSMS (ocpp_link.csms) for HIL tests
and demos.

Stations connect to ws://HOST:PORT/<station id> (wss:// with --tls-cert/--tls-key; with
--tls-ca a client certificate is required: security profile 3). --password ID=PW (repeat
per station) turns on HTTP Basic auth (profiles 1 and 2). One line per received message
and per answer to a pushed CALL; --log-json FILE writes every record as a JSON line (the
lines with an "answer" key are CALLs this CSMS pushed).

--script FILE (JSON, see ocpp_link/scripts/central-setpoint.json):
    {"steps": [{"after": "TransactionEvent:Started" | "BootNotification" | null,
                "delay_s": 2, "action": "SetChargingProfile", "payload": {...}}, ...]}
run from its first step for every station that connects; "$transactionId" in a payload
stands for the transaction id of the station's latest TransactionEvent Started.

Exit status: 0 after --duration or a signal; 1 if it cannot listen; 2 for bad arguments
or a bad script file (`error: FILE: steps[i].KEY: problem`).
"""

import sys

EXIT_INVALID = 2


def _listen(text):
    """(host, port) of HOST:PORT ([v6]:PORT too), or ValueError."""
    host, sep, port = text.rpartition(":")
    host = host.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError("expected HOST:PORT (port 0..65535), got %r" % text)
    return host, int(port)


def _passwords(items):
    out = {}
    for item in items or ():
        sid, sep, pw = item.partition("=")
        if not sep or not sid or not pw:
            raise ValueError("expected ID=PASSWORD, got %r" % item)
        out[sid] = pw
    return out


def _ssl_context(cert, key, ca):
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2  # OCPP 2.1 security profiles 2 and 3: TLS 1.2 or later
    ctx.load_cert_chain(cert, key)
    if ca:
        ctx.load_verify_locations(ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def add_parser(sub):
    c = sub.add_parser("csms", help="a small OCPP 2.1 CSMS (charging platform) for HIL tests and demos")
    c.add_argument("--listen", required=True, metavar="HOST:PORT", help="where stations connect (port 0: any)")
    c.add_argument("--script", metavar="FILE", help="CALLs to push to every station that connects (JSON)")
    c.add_argument("--heartbeat", type=int, default=60, metavar="S",
                   help="heartbeat interval given at boot (default 60)")
    c.add_argument("--password", action="append", metavar="ID=PW",
                   help="HTTP Basic auth password of a station (repeat per station); none: no auth")
    c.add_argument("--tls-cert", metavar="PEM", help="server certificate chain (wss://)")
    c.add_argument("--tls-key", metavar="PEM", help="server private key")
    c.add_argument("--tls-ca", metavar="PEM", help="require client certificates issued by these roots")
    c.add_argument("--log-json", metavar="FILE", help="write every record as a JSON line here")
    c.add_argument("--duration", type=float, metavar="S", help="stop after this many seconds")
    c.add_argument("--quiet", action="store_true", help="no line per received message")
    c.set_defaults(func=cmd_csms)


def _fail(msg):
    print("error: %s" % msg, file=sys.stderr)
    return EXIT_INVALID


def cmd_csms(args):
    import asyncio
    import json
    import signal
    import ssl

    from ocpp_link import csms as csms_mod

    try:
        host, port = _listen(args.listen)
    except ValueError as e:
        return _fail("--listen: %s" % e)
    try:
        passwords = _passwords(args.password)
    except ValueError as e:
        return _fail("--password: %s" % e)
    if args.heartbeat <= 0:
        return _fail("--heartbeat: expected seconds > 0")
    if args.duration is not None and not args.duration >= 0:
        return _fail("--duration: expected seconds, 0 or more")
    if bool(args.tls_cert) != bool(args.tls_key) or (args.tls_ca and not args.tls_cert):
        return _fail("--tls-cert and --tls-key go together (--tls-ca needs both)")
    ctx = None
    if args.tls_cert:
        try:
            ctx = _ssl_context(args.tls_cert, args.tls_key, args.tls_ca)
        except (OSError, ssl.SSLError) as e:
            return _fail("TLS files: %s" % e)
    steps = None
    if args.script:
        try:
            steps = csms_mod.load_script(args.script)
        except csms_mod.ScriptError as e:
            return _fail("%s: %s" % (args.script, e))
    log_file = None
    if args.log_json:
        try:
            log_file = open(args.log_json, "w", encoding="utf-8")
        except OSError as e:
            return _fail("--log-json: %s" % (e.strerror or e))

    def out(line):
        print(line, flush=True)

    server = csms_mod.Csms(host, port, heartbeat_s=args.heartbeat, basic_auth=passwords or None, ssl_context=ctx,
                           log=out, quiet=args.quiet)
    if log_file is not None:
        def write_record(kind, rec):
            log_file.write(json.dumps(rec, separators=(",", ":"), default=str) + "\n")
            log_file.flush()

        server.listeners.append(write_record)

    async def main():
        try:
            await server.start()
        except OSError as e:
            print("error: cannot listen on %s: %s" % (args.listen, e.strerror or e), file=sys.stderr)
            return 1
        out("csms: listening on %s/<station id>%s" % (server.url, " (basic auth)" if passwords else ""))
        tasks = {}
        if steps:
            def start_script(sid, link):
                old = tasks.get(sid)
                if old is not None:
                    old.cancel()
                tasks[sid] = asyncio.ensure_future(csms_mod.run_script(server, sid, steps))

            server.on_connect.append(start_script)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        handled = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, stop.set)
                handled.append(sig)
            except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or no Unix signals
                pass
        try:
            await asyncio.wait_for(stop.wait(), args.duration)
        except asyncio.TimeoutError:
            pass
        finally:
            for t in tasks.values():
                t.cancel()
            await server.stop()
            for sig in handled:
                loop.remove_signal_handler(sig)
        return 0

    try:
        return asyncio.run(main())
    finally:
        if log_file is not None:
            log_file.close()
