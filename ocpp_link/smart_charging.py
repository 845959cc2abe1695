"""The charging station's charging-profile store and scheduler: OCPP 2.1 functional block K
(smart charging), with the V2X operation modes of block Q, for a home V2X gateway with ONE EVSE.

Pure computation: no I/O, no clock, no asyncio. The caller passes the time (`now_s`, UTC seconds)
and the running transaction; the only file ever read is the `ocpp` library's own JSON schema
(once, through `ocpp.messages.get_validator`).

Data convention. Profiles come in as the `ocpp` library hands them to a handler: snake_case dicts
(`camel_to_snake_case` of the wire JSON). Everything that goes back on the wire (the composite
schedule, the reported profiles) is a snake_case dict too, guaranteed to become a schema-valid
camelCase payload through the library's `snake_to_camel_case`. A profile whose keys would not
survive that way back (per-phase values `limit_L2`... and `limitAtSoC.soc`, which the library
turns into `limitL2` and `SoC`) is refused with UnsupportedParam instead of being stored in a form
that could not be reported.

Power convention (OCPP 2.1): positive = charging the EV, negative = discharging; `limit` >= 0 is
the maximum charge, `discharge_limit` <= 0 the maximum discharge, `setpoint` is signed. The
station works in W: chargingRateUnit "A" is converted as
A * nominal_voltage_v * min(period.number_phases or phases, phases). `v2x_baseline` and the points
of `v2x_freq_watt_curve` are in W whatever the unit (the schema gives the curve in W and the
baseline is added to it).

What is accepted (SetChargingProfile, OCPP 2.1 Part 2 use case K01), each refusal with the
StatusInfo.reasonCode named in REASONS:
- evseId 0 (the whole station) and 1 (the one EVSE); any other: UnknownEvse.
- purposes ChargingStationMaxProfile (evse 0 only; not Relative: a station limit has no
  transaction to be relative to; Dynamic is allowed, so a grid operator can steer the connection
  limit with UpdateDynamicSchedule), TxDefaultProfile (evse 0 = every EVSE, or evse 1) and
  TxProfile (evse 1, for the running transaction only: TxNotFound otherwise).
  ChargingStationExternalConstraints (set by an external actor, never by the CSMS),
  PriorityCharging and LocalGeneration: UnsupportedPurpose.
- kinds Absolute and Recurring (both need startSchedule; Recurring needs recurrencyKind), Relative
  (no startSchedule; counted from the start of the transaction, so it is in force only while one
  runs), Dynamic (exactly one period, whose values UpdateDynamicSchedule replaces; starts at
  startSchedule if given, else when received).
- ONE chargingSchedule per profile. The schema allows up to three, for an ISO 15118 EV to choose
  from; this station does not offer that choice, so more than one is TooManyElements rather than
  silently following the first.
- operation modes SUPPORTED_MODES; CentralFrequency needs AFRRSignal streaming and is refused
  (InvalidOperationMode), as is any mode but ChargingOnly on a ChargingStationMaxProfile (a
  station limit carries limits, the mode comes from the transaction's profile). On a
  ChargingStationMaxProfile an absent operationMode means "limits only" (its dischargeLimit
  bounds export; a setpoint or curve on it is not used); on Tx profiles it means ChargingOnly,
  as the schema says.
- values beyond the station's rating are ACCEPTED and clamped where they are used (command(),
  composite()): the CSMS may not know the rating, and a limit above it is simply not binding.
- not acted on and so refused with UnsupportedParam: per-phase values, phaseToUse, limitAtSoC,
  useLocalTime = true, randomizedDelay > 0. Price/tariff elements are stored and reported but not
  used.
- DuplicateProfile: another profile (different id) with the same purpose and stackLevel, on the
  same EVSE (TxDefaultProfiles on evse 0 and evse 1 clash with each other, since the evse 0 one
  applies to evse 1 too; TxProfiles clash within the same transaction), whose validity period
  (validFrom..validTo) overlaps. A profile with the id of a stored one replaces it.
- a full store (max_profiles): OutOfStorage. Profiles of one purpose accepted faster than
  min_set_interval_s apart (when set > 0): RateLimitExceeded.

Composition (the composite schedule, OCPP 2.1 K "GetCompositeSchedule"), at each instant t, for
the EVSE: the Tx profile in force with the HIGHEST stackLevel, looked for first among TxProfiles
of the running transaction, then TxDefaultProfiles on evse 1, then on evse 0, gives the
operation mode, setpoint, baseline and curve. "In force" means: within validFrom..validTo, the
schedule started (startSchedule, recurrence, or transaction start) and not past its duration, and
not invalidated by an offline period longer than maxOfflineDuration. Its limit and discharge
limit are combined with the ChargingStationMaxProfile in force with the highest stackLevel by
taking the tighter of each, and with the station's rating; a period without limit means the
rating. The setpoint is clamped into the result. Idle: setpoint 0, both limits 0. ChargingOnly:
discharge limit 0. With no Tx profile in force the mode is None (the station's local behaviour),
still under the Max profile's limits. evseId 0 of GetCompositeSchedule (the grid connection)
gets the same schedule as evse 1: that EVSE is the connection's only consumer.
"""

import bisect
import copy
import math
from datetime import datetime, timezone

from ocpp.charge_point import snake_to_camel_case
from ocpp.messages import MessageType, get_validator

