"""The workbench side of diagnostics: udsoncan over can-isotp on any python-can bus.

`v2xgw diag`, `v2xgw flash`, `v2xgw build-image`, `v2xgw deploy`. The tester is the
independent implementation here (udsoncan, can-isotp); the ECU side is the firmware's
controller/diag/uds.py over controller/diag/isotp.py.
"""

import json
import pathlib
import struct
import subprocess
import sys

import udsoncan

ROOT = pathlib.Path(__file__).resolve().parent.parent
EXIT_INVALID = 2


def add_bus_args(p):
    p.add_argument("--interface", default="socketcand", help="python-can interface (default socketcand)")
    p.add_argument("--channel", default="vcan0")
    p.add_argument("--host", default="127.0.0.1", help="socketcand host")
    p.add_argument("--port", type=int, default=29536, help="socketcand port")
    p.add_argument("--request-id", type=lambda s: int(s, 0), default=0x7E0)
    p.add_argument("--response-id", type=lambda s: int(s, 0), default=0x7E8)
    p.add_argument("--secret-file", help="the unit's device secret (hex); default: the public HIL secret")
    p.add_argument("--timeout", type=float, default=2.0, help="P2 client timeout in seconds")


def _secret(args):
    if args.secret_file:
        return bytes.fromhex(pathlib.Path(args.secret_file).read_text().strip())
    from hil.ecu import HIL_SECRET

    return HIL_SECRET


class _LiveCodec(udsoncan.DidCodec):
    """udsoncan codec for one of the gateway's live DIDs (controller/diag/uds.py LIVE_DIDS)."""

    def __init__(self, fmt, scales):
        self.fmt = ">" + fmt
        self.scales = scales

    def encode(self, *values):
        raise NotImplementedError("live values are read-only")

    def decode(self, payload):
        raw = struct.unpack(self.fmt, payload)
        out = tuple(r / s if s != 1 else r for r, s in zip(raw, self.scales))
        return out[0] if len(out) == 1 else out

    def __len__(self):
        return struct.calcsize(self.fmt)


def _client(args):
    import logging

    import isotp
    import udsoncan
    from udsoncan.client import Client
    from udsoncan.connections import PythonIsoTpConnection

    from controller.diag import uds
    from tools.canbus import open_bus

    kw = {"interface": args.interface, "channel": args.channel}
    if args.interface == "socketcand":
        kw.update(host=args.host, port=args.port)
    bus = open_bus(**kw)
    addr = isotp.Address(isotp.AddressingMode.Normal_11bits, txid=args.request_id, rxid=args.response_id)
    # wftmax: the ECU may answer a full receive queue with FC.WAIT (can-isotp's default 0 aborts)
    stack = isotp.CanStack(bus, address=addr, params={"tx_padding": 0xCC, "wftmax": 10, "blocking_send": False})
    conn = PythonIsoTpConnection(stack)
    dids = {did: udsoncan.AsciiCodec(n) for did, (_, n) in uds.IDENTITY_DIDS.items()}
    for did, (_, fmt, scales) in uds.LIVE_DIDS.items():
        dids[did] = _LiveCodec(fmt, scales)
    secret = _secret(args)
    logging.getLogger("UdsClient").setLevel(logging.CRITICAL)  # our own messages say what failed
    config = dict(udsoncan.configs.default_client_config)
    # use_server_timing False: the server's P2 (50 ms) leaves no room for the transport to
    # this tester (socketcand over TCP, a busy host); ISO 14229-2 lets the client add it
    config.update({"data_identifiers": dids, "request_timeout": args.timeout * 3, "p2_timeout": args.timeout,
                   "use_server_timing": False,
                   "security_algo": lambda level, seed, params=None: uds.security_key(secret, seed, level),
                   "exception_on_negative_response": True})
    return Client(conn, config=config, request_timeout=args.timeout * 3), bus


def _connect(args):
    """_client(args), or None after one clear error line when the bus cannot be opened."""
    import can

    try:
        return _client(args)
    except (OSError, can.CanError) as e:
        print(f"error: cannot open the CAN bus ({args.interface}): {e}", file=sys.stderr)
        return None


