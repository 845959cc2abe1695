"""Meter values of the EVSE from the site state (OCPP 2.1 MeterValueType / SampledValueType;
measurands as SampledDataCtrlr.TxUpdatedMeasurands names them).

Sign convention of OCPP: Import = energy into the EV (charging), Export = out of it (V2H,
V2G). Power.Active.Import and .Export are both non-negative; the one not flowing is 0.
A measurand the station cannot measure now (SoC before the EV reports it) is left out of
the sample rather than sent as a made-up value; an unknown measurand name is left out too
(the device model refuses it when it is set)."""

SUPPORTED = ("Energy.Active.Import.Register", "Energy.Active.Export.Register", "Power.Active.Import",
             "Power.Active.Export", "SoC", "Voltage", "Frequency")
UNITS = {"Energy.Active.Import.Register": "Wh", "Energy.Active.Export.Register": "Wh", "Power.Active.Import": "W",
         "Power.Active.Export": "W", "SoC": "Percent", "Voltage": "V", "Frequency": None}


def _value(site, measurand):
    p = site.p_batt_w
    if measurand == "Energy.Active.Import.Register":
        return round(site.import_wh, 1)
    if measurand == "Energy.Active.Export.Register":
        return round(site.export_wh, 1)
    if measurand == "Power.Active.Import":
        return round(p, 1) if p > 0 else 0.0
    if measurand == "Power.Active.Export":
        return round(-p, 1) if p < 0 else 0.0
    if measurand == "SoC":
        return None if site.soc is None else round(site.soc, 1)
    if measurand == "Voltage":
        return None if site.grid_v is None else round(site.grid_v, 1)
    if measurand == "Frequency":
        return None if site.grid_hz is None else round(site.grid_hz, 3)
    return None


def meter_value(site, measurands, context, timestamp):
    """One MeterValueType (camelCase dict) or None when no measurand has a value."""
    out = []
    for m in measurands:
        if m not in SUPPORTED:
            continue
        v = _value(site, m)
        if v is None:
            continue
        sv = {"value": v, "measurand": m, "context": context, "location": "Outlet"}
        unit = UNITS[m]
        if unit is not None:
            sv["unitOfMeasure"] = {"unit": unit}
        out.append(sv)
    return {"timestamp": timestamp, "sampledValue": out} if out else None


def parse_list(value):
    """A MemberList variable's value (typed: a list; or on the wire: "a,b,c") as a tuple, blanks dropped."""
    items = value if isinstance(value, (list, tuple)) else str(value or "").split(",")
    return tuple(x.strip() for x in items if x.strip())
