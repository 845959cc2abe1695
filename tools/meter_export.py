"""Metering interval records as CSV: read from a live controller over UDS or from a
storage image offline (`v2xgw diag intervals --csv OUT [--log meter.bin]`).

The CSV (a FIXED format: `v2xgw energy settle` reads it; docs/metering.md, "CSV"):

    interval_start_utc,grid_import_wh,grid_export_wh,ev_charged_wh,ev_discharged_wh,v2h_wh,v2g_wh,backup_wh,flags
    2025-01-01T06:00:00Z,854,234,582,753,495,234,0,63

one row per interval start, oldest first, ISO 8601 UTC with `Z`, integer Wh, the
record's flags as an integer (controller/metering/store.py). Records with the same start
(a restart or a clock step inside an interval makes two) are merged into one row: their
Wh added, their flags or-ed; so every start appears once and the rows are in order.
"""

import struct
import sys
import time

from controller.metering import store as st

HEADER = ("interval_start_utc", "grid_import_wh", "grid_export_wh", "ev_charged_wh", "ev_discharged_wh", "v2h_wh",
          "v2g_wh", "backup_wh", "flags")
EXIT_INVALID = 2


def utc_text(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def merge(records):
    """[(start, covered_s, flags, deltas)] -> [(start, deltas list, flags)] one per start, in order."""
    by = {}
    for start, _cov, flags, d in records:
        if start in by:
            row = by[start]
            row[0] = [a + b for a, b in zip(row[0], d)]
            row[1] |= flags
        else:
            by[start] = [list(d), flags]
    return [(s, by[s][0], by[s][1]) for s in sorted(by)]


def write_csv(records, out):
    """Write the records' CSV to the text stream `out`; returns the rows written."""
    rows = merge(records)
    out.write(",".join(HEADER) + "\n")
    for start, d, flags in rows:
        out.write("%s,%s,%d\n" % (utc_text(start), ",".join(str(x) for x in d), flags))
    return len(rows)


def records_from_image(data):
    """The records of a meter storage image (the bytes of meter.bin), read in RAM (the file
    is never written, even where a cut left a torn tail)."""
    from controller.storage import MemoryMedium

    s = st.MeterStore(MemoryMedium(data=data))
    return [st.unpack_record(p) for _q, p in s.log.records()]


def records_over_uds(client, page=64):
    """The records of a live controller: status DID 0xD210 for the oldest sequence number,
    then RoutineControl 0x0210 a page at a time (extended session)."""
    from udsoncan.services import DiagnosticSessionControl

    from controller.diag.uds import RID_METER_RECORDS
    from controller.metering.diag import DID_STATUS

    raw = client.send_request(_rdbi(DID_STATUS)).get_payload()
    n, oldest = struct.unpack(">II", raw[3:11])
    out = []
    if not n:
        return out
    client.change_session(DiagnosticSessionControl.Session.extendedDiagnosticSession)
    seq = oldest
    while True:
        r = client.start_routine(RID_METER_RECORDS, struct.pack(">IB", seq, page))
        body = r.service_data.routine_status_record
        k = body[0]
        for i in range(k):
            off = 1 + i * (4 + st.REC_LEN)
            seq = struct.unpack(">I", body[off:off + 4])[0]
            out.append(st.unpack_record(body[off + 4:off + 4 + st.REC_LEN]))
        if k < page:
            return out
        seq = (seq + 1) & 0xFFFFFFFF


def _rdbi(did):
    from udsoncan import Request
    from udsoncan.services import ReadDataByIdentifier

    return Request(ReadDataByIdentifier, data=struct.pack(">H", did))


def cmd_intervals(args, connect):
    """`v2xgw diag intervals`: --log FILE offline, else over UDS with connect(args)."""
    if args.log:
        try:
            with open(args.log, "rb") as f:
                data = f.read()
            records = records_from_image(data)
        except OSError as e:
            print(f"error: {args.log}: {e.strerror or e}", file=sys.stderr)
            return EXIT_INVALID
        except ValueError as e:
            print(f"error: {args.log}: not a meter storage image ({e})", file=sys.stderr)
            return EXIT_INVALID
    else:
        import udsoncan

        c = connect(args)
        if c is None:
            return 1
        client, bus = c
        try:
            with client:
                records = records_over_uds(client)
        except (udsoncan.exceptions.TimeoutException, udsoncan.exceptions.NegativeResponseException) as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        finally:
            bus.shutdown()
    if args.csv and args.csv != "-":
        with open(args.csv, "w") as f:
            n = write_csv(records, f)
        print(f"{n} intervals -> {args.csv}", file=sys.stderr)
    else:
        write_csv(records, sys.stdout)
    return 0
