"""Reference end-to-end protection for the simulated devices.

Written independently of controller/bus/e2e.py (bitwise, straight from the definition)
so that the HIL devices and the firmware check each other: CRC-8 SAE J1850
(polynomial 0x1D, initial value 0xFF, final XOR 0xFF) over the data id (low byte,
high byte) and bytes 0..6 of the payload; the CRC goes into byte 7.
"""


def _crc8_bitwise(data: bytes) -> int:
    crc = 0xFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1D) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc ^ 0xFF


# the same register, one byte at a time: _TABLE[i] = eight shifts of i (built from the definition above)
_TABLE = bytes((_crc8_bitwise(bytes((i ^ 0xFF,))) ^ 0xFF) for i in range(256))


def crc8_j1850(data: bytes) -> int:
    crc = 0xFF
    t = _TABLE
    for b in data:
        crc = t[crc ^ b]
    return crc ^ 0xFF


def e2e_crc(data_id: int, payload: bytes) -> int:
    return crc8_j1850(bytes((data_id & 0xFF, data_id >> 8)) + bytes(payload[:7]))


def data_id(message) -> int:
    """E2EDataID attribute of a cantools message (0 when the message is not protected)."""
    attrs = message.dbc.attributes if message.dbc else {}
    return attrs["E2EDataID"].value if "E2EDataID" in attrs else 0
