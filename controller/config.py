"""Controller configuration: one JSON format, validated against SCHEMA.

The schema and the checks are in controller/config_schema.py, loaded only while a
configuration is validated (at start, on a UDS write) and dropped again; this module
keeps what the running firmware reads (ConfigError, timeout_ms, constants).

Guarantees: validate() returns a complete configuration (defaults filled) or raises
ConfigError naming the key path and the problem. Unknown keys are an error, never
ignored. Values that feed a CAN signal are cross-checked against that signal's range
in the DBC (controller/bus/candb.py): a configuration the bus cannot carry is refused
at load, never discovered in the control loop. docs/configuration.md documents every
key; a test keeps the two in step.
"""

GRID_CODES = ("EN50549-1", "IEEE1547-2018-CatII", "IEEE1547-2018-CatIII", "DK-EN50549-1")
MODES = ("idle", "charge", "v2h", "v2g")
Q_MODES = ("unity_pf", "fixed_pf", "constant_q", "volt_var", "cos_phi_p")


class ConfigError(ValueError):
    """Invalid configuration; `key` is the dotted path, `problem` the reason."""

    def __init__(self, key, problem):
        super().__init__("%s: %s" % (key, problem))
        self.key = key
        self.problem = problem

    def __reduce__(self):  # CPython: picklable with both its arguments (worker processes)
        return ConfigError, (self.key, self.problem)


# the island's frequency setpoint stays within f_nom +- this while it is steered onto the
# grid for reconnection (controller/control/backup.py): GW_InverterForming must carry it
FORMING_STEER_HZ = 1.0

# and its voltage setpoint within v_nom +- this
FORMING_STEER_PU = 0.15


_TIMEOUT_FLOOR_MS = {"inverter": 50, "meter": 50, "relay": 50, "ev": 500}


def timeout_ms(cfg, section):
    """Receive timeout of an input: the configured value, or 5 cyclic periods (>= floor)."""
    sec = cfg[section]
    if sec["timeout_ms"] is not None:
        return sec["timeout_ms"]
    floor = _TIMEOUT_FLOOR_MS[section]
    period = sec.get("period_ms")
    return floor if period is None else max(floor, 5 * period)


_RULES = "controller.config_schema"


def _rules():
    """The load-time half (controller/config_schema.py: SCHEMA and the checks)."""
    import sys

    __import__(_RULES)
    return sys.modules[_RULES]


def _drop():
    """Forget the load-time half again: a board keeps the schema and the checks out of RAM
    between loads (a configuration is validated at start and on a UDS write)."""
    import sys

    if sys.implementation.name == "micropython":  # CPython (Linux side, HIL, tools) keeps it
        from controller import forget

        forget(_RULES)


def validate(override=None, base=None):
    """A complete, checked configuration from `override` on top of `base` (or defaults)."""
    try:
        return _rules().validate(override, base)
    finally:
        _drop()


def defaults():
    return validate({})


def schema():
    """The whole schema, every section loaded: {section: {key: (kind, default, a, b)}}
    (docs, tests and tools)."""
    try:
        return _rules().schema()
    finally:
        _drop()


def load(path):
    """Read and validate a JSON configuration file."""
    import json

    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        raise ConfigError(path, "cannot read: %s" % e)
    try:
        data = json.loads(text)
    except ValueError as e:
        raise ConfigError(path, "not valid JSON: %s" % e)
    return validate(data)
