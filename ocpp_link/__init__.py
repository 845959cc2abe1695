"""OCPP 2.1 link to a charging platform: the charging station side, a small CSMS for the HIL, and their parts."""