def cmd_diag(args):
    import udsoncan

    from controller.diag import dtc
    from controller.diag import uds

    if args.what == "intervals":
        from tools.meter_export import cmd_intervals

        return cmd_intervals(args, _connect)
    c = _connect(args)
    if c is None:
        return 1
    client, bus = c
    out = {}
    try:
        with client:
            if args.what in ("info", "all"):
                for did, (name, _) in uds.IDENTITY_DIDS.items():
                    out[name] = client.read_data_by_identifier(did).service_data.values[did].strip()
                for did, (name, _, _) in uds.LIVE_DIDS.items():
                    try:
                        out[name] = client.read_data_by_identifier(did).service_data.values[did]
                    except udsoncan.exceptions.NegativeResponseException as e:
                        out[name] = f"NRC 0x{e.response.code:02X}"
            if args.what in ("dtc", "all"):
                r = client.get_dtc_by_status_mask(0xFF)
                out["dtcs"] = [{"dtc": dtc.text(d.id), "code": f"0x{d.id:06X}", "status": f"0x{d.status.get_byte_as_int():02X}"}
                               for d in r.service_data.dtcs]
            if args.what == "meter":
                from controller.metering.diag import DID_REGISTERS
                from controller.metering.store import NAMES

                raw = client.send_request(udsoncan.Request(udsoncan.services.ReadDataByIdentifier,
                                                           data=struct.pack(">H", DID_REGISTERS))).get_payload()
                out.update(zip(NAMES, struct.unpack(">7Q", raw[3:59])))
            if args.what == "clear":
                client.change_session(udsoncan.services.DiagnosticSessionControl.Session.extendedDiagnosticSession)
                client.clear_dtc(0xFFFFFF)
                out["cleared"] = True
    except (udsoncan.exceptions.TimeoutException, udsoncan.exceptions.NegativeResponseException) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        bus.shutdown()
    if args.json:
        print(json.dumps(out, indent=2, default=str))
    else:
        for k, v in out.items():
            if k == "dtcs":
                print(f"{'dtcs':<18} {len(v)}")
                for d in v:
                    print(f"  {d['dtc']}  {d['code']}  status {d['status']}")
            else:
                print(f"{k:<18} {v}")
    return 0


def _unlock(client, level, log, patience_s=15.0):
    """SecurityAccess; waits out the ECU's time delay (NRC 0x37, after power-up or wrong keys)."""
    import time

    end = time.monotonic() + patience_s
    while True:
        try:
            return client.unlock_security_access(level)
        except udsoncan.exceptions.NegativeResponseException as e:
            if e.response.code != 0x37 or time.monotonic() > end:
                raise
            log("  the unit asks for its security delay to pass; waiting")
            time.sleep(1.0)


def flash(client, image, log=print):
    """The programming sequence of ISO 14229 for one signed image; raises on any refusal."""
    import udsoncan
    from udsoncan import DataFormatIdentifier, MemoryLocation
    from udsoncan.services import DiagnosticSessionControl as DSC, ECUReset, RoutineControl

    from controller.diag import uds

    log("default, then extended session")
    client.change_session(DSC.Session.defaultSession)  # from wherever a previous tester left it
    client.change_session(DSC.Session.extendedDiagnosticSession)
    log("programming session")
    client.change_session(DSC.Session.programmingSession)
    log("security access (level 0x03)")
    _unlock(client, 0x03, log)
    log("erase (routine 0xFF00)")
    client.start_routine(uds.RID_ERASE_MEMORY)
    log(f"request download: {len(image)} bytes")
    r = client.request_download(MemoryLocation(0, len(image), address_format=32, memorysize_format=32),
                                dfi=DataFormatIdentifier(0, 0))
    block = r.service_data.max_length - 2
    seq = 1
    for off in range(0, len(image), block):
        client.transfer_data(seq & 0xFF, image[off:off + block])
        seq += 1
    log(f"transferred {seq - 1} blocks of up to {block} bytes")
    client.request_transfer_exit()
    log("check (routine 0xFF01)")
    client.start_routine(uds.RID_CHECK_PROGRAMMING_DEPENDENCIES)
    log("ECU reset")
    client.ecu_reset(ECUReset.ResetType.hardReset)
    return True


def cmd_flash(args):
    import udsoncan

    try:
        image = pathlib.Path(args.image).read_bytes()
    except OSError as e:
        print(f"error: image {args.image}: {e.strerror or e}", file=sys.stderr)
        return 2
    c = _connect(args)
    if c is None:
        return 1
    client, bus = c
    try:
        with client:
            flash(client, image, log=lambda m: print(m, flush=True))
    except (udsoncan.exceptions.NegativeResponseException, udsoncan.exceptions.TimeoutException) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        bus.shutdown()
    print("flashed; the unit boots the new image and confirms it after its self-test")
    return 0


def cmd_build_image(args):
    import os

    from tools import image

    argv = ["build", "--out", args.out] + (["--version", args.version] if args.version else [])
    if args.release:
        argv.append("--release")
    if args.key:
        argv += ["--key", args.key]
    elif not (args.release or os.environ.get(image.ENV_KEY_FILE) or os.environ.get(image.ENV_KEY)):
        argv.append("--dev-key")  # the workbench default: tests and the HIL (image.main warns)
    return image.main(argv)


BOARD = ROOT / "board"
TRUSTED_KEY = "controller/update/trusted_key.py"


