"""`v2xgw exi encode|decode --ns URI`: one item per line on stdin, one result per line on stdout.

encode: a JSON object per line -> upper-case hex of the EXI stream.
decode: hex (or the JSON string of hex) per line -> the JSON form of the message.
An item that fails gives one line `error: <reason>` in its place, so outputs stay in
step with inputs; the exit status is 1 if any item failed, 2 for a bad namespace.
"""

import json
import sys


def run(mode, ns, lines, out):
    from controller.iso15118 import exi

    failed = 0
    for line in lines:
        line = line.strip()
        if not line:
            continue
        try:
            if mode == "encode":
                out.write(exi.encode(ns, json.loads(line)).hex().upper() + "\n")
            else:
                text = line
                if text.startswith('"'):
                    text = json.loads(text)
                out.write(json.dumps(exi.decode(ns, bytes.fromhex(text)), separators=(",", ":")) + "\n")
        except (exi.ExiError, ValueError, TypeError) as e:
            failed += 1
            out.write("error: %s\n" % (str(e).replace("\n", " ") or type(e).__name__))
        out.flush()
    return 1 if failed else 0


def cmd_exi(args):
    from controller.iso15118 import exi

    if args.ns not in exi.MODULES:
        print("error: --ns: unknown namespace %r; known: %s" % (args.ns, ", ".join(sorted(exi.MODULES))),
              file=sys.stderr)
        return 2
    return run(args.mode, args.ns, sys.stdin, sys.stdout)


def add_parser(sub):
    p = sub.add_parser("exi", help="encode/decode ISO 15118-20 EXI, one item per line (stdin -> stdout)")
    p.add_argument("mode", choices=("encode", "decode"))
    p.add_argument("--ns", required=True, help="namespace URI, e.g. urn:iso:std:iso:15118:-20:DC")
    p.set_defaults(func=cmd_exi)