# StatusInfo.reasonCode values this module returns (OCPP 2.1 Part 2, appendix "reason codes").
REASONS = (
    "DuplicateProfile",      # same purpose + stackLevel + EVSE, overlapping validity
    "InvalidOperationMode",  # mode unknown, not supported here, or not allowed for the purpose
    "InvalidProfile",        # malformed profile, or a purpose/EVSE/kind combination K01 forbids
    "InvalidSchedule",       # malformed chargingSchedule or period
    "InvalidStackLevel",     # stackLevel < 0 or above max_stack_level
    "InvalidValue",          # a value of the wrong sign, not finite, a bad date, ...
    "NoFreqWattCurve",       # LocalFrequency period without v2xFreqWattCurve
    "NotFound",              # UpdateDynamicSchedule for a profile id not stored
    "OutOfStorage",          # max_profiles reached
    "RateLimitExceeded",     # same purpose again within min_set_interval_s
    "TooManyElements",       # more than one chargingSchedule, more than max_periods periods
    "TxNotFound",            # TxProfile without, or for another than, the running transaction
    "UnknownEvse",           # evseId other than 0 and 1
    "UnsupportedKind",       # chargingProfileKind outside the four kinds
    "UnsupportedParam",      # a field this station does not act on (see the module docstring)
    "UnsupportedPurpose",    # ExternalConstraints, PriorityCharging, LocalGeneration
    "UnsupportedRateUnit",   # chargingRateUnit other than W and A
    "ValueOutOfRange",       # numberPhases outside 1..3; composite() duration < 0
)

SUPPORTED_MODES = ("ChargingOnly", "CentralSetpoint", "ExternalSetpoint", "ExternalLimits", "LocalFrequency",
                   "LocalLoadBalancing", "Idle")
ALL_MODES = SUPPORTED_MODES + ("CentralFrequency",)

PURPOSES = ("ChargingStationMaxProfile", "TxDefaultProfile", "TxProfile")
UNSUPPORTED_PURPOSES = ("ChargingStationExternalConstraints", "PriorityCharging", "LocalGeneration")
KINDS = ("Absolute", "Recurring", "Relative", "Dynamic")
RECURRENCE_S = {"Daily": 86400.0, "Weekly": 7 * 86400.0}
UPDATE_KEYS = ("limit", "discharge_limit", "setpoint", "setpoint_reactive")

INF = float("inf")
_MAX_COMPOSITE_STEPS = 20000  # bounds composite() for any duration; see composite()


class ProfileError(ValueError):
    """A request that cannot be served; `reason` is one of REASONS."""

    def __init__(self, reason, info):
        ValueError.__init__(self, reason + ": " + info)
        self.reason = reason
        self.info = info


def parse_time(text):
    """UTC seconds of an RFC 3339 date-time ("Z" or an offset; no offset is taken as UTC).
    Raises ValueError for anything else."""
    if not isinstance(text, str):
        raise ValueError("not a date-time string: %r" % (text,))
    d = datetime.fromisoformat(text.strip())
    if d.tzinfo is None:
        d = d.replace(tzinfo=timezone.utc)
    return d.timestamp()


def format_time(ts):
    """RFC 3339 UTC ("...Z") of UTC seconds; milliseconds only when ts is not whole."""
    d = datetime.fromtimestamp(ts, timezone.utc)
    spec = "seconds" if float(ts).is_integer() else "milliseconds"
    return d.isoformat(timespec=spec).replace("+00:00", "Z")


