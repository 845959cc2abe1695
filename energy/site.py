"""A home site for the year simulation: its household, EV, EV use, limits and tariff.

The documented defaults are energy/data/site-default.json (sources in docs/energy.md). A site
file holds any subset of the same keys; what it gives replaces the default (objects key by key,
lists whole). Unknown keys and out-of-range values are a SiteError naming the file and key.
"""

import copy
import json
import os

from energy import ev_use

DEFAULT_PATH = os.path.join(os.path.dirname(__file__), "data", "site-default.json")


class SiteError(ValueError):
    """A bad site file; str() is "file: key: problem"."""

    def __init__(self, where, problem):
        super().__init__(f"{where}: {problem}")
        self.where = where
        self.problem = problem


def _num(lo, hi, lo_open=False):
    def check(v):
        if not isinstance(v, (int, float)) or isinstance(v, bool) or v != v:
            return "must be a number"
        if (v <= lo if lo_open else v < lo) or v > hi:
            return f"must be in {'(' if lo_open else '['}{lo}, {hi}]"
        return None
    return check


def _bool(v):
    return None if isinstance(v, bool) else "must be true or false"


def _seed(v):
    return None if (isinstance(v, int) and not isinstance(v, bool)) or v is None else "must be an integer or null"


def _tariff(v):
    return None if v is None or (isinstance(v, str) and v) else "must be a tariff name or file, or null"


CHECKS = {
    "household": {"annual_kwh": _num(0, 100000), "heat_pump": _bool, "heat_pump_kwh": _num(0, 100000),
                  "seed": _seed},
    "ev": {"capacity_kwh": _num(0, 1000, True), "initial_soc": _num(0, 1), "max_charge_kw": _num(0, 1000),
           "max_discharge_kw": _num(0, 1000), "charge_efficiency": _num(0, 1, True),
           "discharge_efficiency": _num(0, 1, True), "min_soc": _num(0, 1)},
    "use": None,  # ev_use.check_use
    "reserve_soc": _num(0, 1),
    "wear_cost_dkk_per_kwh": _num(0, 100),
    "grid_import_limit_kw": _num(0, 10000, True),
    "grid_export_limit_kw": _num(0, 10000),
    "tariff": _tariff,
}


def default_site():
    """The documented default site (a fresh dict)."""
    with open(DEFAULT_PATH, encoding="utf-8") as f:
        return json.load(f)


def load_site(path=None):
    """The site of `path` over the defaults (the defaults alone when path is None), checked.
    SiteError names the file and the key."""
    site = default_site()
    if path is None:
        return check(site, os.path.basename(DEFAULT_PATH))
    name = os.path.basename(path)
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except OSError as e:
        raise SiteError(name, f"cannot read: {e.strerror or e}") from None
    except json.JSONDecodeError as e:
        raise SiteError(f"{name}:{e.lineno}", f"malformed JSON: {e.msg}") from None
    except UnicodeDecodeError:
        raise SiteError(name, "not a UTF-8 text file") from None
    if not isinstance(doc, dict):
        raise SiteError(name, "must be a JSON object")
    for k, v in doc.items():
        if k not in CHECKS:
            raise SiteError(f"{name}: {k}", f"unknown key (known: {', '.join(CHECKS)})")
        if isinstance(site[k], dict):
            if not isinstance(v, dict):
                raise SiteError(f"{name}: {k}", "must be an object")
            for kk, vv in v.items():
                if kk not in site[k]:
                    raise SiteError(f"{name}: {k}.{kk}", f"unknown key (known: {', '.join(site[k])})")
                site[k][kk] = copy.deepcopy(vv)
        else:
            site[k] = copy.deepcopy(v)
    return check(site, name)


def check(site, name):
    """Raise SiteError for the first bad value of a complete site; return the site."""
    for k, chk in CHECKS.items():
        if k == "use":
            errs = ev_use.check_use(site["use"], "use")
            if errs:
                key, problem = errs[0]
                raise SiteError(f"{name}: {key}", problem)
        elif isinstance(chk, dict):
            for kk, c in chk.items():
                p = c(site[k][kk])
                if p:
                    raise SiteError(f"{name}: {k}.{kk}", p)
        else:
            p = chk(site[k])
            if p:
                raise SiteError(f"{name}: {k}", p)
    ev = site["ev"]
    if ev["min_soc"] > site["reserve_soc"]:
        raise SiteError(f"{name}: reserve_soc", "must be at least ev.min_soc")
    if site["use"]["departure_soc"] < site["reserve_soc"]:
        raise SiteError(f"{name}: use.departure_soc", "must be at least reserve_soc")
    return site
