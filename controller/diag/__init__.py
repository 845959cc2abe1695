"""Diagnostics on the site bus: ISO-TP, the UDS server and the fault memory."""