def deploy_commands(port, src=ROOT / "controller", compiled=None, board=BOARD, trust_module=None):
    """The mpremote command lines that copy the firmware to a board: controller/ (the base
    firmware), the generated trusted-key module when given, and board/boot.py and main.py
    to the board's root (the boot flow, docs/storage-and-update.md)."""
    base = ["mpremote", "connect", port]
    tree = compiled or src
    cmds = [base + ["fs", "mkdir", ":controller"]]
    dirs = sorted({p.parent for p in tree.rglob("*") if p.is_file()} - {tree})
    for d in dirs:
        cmds.append(base + ["fs", "mkdir", ":controller/" + d.relative_to(tree).as_posix()])
    for f in sorted(p for p in tree.rglob("*") if p.is_file() and p.suffix in (".py", ".mpy")):
        rel = f.relative_to(tree).as_posix()
        if "controller/" + rel == TRUSTED_KEY or "controller/" + rel == TRUSTED_KEY[:-3] + ".mpy":
            continue  # a stray generated module in the tree: the key is given here or not at all
        cmds.append(base + ["fs", "cp", str(f), ":controller/" + rel])
    if trust_module is not None:
        cmds.append(base + ["fs", "cp", str(trust_module), ":" + TRUSTED_KEY])
    for name in ("boot.py", "main.py"):
        cmds.append(base + ["fs", "cp", str(board / name), ":" + name])
    return cmds


def cmd_deploy(args):
    import tempfile

    from tools import image

    if args.release and not args.trust:
        print("error: --release: give the release public key with --trust KEY.pub (without it the board trusts "
              "the development key)", file=sys.stderr)
        return EXIT_INVALID
    with tempfile.TemporaryDirectory() as tmp:
        trust_module = None
        if args.trust:
            try:
                pub = image.load_public_key(args.trust)
                if image.is_dev_key(pub):
                    raise image.ImageError("--trust: that is the development key, trusted without this option")
            except (OSError, image.ImageError) as e:
                print(f"error: {e}", file=sys.stderr)
                return EXIT_INVALID
            trust_module = pathlib.Path(tmp) / "trusted_key.py"
            trust_module.write_text(image.trust_module_source(pub, pathlib.Path(args.trust).name))
        cmds = deploy_commands(args.port, trust_module=trust_module)
        if args.dry_run:
            for c in cmds:
                print(" ".join(c))
            return 0
        for c in cmds:
            r = subprocess.run(c, capture_output=True, text=True)
            if r.returncode != 0 and "mkdir" not in c:  # an existing folder is fine
                print(f"error: {' '.join(c)}: {r.stderr.strip()}", file=sys.stderr)
                return 1
    key = "the key in " + args.trust if args.trust else "the DEVELOPMENT key (not for production)"
    print(f"copied controller/, boot.py and main.py to {args.port}; update images must be signed with {key}. "
          "Put the options of controller.main in :v2xgw.args and reset the board")
    return 0


def add_parsers(sub):
    d = sub.add_parser("diag", help="read identifiers, live values, fault memory and metering over UDS (udsoncan "
                                    "over can-isotp)")
    d.add_argument("what", nargs="?", default="all", choices=("all", "info", "dtc", "clear", "meter", "intervals"))
    d.add_argument("--json", action="store_true")
    d.add_argument("--csv", metavar="OUT", help="intervals: write the CSV there (default: stdout)")
    d.add_argument("--log", metavar="FILE", help="intervals: read a meter storage image (meter.bin) instead of a "
                                                 "live controller")
    add_bus_args(d)
    d.set_defaults(func=cmd_diag)
    f = sub.add_parser("flash", help="program a signed image over UDS (session, security, erase, download, check, reset)")
    f.add_argument("image")
    add_bus_args(f)
    f.set_defaults(func=cmd_flash)
    b = sub.add_parser("build-image", help="compile controller/ with mpy-cross, write the manifest, sign")
    b.add_argument("--out", required=True)
    b.add_argument("--key", help="signing key file (tools.image keygen); default: V2XGW_SIGNING_KEY_FILE or "
                                 "V2XGW_SIGNING_KEY from the environment, else the published development key")
    b.add_argument("--release", action="store_true", help="a release build: refuses the development key (exit 2)")
    b.add_argument("--version")
    b.set_defaults(func=cmd_build_image)
    p = sub.add_parser("deploy", help="copy the firmware to a MicroPython board with mpremote")
    p.add_argument("--port", required=True, help="serial port of the board, e.g. /dev/ttyACM0")
    p.add_argument("--dry-run", action="store_true", help="print the mpremote commands only")
    p.add_argument("--trust", metavar="KEY.pub", help="the public key update images must be signed with (writes "
                                                      "the generated controller/update/trusted_key.py)")
    p.add_argument("--release", action="store_true", help="refuse to deploy without --trust")
    p.set_defaults(func=cmd_deploy)
