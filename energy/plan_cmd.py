"""`v2xgw energy plan --input PLAN.json --json OUT.json`: the least-cost plan of
../shared/energy/README.md (energy/plan.py).

``-`` reads the input from stdin / writes the plan to stdout. The output file holds exactly the
spec's keys (cost_dkk, slots, shortfall, solve_ms). Exit 0 with the plan; exit 2 with one line
``error: FILE: KEY: problem`` on stderr for unreadable or invalid JSON, a broken input or hard
limits no plan can meet; exit 1 when the output cannot be written or --time-limit runs out
before any plan is found.
"""

import json
import sys

from energy.cli import number

EXIT_INVALID = 2
SPEC_KEYS = ("cost_dkk", "slots", "shortfall", "solve_ms")


def _no_duplicates(pairs):
    seen = {}
    for k, v in pairs:
        if k in seen:
            raise ValueError("duplicate key %r" % k)
        seen[k] = v
    return seen


def _refuse(name, msg):
    print("error: %s: %s" % (name, msg), file=sys.stderr)
    return EXIT_INVALID


def cmd_plan(args):
    from energy import plan

    name = "<stdin>" if args.input == "-" else args.input
    try:
        if args.input == "-":
            text = sys.stdin.read()
        else:
            with open(args.input, encoding="utf-8") as f:
                text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        return _refuse(name, "cannot read: %s" % (e.strerror if isinstance(e, OSError) and e.strerror else e))
    try:
        obj = json.loads(text, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as e:
        return _refuse(name, "invalid JSON at line %d column %d: %s" % (e.lineno, e.colno, e.msg))
    except ValueError as e:  # a duplicate key
        return _refuse(name, "invalid JSON: %s" % e)
    try:
        res = plan.solve(obj, time_limit_s=args.time_limit)
    except plan.PlanInputError as e:
        return _refuse(name, str(e))
    except plan.PlanTimeout as e:
        print("error: %s: %s (--time-limit %g s)" % (name, e, args.time_limit), file=sys.stderr)
        return 1
    out = {k: res[k] for k in SPEC_KEYS}
    text = json.dumps(out, indent=1 if args.json != "-" else None) + "\n"
    if args.json == "-":
        sys.stdout.write(text)
        return 0
    try:
        with open(args.json, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as e:
        print("error: %s: cannot write: %s" % (args.json, e.strerror or e), file=sys.stderr)
        return 1
    n = len(res["slots"])
    short = res["shortfall"]
    print("plan: %d slots, cost %.2f DKK, %s, solved in %.1f ms%s -> %s" % (
        n, res["cost_dkk"],
        "no shortfall" if not short else "shortfall %.3f kWh in %d place(s) (first: slot %d, %s)" % (
            sum(s["kwh"] for s in short), len(short), short[0]["slot"], short[0]["kind"]),
        res["solve_ms"], (" (MILP%s)" % ("" if res["optimal"] else ", cut short by --time-limit: the best plan found, "
                                           "not proven least-cost")) if res["milp"] else "", args.json))
    return 0




def add_parser(esub):
    p = esub.add_parser("plan", help="the least-cost charge/discharge plan of one EV (../shared/energy/README.md)",
                        description=__doc__)
    p.add_argument("--input", required=True, metavar="PLAN.json", help="the plan input ('-': stdin)")
    p.add_argument("--json", required=True, metavar="OUT.json", help="where the plan goes ('-': stdout)")
    p.add_argument("--time-limit", type=number("a positive number of seconds", above=0.0), default=None, metavar="S",
                   help="stop the solver after S seconds with the best plan found (default: none)")
    p.set_defaults(func=cmd_plan)
