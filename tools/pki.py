"""A small ISO 15118-20-shaped test PKI for the SECC's TLS (CPython, `cryptography`).

    V2G root CA  ->  CPO sub-CA  ->  SECC leaf (CN = the EVSE ID)
    OEM root CA  ->  EV (EVCC) leaf, for mutual TLS

ISO 15118-20 prescribes ECDSA on secp521r1 (with SHA-512) for the TLS certificates of
the SECC chain; OpenSSL (and so Python's `ssl`) accepts it, so every key here is a
secp521r1 key (`curve="secp256r1"` gives the smaller -2 style PKI if ever needed).
The real -20 hierarchy has two sub-CA levels (CPO sub-CA 1 and 2) and is installed,
not generated; one sub-CA level is enough to exercise chain verification. Validity is
short (days), these are test certificates only: private keys are written unencrypted.

    python -m tools.pki OUT_DIR [--evse-id DE*ABC*E123] [--days 7]

writes PEM files and prints their paths; `make_test_pki(out_dir)` returns them as a dict:
v2g_root_cert, v2g_root_key, cpo_sub_ca_cert, cpo_sub_ca_key, secc_cert, secc_key,
secc_chain (leaf + sub-CA, what the server presents), oem_root_cert, ev_cert, ev_key,
ev_chain; plus other_root_cert/other_root_key, an unrelated root a client can
(wrongly) trust in negative tests.
"""

import datetime
import os
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CURVES = {"secp521r1": (ec.SECP521R1, hashes.SHA512), "secp256r1": (ec.SECP256R1, hashes.SHA256)}


def _name(cn, org="V2X Test", dc=None):
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn), x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)]
    if dc:
        attrs.append(x509.NameAttribute(NameOID.DOMAIN_COMPONENT, dc))
    return x509.Name(attrs)


def _cert(subject, key, issuer, issuer_key, now, days, ca, path_len=None, leaf_usage=None, san=None,
          hash_cls=hashes.SHA512):
    b = (x509.CertificateBuilder()
         .subject_name(subject)
         .issuer_name(issuer)
         .public_key(key.public_key())
         .serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(minutes=5))
         .not_valid_after(now + datetime.timedelta(days=days))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=path_len if ca else None), critical=True)
         .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
    if issuer_key is not key:
        b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                            critical=False)
    if ca:
        b = b.add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                          data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                          crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
    else:
        b = b.add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                          data_encipherment=False, key_agreement=True, key_cert_sign=False,
                                          crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        if leaf_usage:
            b = b.add_extension(x509.ExtendedKeyUsage([leaf_usage]), critical=False)
        if san:
            b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(s) for s in san]), critical=False)
    return b.sign(issuer_key, hash_cls())


def _write(out_dir, name, data):
    p = os.path.join(out_dir, name)
    with open(p, "wb") as f:
        f.write(data)
    return p


def _pem_cert(*certs):
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def _pem_key(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def make_test_pki(out_dir, evse_id="DE*V2X*E12345*1", evcc_id="WMIV1234567890ABCDEX", days=7,
                  curve="secp521r1"):
    """Generate the test PKI into out_dir (created if needed); returns {name: path}."""
    curve_cls, hash_cls = CURVES[curve]
    os.makedirs(out_dir, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)

    def key():
        return ec.generate_private_key(curve_cls())

    def cert(*a, **kw):
        return _cert(*a, now=now, days=days, hash_cls=hash_cls, **kw)

    root_k = key()
    root_n = _name("V2G Test Root CA", dc="V2G")
    root = cert(root_n, root_k, root_n, root_k, ca=True, path_len=2)
    sub_k = key()
    sub_n = _name("CPO Test Sub-CA", dc="CPO")
    sub = cert(sub_n, sub_k, root_n, root_k, ca=True, path_len=0)
    secc_k = key()
    secc = cert(_name(evse_id, dc="CPO"), secc_k, sub_n, sub_k, ca=False,
                leaf_usage=ExtendedKeyUsageOID.SERVER_AUTH, san=["secc.v2x.test"])
    oem_k = key()
    oem_n = _name("OEM Test Root CA", dc="OEM")
    oem = cert(oem_n, oem_k, oem_n, oem_k, ca=True, path_len=1)
    ev_k = key()
    ev = cert(_name(evcc_id, dc="OEM"), ev_k, oem_n, oem_k, ca=False, leaf_usage=ExtendedKeyUsageOID.CLIENT_AUTH)
    other_k = key()
    other_n = _name("Unrelated Test Root CA")
    other = cert(other_n, other_k, other_n, other_k, ca=True, path_len=2)

    w = lambda n, d: _write(out_dir, n, d)  # noqa: E731
    return {
        "v2g_root_cert": w("v2g_root.pem", _pem_cert(root)),
        "v2g_root_key": w("v2g_root.key", _pem_key(root_k)),
        "cpo_sub_ca_cert": w("cpo_sub_ca.pem", _pem_cert(sub)),
        "cpo_sub_ca_key": w("cpo_sub_ca.key", _pem_key(sub_k)),
        "secc_cert": w("secc.pem", _pem_cert(secc)),
        "secc_key": w("secc.key", _pem_key(secc_k)),
        "secc_chain": w("secc_chain.pem", _pem_cert(secc, sub)),
        "oem_root_cert": w("oem_root.pem", _pem_cert(oem)),
        "oem_root_key": w("oem_root.key", _pem_key(oem_k)),
        "ev_cert": w("ev.pem", _pem_cert(ev)),
        "ev_key": w("ev.key", _pem_key(ev_k)),
        "ev_chain": w("ev_chain.pem", _pem_cert(ev)),
        "other_root_cert": w("other_root.pem", _pem_cert(other)),
        "other_root_key": w("other_root.key", _pem_key(other_k)),
    }


def main(argv=None):
    import argparse

    p = argparse.ArgumentParser(prog="python -m tools.pki", description="generate the ISO 15118-20 test PKI")
    p.add_argument("out_dir")
    p.add_argument("--evse-id", default="DE*V2X*E12345*1", help="CN of the SECC certificate")
    p.add_argument("--days", type=int, default=7, help="validity in days")
    p.add_argument("--curve", choices=sorted(CURVES), default="secp521r1")
    a = p.parse_args(argv)
    paths = make_test_pki(a.out_dir, evse_id=a.evse_id, days=a.days, curve=a.curve)
    for k, v in paths.items():
        print(f"{k}\t{v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
