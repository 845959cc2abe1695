"""Josev's EXIficient codec (a JVM through py4j) timed on the same vectors as ours.

Runs inside Josev's own venv (it needs `iso15118` and Java): `JOSEV_PY tools/bench_josev.py
VECTORS N` prints one JSON line {"encode_us": [...], "decode_us": [...]} for the first N
vectors of each namespace. Used by tests/test_exi_vs_josev.py and docs/exi.md; kept out of
the project's own environment on purpose (Josev pins its own dependencies).
"""

import json
import sys
import time


def main(argv):
    from iso15118.shared.exificient_exi_codec import ExificientEXICodec

    path, n = argv[1], int(argv[2])
    codec = ExificientEXICodec()
    vectors = [json.loads(x) for x in open(path)]
    picked = {}
    for v in vectors:
        picked.setdefault(v["ns"], [])
        if len(picked[v["ns"]]) < n:
            picked[v["ns"]].append(v)
    enc, dec, ok = [], [], 0
    for ns, vs in picked.items():
        for v in vs:
            msg = json.dumps(v["json"])
            codec.encode(msg, ns)  # warm-up per message type
            t0 = time.perf_counter_ns()
            data = codec.encode(msg, ns)
            t1 = time.perf_counter_ns()
            codec.decode(data, ns)
            t2 = time.perf_counter_ns()
            enc.append((t1 - t0) / 1000)
            dec.append((t2 - t1) / 1000)
            ok += data.hex() == v["exi"]
    print(json.dumps({"n": len(enc), "same_bytes": ok, "encode_us": enc, "decode_us": dec,
                      "names": [v["msg"] for vs in picked.values() for v in vs]}))


if __name__ == "__main__":
    main(sys.argv)