def _is_num(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _is_int(x):
    return isinstance(x, int) and not isinstance(x, bool)


def _clean(x):
    """A number for the wire: 3 decimals, never -0.0."""
    x = round(float(x), 3)
    return 0.0 if x == 0 else x


class Command:
    """What the EVSE must do now, in W (positive = charge).

    mode: one of SUPPORTED_MODES, or None when no Tx profile is in force (local behaviour).
    setpoint_w: signed W, or None; when set it lies within [-discharge_limit_w, limit_w].
    limit_w: max charge W >= 0, or None when no profile at all is in force.
    discharge_limit_w: max discharge as a POSITIVE magnitude W, or None likewise.
    freq_curve: [(hz, w), ...] for LocalFrequency, else None; the points are clamped so that
      baseline_w (or 0) + the curve, interpolated anywhere between its points, stays within the limits.
    baseline_w: v2x_baseline in W (clamped into the limits), or None.
    reactive_var: setpoint_reactive (W or var, converted like the setpoint), or None.
    until_s: UTC s at which this command may stop holding (the next period or profile boundary,
      validTo, an offline cut-off, a Dynamic profile's next update time), or None if never.
    profile_id, stack_level: of the profile that gives the mode, or of the ChargingStationMaxProfile
      when only that one is in force; None when none is.
    """

    __slots__ = ("mode", "setpoint_w", "limit_w", "discharge_limit_w", "freq_curve", "baseline_w", "reactive_var",
                 "until_s", "profile_id", "stack_level")

    def __init__(self, **kw):
        for name in self.__slots__:
            setattr(self, name, kw.pop(name, None))
        if kw:
            raise TypeError("unknown Command fields: %s" % sorted(kw))

    def as_dict(self):
        return {name: getattr(self, name) for name in self.__slots__}

    def __eq__(self, other):
        return isinstance(other, Command) and self.as_dict() == other.as_dict()

    def __repr__(self):
        return "Command(%s)" % ", ".join("%s=%r" % (k, v) for k, v in self.as_dict().items() if v is not None)


class _Period:
    """One chargingSchedulePeriod, in W; discharge as a magnitude."""

    __slots__ = ("start", "limit", "discharge", "setpoint", "reactive", "mode", "curve", "baseline", "phases")


class _Entry:
    """A stored profile: the dict as received (what get() reports) plus its parsed form."""

    __slots__ = ("evse_id", "profile", "id", "purpose", "stack", "kind", "rec_period", "valid_from", "valid_to",
                 "start", "duration", "unit", "periods", "starts", "tx_id", "max_offline", "invalid_after",
                 "dyn_interval", "dyn_time")


class _Reject(Exception):
    def __init__(self, reason, info):
        Exception.__init__(self, reason, info)
        self.reason = reason
        self.info = info


class ProfileStore:
    """The station's charging profiles and what they make the EVSE do (see the module docstring).

    rated_charge_w / rated_discharge_w: the EVSE's rating (both positive magnitudes); every value
    command() and composite() give lies within it. nominal_voltage_v and phases convert A to W.
    max_profiles: store size. max_periods: periods per schedule. freq_curve_points: (min, max)
    points of a v2xFreqWattCurve the firmware takes. max_stack_level: highest stackLevel accepted.
    min_set_interval_s: when > 0, the least time between two accepted profiles of one purpose.

    Refusals are counted in `rejected` (reason -> count).
    """

    def __init__(self, rated_charge_w, rated_discharge_w, nominal_voltage_v=230.0, phases=3, max_profiles=32,
                 max_periods=1024, freq_curve_points=(2, 8), max_stack_level=99, min_set_interval_s=0.0):
        if not (_is_num(rated_charge_w) and rated_charge_w >= 0 and _is_num(rated_discharge_w)
                and rated_discharge_w >= 0):
            raise ValueError("ratings must be numbers >= 0 (W)")
        if not (_is_num(nominal_voltage_v) and nominal_voltage_v > 0 and _is_int(phases) and 1 <= phases <= 3):
            raise ValueError("nominal_voltage_v > 0 and phases 1..3 required")
        lo, hi = freq_curve_points
        if not (_is_int(max_profiles) and max_profiles > 0 and _is_int(max_periods) and max_periods > 0
                and 1 <= lo <= hi):
            raise ValueError("max_profiles, max_periods > 0 and 1 <= freq_curve_points[0] <= [1] required")
        self.rated_charge_w = float(rated_charge_w)
        self.rated_discharge_w = float(rated_discharge_w)
        self.nominal_voltage_v = float(nominal_voltage_v)
        self.phases = phases
        self.max_profiles = max_profiles
        self.max_periods = max_periods
        self.freq_curve_points = (lo, hi)
        self.max_stack_level = max_stack_level
        self.min_set_interval_s = float(min_set_interval_s)
        self.rejected = {}
        self._entries = {}        # profile id -> _Entry
        self._tx = None           # (tx_id, start_s) of the running transaction
        self._offline_since = None
        self._last_set = {}       # purpose -> now_s of the last accepted set()

    # ----------------------------------------------------------------- transactions, connection

    def start_transaction(self, tx_id, now_s):
        """The EVSE's transaction tx_id started at now_s: TxProfiles for it may be set, and
        Relative profiles count from now_s."""
        self._tx = (tx_id, float(now_s))

    def on_transaction_end(self, tx_id):
        """The transaction ended: its TxProfiles are removed (K01: a TxProfile lives as long as its
        transaction). Returns the number of profiles removed."""
        gone = [pid for pid, e in self._entries.items() if e.purpose == "TxProfile" and e.tx_id == tx_id]
        for pid in gone:
            del self._entries[pid]
        if self._tx is not None and self._tx[0] == tx_id:
            self._tx = None
        return len(gone)

    def set_offline(self, offline_since_s, now_s=None):
        """The link to the CSMS is down since offline_since_s (UTC s), or up again (None).
        While offline, a profile with max_offline_duration d is ignored from offline_since_s + d
        on; one with invalid_after_offline_duration true is then deleted for good. Coming back
        online with now_s given first deletes those whose time ran out during the outage."""
        if offline_since_s is None:
            if now_s is not None and self._offline_since is not None:
                self._purge(float(now_s))
            self._offline_since = None
        else:
            self._offline_since = float(offline_since_s)

    # ----------------------------------------------------------------- SetChargingProfile

    def set(self, evse_id, profile, now_s, tx_id=None):
        """SetChargingProfile: ("Accepted", None, None) or ("Rejected", reason, additional_info).

        tx_id: the running transaction's id (None: the one given to start_transaction, if any).
        Never raises for any evse_id/profile; every refusal is counted in `rejected`."""
        try:
            now_s = float(now_s)
            self._purge(now_s)
            tx = self._tx_for(tx_id)
            entry = self._check(evse_id, profile, now_s, tx)
            old = self._entries.get(entry.id)
            for e in self._entries.values():
                if e.id != entry.id and self._clash(e, entry):
                    raise _Reject("DuplicateProfile", "profile %s has the same purpose and stackLevel %d on this "
                                  "EVSE with an overlapping validity" % (e.id, e.stack))
            if old is None and len(self._entries) >= self.max_profiles:
                raise _Reject("OutOfStorage", "%d profiles stored already" % self.max_profiles)
            last = self._last_set.get(entry.purpose)
            if self.min_set_interval_s > 0 and last is not None and now_s - last < self.min_set_interval_s:
                raise _Reject("RateLimitExceeded", "a %s was accepted %.1f s ago (min %.1f s)"
                              % (entry.purpose, now_s - last, self.min_set_interval_s))
        except _Reject as r:
            self.rejected[r.reason] = self.rejected.get(r.reason, 0) + 1
            return ("Rejected", r.reason, r.info[:1024])
        self._entries[entry.id] = entry
        self._last_set[entry.purpose] = now_s
        return ("Accepted", None, None)

    def _check(self, evse_id, profile, now_s, tx):
        """The parsed entry of a valid profile; raises _Reject naming the first fault found."""
        if not _is_int(evse_id) or evse_id not in (0, 1):
            raise _Reject("UnknownEvse", "evseId %r: this station has evse 0 (station) and 1" % (evse_id,))
        if not isinstance(profile, dict):
            raise _Reject("InvalidProfile", "charging_profile is not an object")
        try:
            return self._parse(evse_id, profile, now_s, tx)
        except _Reject:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError) as ex:
            # anything malformed that the explicit checks did not name
            raise _Reject("InvalidProfile", "malformed profile: %s: %s" % (type(ex).__name__, ex))

    def _parse(self, evse_id, prof, now_s, tx):
        e = _Entry()
        e.evse_id = evse_id
        for key in ("id", "stack_level", "charging_profile_purpose", "charging_profile_kind", "charging_schedule"):
            if key not in prof:
                raise _Reject("InvalidProfile", "%s missing" % key)
        if not _is_int(prof["id"]):
            raise _Reject("InvalidProfile", "id must be an integer")
        e.id = prof["id"]
        purpose = prof["charging_profile_purpose"]
        if purpose in UNSUPPORTED_PURPOSES:
            raise _Reject("UnsupportedPurpose", "%s is not supported by this station" % purpose)
        if purpose not in PURPOSES:
            raise _Reject("InvalidProfile", "unknown charging_profile_purpose %r" % (purpose,))
        e.purpose = purpose
        stack = prof["stack_level"]
        if not _is_int(stack) or stack < 0 or stack > self.max_stack_level:
            raise _Reject("InvalidStackLevel", "stack_level %r outside 0..%d" % (stack, self.max_stack_level))
        e.stack = stack
        kind = prof["charging_profile_kind"]
        if kind not in KINDS:
            raise _Reject("UnsupportedKind", "charging_profile_kind %r" % (kind,))
        e.kind = kind
        # purpose / EVSE / kind combinations (K01)
        if purpose == "ChargingStationMaxProfile":
            if evse_id != 0:
                raise _Reject("InvalidProfile", "ChargingStationMaxProfile only on evseId 0")
            if kind == "Relative":
                raise _Reject("InvalidProfile", "ChargingStationMaxProfile cannot be Relative")
        if purpose == "TxProfile" and evse_id == 0:
            raise _Reject("InvalidProfile", "TxProfile needs evseId 1, not 0")
        e.tx_id = prof.get("transaction_id")
        if purpose == "TxProfile":
            if e.tx_id is None:
                raise _Reject("TxNotFound", "TxProfile without transaction_id")
            if tx is None:
                raise _Reject("TxNotFound", "no transaction is running on the EVSE")
            if e.tx_id != tx[0]:
                raise _Reject("TxNotFound", "transaction %r is not the running one" % (e.tx_id,))
        elif e.tx_id is not None:
            raise _Reject("InvalidProfile", "transaction_id only goes with a TxProfile")
        # validity and the 2.1 offline / dynamic fields
        e.valid_from = self._time(prof, "valid_from")
        e.valid_to = self._time(prof, "valid_to")
        if e.valid_to is not None:
            if e.valid_from is not None and e.valid_to <= e.valid_from:
                raise _Reject("InvalidValue", "valid_to is not after valid_from")
            if e.valid_to <= now_s:
                raise _Reject("InvalidValue", "valid_to is already past")
        e.max_offline = prof.get("max_offline_duration")
        if e.max_offline is not None and (not _is_int(e.max_offline) or e.max_offline < 0):
            raise _Reject("InvalidValue", "max_offline_duration must be an integer >= 0")
        e.invalid_after = prof.get("invalid_after_offline_duration", False)
        if not isinstance(e.invalid_after, bool):
            raise _Reject("InvalidValue", "invalid_after_offline_duration must be a boolean")
        e.dyn_interval = prof.get("dyn_update_interval")
        if e.dyn_interval is not None and (not _is_int(e.dyn_interval) or e.dyn_interval < 0):
            raise _Reject("InvalidValue", "dyn_update_interval must be an integer >= 0")
        dyn_time = self._time(prof, "dyn_update_time")
        e.dyn_time = now_s if dyn_time is None else dyn_time
        # the schedule
        scheds = prof["charging_schedule"]
        if not isinstance(scheds, list) or not scheds:
            raise _Reject("InvalidSchedule", "charging_schedule must hold one schedule")
        if len(scheds) > 1:
            raise _Reject("TooManyElements", "one charging_schedule per profile on this station, got %d"
                          % len(scheds))
        s = scheds[0]
        if not isinstance(s, dict):
            raise _Reject("InvalidSchedule", "charging_schedule[0] is not an object")
        unit = s.get("charging_rate_unit")
        if unit not in ("W", "A"):
            raise _Reject("UnsupportedRateUnit", "charging_rate_unit %r (W or A)" % (unit,))
        e.unit = unit
        if "limit_at_soc" in s:
            raise _Reject("UnsupportedParam", "limit_at_soc is not supported")
        if s.get("use_local_time"):
            raise _Reject("UnsupportedParam", "use_local_time is not supported (UTC only)")
        if s.get("randomized_delay"):
            raise _Reject("UnsupportedParam", "randomized_delay is not supported")
        has_start = "start_schedule" in s
        if kind in ("Absolute", "Recurring") and not has_start:
            raise _Reject("InvalidSchedule", "%s profile needs start_schedule" % kind)
        if kind == "Relative" and has_start:
            raise _Reject("InvalidSchedule", "Relative profile must not have start_schedule")
        if has_start:
            try:
                e.start = parse_time(s["start_schedule"])
            except (ValueError, OverflowError):
                raise _Reject("InvalidSchedule", "start_schedule %r is not an RFC 3339 date-time"
                              % (s["start_schedule"],))
        else:
            e.start = now_s if kind == "Dynamic" else None
        e.rec_period = None
        if kind == "Recurring":
            rk = prof.get("recurrency_kind")
            if rk not in RECURRENCE_S:
                raise _Reject("InvalidSchedule", "Recurring profile needs recurrency_kind Daily or Weekly")
            e.rec_period = RECURRENCE_S[rk]
        dur = s.get("duration")
        if dur is not None and (not _is_int(dur) or dur <= 0):
            raise _Reject("InvalidSchedule", "duration must be an integer > 0")
        e.duration = dur
        periods = s.get("charging_schedule_period")
        if not isinstance(periods, list) or not periods:
            raise _Reject("InvalidSchedule", "charging_schedule_period is empty")
        if len(periods) > self.max_periods:
            raise _Reject("TooManyElements", "%d periods (max %d)" % (len(periods), self.max_periods))
        if kind == "Dynamic" and len(periods) != 1:
            raise _Reject("InvalidSchedule", "a Dynamic profile has exactly one period")
        starts = []
        for i, p in enumerate(periods):
            if not isinstance(p, dict) or not _is_int(p.get("start_period")):
                raise _Reject("InvalidSchedule", "period %d: start_period must be an integer" % i)
            sp = p["start_period"]
            if i == 0 and sp != 0:
                raise _Reject("InvalidSchedule", "the first period must start at 0")
            if i > 0 and sp <= starts[-1]:
                raise _Reject("InvalidSchedule", "period %d: start_period not increasing" % i)
            end = min(dur if dur is not None else INF, e.rec_period or INF)
            if sp >= end:
                raise _Reject("InvalidSchedule", "period %d starts at %d s, after the schedule ends" % (i, sp))
            starts.append(sp)
        e.periods = [self._period(p, i, purpose, unit) for i, p in enumerate(periods)]
        e.starts = starts
        # what is stored must come back as a schema-valid report
        stored = copy.deepcopy(prof)
        self._check_wire(evse_id, stored)
        e.profile = stored
        return e

    def _time(self, prof, key):
        if prof.get(key) is None:
            return None
        try:
            return parse_time(prof[key])
        except (ValueError, OverflowError):
            raise _Reject("InvalidValue", "%s %r is not an RFC 3339 date-time" % (key, prof[key]))

    def _period(self, p, i, purpose, unit):
        """The checked, W-converted form of period p (index i) of a profile of that purpose."""
        where = "period %d: " % i
        for k in p:
            if k.endswith("_l2") or k.endswith("_l3") or k == "phase_to_use":
                raise _Reject("UnsupportedParam", where + "per-phase value %s is not supported" % k)
        for k in ("limit", "discharge_limit", "setpoint", "setpoint_reactive", "v2x_baseline"):
            v = p.get(k)
            if v is not None and not (_is_num(v) and math.isfinite(v)):
                raise _Reject("InvalidValue", where + "%s must be a finite number" % k)
        n = p.get("number_phases")
        if n is not None and (not _is_int(n) or not 1 <= n <= 3):
            raise _Reject("ValueOutOfRange", where + "number_phases %r outside 1..3" % (n,))
        limit = p.get("limit")
        dl = p.get("discharge_limit")
        sp = p.get("setpoint")
        if limit is not None and limit < 0:
            raise _Reject("InvalidValue", where + "limit must be >= 0 (discharge goes in discharge_limit)")
        if dl is not None and dl > 0:
            raise _Reject("InvalidValue", where + "discharge_limit must be <= 0")
        explicit = p.get("operation_mode")
        if explicit is not None and explicit not in ALL_MODES:
            raise _Reject("InvalidOperationMode", where + "unknown operation_mode %r" % (explicit,))
        if explicit is not None and explicit not in SUPPORTED_MODES:
            raise _Reject("InvalidOperationMode", where + "%s is not supported by this station" % explicit)
        if purpose == "ChargingStationMaxProfile":
            if explicit not in (None, "ChargingOnly"):
                raise _Reject("InvalidOperationMode", where + "a ChargingStationMaxProfile carries limits, not %s"
                              % explicit)
            mode = explicit  # None: limits only
        else:
            mode = explicit or "ChargingOnly"
        curve = p.get("v2x_freq_watt_curve")
        if mode == "LocalFrequency" and not curve:
            raise _Reject("NoFreqWattCurve", where + "LocalFrequency without v2x_freq_watt_curve")
        pts = None
        if curve is not None:
            lo, hi = self.freq_curve_points
            if not isinstance(curve, list) or not lo <= len(curve) <= hi:
                raise _Reject("InvalidSchedule", where + "v2x_freq_watt_curve needs %d..%d points" % (lo, hi))
            pts = []
            for q in curve:
                f = q.get("frequency") if isinstance(q, dict) else None
                w = q.get("power") if isinstance(q, dict) else None
                if not (_is_num(f) and _is_num(w) and math.isfinite(f) and math.isfinite(w) and f > 0):
                    raise _Reject("InvalidSchedule", where + "curve point needs frequency > 0 and power")
                if pts and f <= pts[-1][0]:
                    raise _Reject("InvalidSchedule", where + "curve frequencies must strictly increase")
                pts.append((float(f), float(w)))
        if mode == "CentralSetpoint" and sp is None:
            raise _Reject("InvalidSchedule", where + "CentralSetpoint without setpoint")
        if sp is not None and ((limit is not None and sp > limit) or (dl is not None and sp < dl)):
            raise _Reject("InvalidSchedule", where + "setpoint %r outside [discharge_limit, limit]" % (sp,))
        if mode == "ChargingOnly" and ((sp is not None and sp < 0) or (dl is not None and dl < 0)):
            raise _Reject("InvalidSchedule", where + "ChargingOnly with a discharging setpoint or discharge_limit")
        k = 1.0
        phases = min(n or self.phases, self.phases)
        if unit == "A":
            k = self.nominal_voltage_v * phases
        out = _Period()
        out.start = p["start_period"]
        out.limit = None if limit is None else limit * k
        out.discharge = None if dl is None else -dl * k
        out.setpoint = None if sp is None else sp * k
        rv = p.get("setpoint_reactive")
        out.reactive = None if rv is None else rv * k
        out.mode = mode
        out.curve = pts
        bl = p.get("v2x_baseline")
        out.baseline = None if bl is None else float(bl)
        out.phases = phases
        return out

    def _check_wire(self, evse_id, prof):
        """Refuse what would not come back schema-valid through snake_to_camel_case."""
        payload = {"evseId": evse_id, "chargingProfile": snake_to_camel_case(prof)}
        errors = list(get_validator(MessageType.Call, "SetChargingProfile", "2.1").iter_errors(payload))
        if errors:
            err = errors[0]
            path = ".".join(str(x) for x in err.absolute_path)
            if err.validator == "additionalProperties":
                raise _Reject("UnsupportedParam", "field not supported (cannot be reported back): %s at %s"
                              % (err.message, path or "top"))
            raise _Reject("InvalidProfile", "%s at %s" % (err.message, path or "top"))

    def _clash(self, a, b):
        """Whether a and b break the one-profile-per-(purpose, stackLevel, EVSE) rule (K01)."""
        if a.purpose != b.purpose or a.stack != b.stack:
            return False
        if a.purpose == "TxProfile" and a.tx_id != b.tx_id:
            return False
        if a.purpose == "ChargingStationMaxProfile" and a.evse_id != b.evse_id:
            return False
        # TxDefaultProfile: evse 0's applies to evse 1 as well, so 0 and 1 clash too
        a0 = -INF if a.valid_from is None else a.valid_from
        a1 = INF if a.valid_to is None else a.valid_to
        b0 = -INF if b.valid_from is None else b.valid_from
        b1 = INF if b.valid_to is None else b.valid_to
        return a0 < b1 and b0 < a1

    # ----------------------------------------------------------------- Clear / Get / report

    def clear(self, profile_id=None, evse_id=None, purpose=None, stack_level=None):
        """ClearChargingProfile: "Accepted" if a profile was removed, else "Unknown".
        With profile_id only that profile goes (the criteria are then not looked at); otherwise
        every profile matching all the criteria given; with none given, all of them."""
        if profile_id is not None:
            gone = [profile_id] if profile_id in self._entries else []
        else:
            gone = [pid for pid, e in self._entries.items()
                    if (evse_id is None or e.evse_id == evse_id) and (purpose is None or e.purpose == purpose)
                    and (stack_level is None or e.stack == stack_level)]
        for pid in gone:
            del self._entries[pid]
        return "Accepted" if gone else "Unknown"

    def get(self, evse_id=None, profile_ids=None, purpose=None, stack_level=None):
        """GetChargingProfiles: [(evse_id, profile dict)] of the stored profiles that match every
        criterion given, ordered by evse then id. The dicts are copies of what set() accepted
        (with dyn_update_time kept current by update_dynamic) and are schema-valid
        ChargingProfileType after snake_to_camel_case."""
        ids = None if profile_ids is None else set(profile_ids)
        out = [(e.evse_id, copy.deepcopy(e.profile)) for e in self._entries.values()
               if (evse_id is None or e.evse_id == evse_id) and (ids is None or e.id in ids)
               and (purpose is None or e.purpose == purpose) and (stack_level is None or e.stack == stack_level)]
        out.sort(key=lambda x: (x[0], x[1]["id"]))
        return out

    def report_requests(self, request_id, evse_id=None, profile_ids=None, purpose=None, stack_level=None,
                        charging_limit_source="CSO"):
        """The ReportChargingProfilesRequest payloads (snake_case) answering a GetChargingProfiles:
        one per EVSE with matching profiles, tbc true on all but the last; [] when none match
        (the GetChargingProfiles answer is then NoProfiles). Every profile here was set by the CSMS,
        so the source is CSO."""
        groups = {}
        for ev, prof in self.get(evse_id, profile_ids, purpose, stack_level):
            groups.setdefault(ev, []).append(prof)
        out = []
        for i, ev in enumerate(sorted(groups)):
            out.append({"request_id": request_id, "charging_limit_source": charging_limit_source, "evse_id": ev,
                        "charging_profile": groups[ev], "tbc": i < len(groups) - 1})
        return out

    # ----------------------------------------------------------------- dynamic profiles

    def update_dynamic(self, profile_id, update, now_s):
        """UpdateDynamicSchedule: ("Accepted", None) or ("Rejected", reason).

        Only a Dynamic profile can be updated. The keys of `update` that are present (limit,
        discharge_limit, setpoint, setpoint_reactive) replace those of its one period; absent keys
        keep their value. The result must pass the same checks as in set(), else nothing changes.
        On success the profile's dyn_update_time becomes now_s."""
        now_s = float(now_s)
        self._purge(now_s)
        e = self._entries.get(profile_id)
        try:
            if e is None:
                raise _Reject("NotFound", "no profile %r" % (profile_id,))
            if e.kind != "Dynamic":
                raise _Reject("InvalidProfile", "profile %r is %s, not Dynamic" % (profile_id, e.kind))
            if not isinstance(update, dict):
                raise _Reject("InvalidValue", "schedule_update is not an object")
            for k in update:
                if k not in UPDATE_KEYS and k != "custom_data":
                    raise _Reject("UnsupportedParam", "%s cannot be updated here" % k)
            prof = copy.deepcopy(e.profile)
            period = prof["charging_schedule"][0]["charging_schedule_period"][0]
            for k in UPDATE_KEYS:
                if k in update:
                    period[k] = update[k]
            parsed = self._period(period, 0, e.purpose, e.unit)
            prof["dyn_update_time"] = format_time(now_s)
            self._check_wire(e.evse_id, prof)
        except _Reject as r:
            self.rejected[r.reason] = self.rejected.get(r.reason, 0) + 1
            return ("Rejected", r.reason)
        e.profile = prof
        e.periods = [parsed]
        e.dyn_time = now_s
        return ("Accepted", None)

    def pull_due(self, now_s):
        """Ids of the Dynamic profiles whose dyn_update_interval has run out since their last
        update: the station sends PullDynamicScheduleUpdateRequest for each. Their values stay in
        force meanwhile (the interval asks for an update; it does not invalidate the profile)."""
        self._purge(float(now_s))
        return sorted(e.id for e in self._entries.values()
                      if e.kind == "Dynamic" and e.dyn_interval and now_s >= e.dyn_time + e.dyn_interval)

    # ----------------------------------------------------------------- evaluation

    def _tx_for(self, tx_id):
        """(tx_id, start_s or None) of the transaction to evaluate for, or None."""
        if tx_id is None:
            return self._tx
        if self._tx is not None and self._tx[0] == tx_id:
            return self._tx
        return (tx_id, None)  # start unknown: Relative profiles cannot start

    def _cutoff(self, e):
        if self._offline_since is None or e.max_offline is None:
            return None
        return self._offline_since + e.max_offline

    def _purge(self, now_s):
        """Drop profiles past validTo, and those made invalid for good by an offline period."""
        gone = []
        for pid, e in self._entries.items():
            cut = self._cutoff(e)
            if (e.valid_to is not None and now_s >= e.valid_to) or (e.invalid_after and cut is not None
                                                                      and now_s >= cut):
                gone.append(pid)
        for pid in gone:
            del self._entries[pid]

    def _at(self, e, t, tx):
        """(period of e in force at t or None, earliest time > t at which that may change)."""
        nxt = INF
        if e.valid_to is not None:
            if t >= e.valid_to:
                return None, INF
            nxt = e.valid_to
        if e.valid_from is not None and t < e.valid_from:
            return None, e.valid_from
        cut = self._cutoff(e)
        if cut is not None:  # the connection is assumed to stay as it is now
            if t >= cut:
                return None, INF
            nxt = min(nxt, cut)
        if e.kind == "Relative":
            if tx is None or tx[1] is None:
                return None, nxt
            start = tx[1]
        else:
            start = e.start
        end = INF if e.duration is None else float(e.duration)
        if e.kind == "Recurring":
            per = e.rec_period
            if t >= start:
                start = start + math.floor((t - start) / per) * per
                nxt = min(nxt, start + per)
            end = min(end, per)
        if t < start:
            return None, min(nxt, start)
        rel = t - start
        if rel >= end:
            return None, nxt
        nxt = min(nxt, start + end)
        i = bisect.bisect_right(e.starts, rel) - 1
        if i + 1 < len(e.starts):
            nxt = min(nxt, start + e.starts[i + 1])
        return e.periods[i], nxt

    def _best(self, entries, t, tx):
        best = None
        nxt = INF
        for e in entries:
            p, n = self._at(e, t, tx)
            nxt = min(nxt, n)
            if p is not None and (best is None or e.stack > best[0].stack):
                best = (e, p)
        return best, nxt

    def _state(self, t, tx):
        """The composed state at t (a dict, or None when no profile is in force) and the earliest
        time > t at which it may change."""
        tx_id = None if tx is None else tx[0]
        groups = ([e for e in self._entries.values() if e.purpose == "TxProfile" and tx_id is not None
                   and e.tx_id == tx_id],
                  [e for e in self._entries.values() if e.purpose == "TxDefaultProfile" and e.evse_id == 1],
                  [e for e in self._entries.values() if e.purpose == "TxDefaultProfile" and e.evse_id == 0])
        nxt = INF
        chosen = None
        for g in groups:
            best, n = self._best(g, t, tx)
            nxt = min(nxt, n)
            if chosen is None and best is not None:
                chosen = best
        mx, n = self._best([e for e in self._entries.values() if e.purpose == "ChargingStationMaxProfile"], t, tx)
        nxt = min(nxt, n)
        if chosen is None and mx is None:
            return None, nxt
        charge = self.rated_charge_w
        dis = self.rated_discharge_w
        for sel in (chosen, mx):
            if sel is not None:
                p = sel[1]
                if p.limit is not None:
                    charge = min(charge, p.limit)
                if p.discharge is not None:
                    dis = min(dis, p.discharge)
                if p.mode == "ChargingOnly":
                    dis = 0.0
        st = {"mode": None, "setpoint": None, "reactive": None, "baseline": None, "curve": None,
              "phases": self.phases, "entry": (chosen or mx)[0],
              "entries": [sel[0] for sel in (chosen, mx) if sel is not None]}
        if chosen is not None:
            p = chosen[1]
            st["mode"] = p.mode
            st["phases"] = p.phases
            st["reactive"] = p.reactive
            if p.mode == "Idle":
                charge = dis = 0.0
                st["setpoint"] = 0.0
            elif p.setpoint is not None:
                st["setpoint"] = min(max(p.setpoint, -dis), charge)
            if p.baseline is not None:
                st["baseline"] = min(max(p.baseline, -dis), charge)
            if p.curve is not None:
                base = st["baseline"] or 0.0
                # clamp each point so baseline + curve stays within the limits; linear
                # interpolation between clamped points then does too
                st["curve"] = [(f, min(max(w, -dis - base), charge - base)) for f, w in p.curve]
        st["limit"] = charge
        st["discharge"] = dis
        return st, nxt

    def command(self, evse_id, now_s, tx_id=None):
        """What the EVSE must do at now_s (a Command; all None but until_s when no profile is in
        force). evse_id 0 or 1 (the station has one EVSE, so both give the same); any other raises
        ProfileError("UnknownEvse")."""
        if not _is_int(evse_id) or evse_id not in (0, 1):
            raise ProfileError("UnknownEvse", "evseId %r" % (evse_id,))
        now_s = float(now_s)
        self._purge(now_s)
        tx = self._tx_for(tx_id)
        st, nxt = self._state(now_s, tx)
        if st is None:
            return Command(until_s=None if nxt == INF else nxt)
        for d in st["entries"]:
            if d.kind == "Dynamic" and d.dyn_interval:
                due = d.dyn_time + d.dyn_interval
                if due > now_s:
                    nxt = min(nxt, due)
        e = st["entry"]
        return Command(mode=st["mode"], setpoint_w=st["setpoint"], limit_w=st["limit"],
                       discharge_limit_w=st["discharge"], freq_curve=st["curve"], baseline_w=st["baseline"],
                       reactive_var=st["reactive"], until_s=None if nxt == INF else nxt, profile_id=e.id,
                       stack_level=e.stack)

    def composite(self, evse_id, duration_s, now_s, unit="W", tx_id=None):
        """GetCompositeSchedule: the CompositeScheduleType (snake_case dict) for [now, now +
        duration_s), or None when no profile is in force anywhere in it.

        schedule_start is now_s rounded down to the second; periods start at whole seconds from
        it, identical neighbours merged. Each period has limit and discharge_limit (the composed
        ones; where no profile is in force, the station's rating), and where a Tx profile is in
        force its operation_mode, and setpoint, setpoint_reactive, v2x_baseline and
        v2x_freq_watt_curve where it has them. In unit "A" the power values are divided by
        nominal_voltage_v * phases (the period's number_phases, given then as number_phases);
        v2x_baseline and the curve stay in W. The schedule assumes the transaction and the
        connection stay as they are now. It is cut short (duration shortened) after
        20000 changes, which no real set of profiles reaches in a day.
        Raises ProfileError for an unknown evse, a unit other than W/A, or duration_s < 0."""
        if not _is_int(evse_id) or evse_id not in (0, 1):
            raise ProfileError("UnknownEvse", "evseId %r" % (evse_id,))
        if unit not in ("W", "A"):
            raise ProfileError("UnsupportedRateUnit", "charging_rate_unit %r" % (unit,))
        if not _is_num(duration_s) or duration_s < 0:
            raise ProfileError("ValueOutOfRange", "duration %r" % (duration_s,))
        now_s = float(now_s)
        self._purge(now_s)
        tx = self._tx_for(tx_id)
        t0 = float(math.floor(now_s))
        end = t0 + int(duration_s)
        t = t0
        periods = []
        any_profile = False
        steps = 0
        while True:
            st, nxt = self._state(t, tx)
            any_profile = any_profile or st is not None
            period = self._wire_period(st, unit)
            period["start_period"] = int(math.floor(t - t0))
            if periods and periods[-1]["start_period"] == period["start_period"]:
                periods[-1] = period
            else:
                periods.append(period)
            steps += 1
            if nxt >= end or steps >= _MAX_COMPOSITE_STEPS:
                if nxt < end:
                    end = t0 + max(math.ceil(nxt - t0), periods[-1]["start_period"] + 1)
                break
            t = nxt if nxt > t else math.nextafter(t, INF)
        if not any_profile:
            return None
        merged = []
        for p in periods:
            if merged and {k: v for k, v in merged[-1].items() if k != "start_period"} == \
                    {k: v for k, v in p.items() if k != "start_period"}:
                continue
            merged.append(p)
        return {"evse_id": evse_id, "duration": int(end - t0), "schedule_start": format_time(t0),
                "charging_rate_unit": unit, "charging_schedule_period": merged}

    def _wire_period(self, st, unit):
        if st is None:
            limit, dis, phases = self.rated_charge_w, self.rated_discharge_w, self.phases
        else:
            limit, dis, phases = st["limit"], st["discharge"], st["phases"]
        k = 1.0 if unit == "W" else 1.0 / (self.nominal_voltage_v * phases)
        out = {"start_period": 0, "limit": _clean(limit * k), "discharge_limit": _clean(-dis * k)}
        if unit == "A":
            out["number_phases"] = phases
        if st is None:
            return out
        if st["mode"] is not None:
            out["operation_mode"] = st["mode"]
        if st["setpoint"] is not None:
            out["setpoint"] = _clean(st["setpoint"] * k)
        if st["reactive"] is not None:
            out["setpoint_reactive"] = _clean(st["reactive"] * k)
        if st["baseline"] is not None:
            out["v2x_baseline"] = _clean(st["baseline"])
        if st["curve"] is not None:
            out["v2x_freq_watt_curve"] = [{"frequency": f, "power": _clean(w)} for f, w in st["curve"]]
        return out
