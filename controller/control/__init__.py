"""The control period: the gateway's data flow, limit arbitration, operating modes and the
backup switchover."""
