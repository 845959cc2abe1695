"""Signed update images: the format and its verification (Ed25519 over header + manifest).

Image layout (little-endian; docs/storage-and-update.md has the full description):
    header   16 bytes  "<4sHHII": magic b"V2XI", format 1, signature scheme 1 (Ed25519),
                       manifest length M, payload length N
    manifest M bytes   UTF-8 JSON: format, software_version, build_time, target, mpy,
                       files [{path, offset, size, sha256}], payload_size
    payload  N bytes   the file blobs, back to back, in manifest order
    signature 64 bytes Ed25519 over header + manifest (the manifest's SHA-256 per file
                       binds the payload)

ImageFS (controller/update/imagefs.py) mounts a verified image so that its modules are
imported straight from its slot. The A/B slots and the boot record are in
controller/update/slots.py.
"""

import json
import struct
from binascii import hexlify, unhexlify
from hashlib import sha256

from controller.steps import run_to_end
from controller.update import ed25519

IMG_MAGIC = b"V2XI"
IMG_FORMAT = 1
SCHEME_ED25519 = 1
HDR_FMT = "<4sHHII"
HDR_LEN = 16
SIG_LEN = 64
MAX_MANIFEST = 65536

# The DEVELOPMENT key: its seed is public (SHA-256 of
# b"v2xgw development signing key - not for production", tools/image.py DEV_SEED), so
# anyone can sign images for it. For tests and the workbench only.
DEV_PUBLIC_KEY = unhexlify("4d152ea717ac500b54cd0e6892e1a4fd7fc712d0dab57d6e0b4fff554faa251b")
# The key this firmware trusts comes from the build, never from an edit here: every image
# carries a generated controller/update/trusted_key.py with the key that signed it
# (`python -m tools.image build`), and a base firmware gets one from `v2xgw deploy --trust`
# or `python -m tools.image trust-module`. Without it (a source checkout, the tests) the
# development key is trusted, and KEY_LABEL says so.
try:
    from controller.update.trusted_key import KEY_LABEL, PUBLIC_KEY
except ImportError:
    PUBLIC_KEY = DEV_PUBLIC_KEY
    KEY_LABEL = "development"
TARGET = "v2xgw"

_CHUNK = 512
STEP_BYTES = 4096  # bytes hashed or erased per step of the *_steps generators (one flash sector)
_PATH_OK = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./"

def parse_header(h):
    """(manifest length, payload length, total image size) or a reason string."""
    if len(h) < HDR_LEN:
        return "truncated"
    magic, fmt, scheme, mlen, plen = struct.unpack(HDR_FMT, h[:HDR_LEN])
    if magic != IMG_MAGIC:
        return "magic"
    if fmt != IMG_FORMAT:
        return "format"
    if scheme != SCHEME_ED25519:
        return "scheme"
    if mlen == 0 or mlen > MAX_MANIFEST:
        return "manifest size"
    return mlen, plen, HDR_LEN + mlen + plen + SIG_LEN


def _good_path(p):
    if not p or p[0] == "/" or len(p) > 120:
        return False
    for c in p:
        if c not in _PATH_OK:
            return False
    for part in p.split("/"):
        if part in ("", ".", ".."):
            return False
    return True


def check_manifest(man, plen, target):
    """'ok' or the reason the (already authenticated) manifest is unacceptable."""
    if not isinstance(man, dict) or man.get("format") != IMG_FORMAT:
        return "manifest format"
    if man.get("target") != target:
        return "target"
    if man.get("payload_size") != plen:
        return "manifest size"
    files = man.get("files")
    if not isinstance(files, list) or not files:
        return "manifest files"
    off = 0
    seen = {}
    for f in files:
        if not isinstance(f, dict):
            return "manifest files"
        path = f.get("path")
        size = f.get("size")
        digest = f.get("sha256")
        if not isinstance(path, str) or not _good_path(path) or path in seen:
            return "manifest path"
        if f.get("offset") != off or not isinstance(size, int) or size < 0:
            return "manifest layout"
        if not isinstance(digest, str) or len(digest) != 64:
            return "manifest hash"
        seen[path] = 1
        off += size
    if off != plen:
        return "manifest layout"
    mpy = man.get("mpy")
    if mpy is not None:
        try:
            import sys

            have = sys.implementation._mpy & 0xFF
        except AttributeError:  # not MicroPython: nothing to compare with
            have = None
        if have is not None and str(mpy).split(".")[0] != str(have):
            return "mpy version"
    return "ok"


def verify_image(medium, size=None, public_key=PUBLIC_KEY, target=TARGET):
    """Verify the image at the start of `medium`: (True, manifest) or (False, reason).

    `size` is the number of bytes downloaded (None: take it from the header). Order:
    header, signature over header + manifest, manifest fields, then every file's
    SHA-256 -- untrusted JSON is parsed only after the signature checked out."""
    return run_to_end(verify_image_steps(medium, size, public_key, target))


def verify_image_steps(medium, size=None, public_key=PUBLIC_KEY, target=TARGET):
    """verify_image() in bounded steps (controller.steps): one hash chunk or a slice of
    the signature check per step; the generator returns (ok, manifest or reason)."""
    if size is not None and size < HDR_LEN + SIG_LEN:
        return False, "truncated"
    hdr = parse_header(medium.read(0, HDR_LEN) if medium.size >= HDR_LEN else b"")
    if isinstance(hdr, str):
        return False, hdr
    mlen, plen, total = hdr
    if size is None:
        size = total
    if total > size or total > medium.size:
        return False, "truncated"
    if total < size:
        return False, "size"
    signed = medium.read(0, HDR_LEN + mlen)
    sig = medium.read(HDR_LEN + mlen + plen, SIG_LEN)
    ok = yield from ed25519.verify_steps(public_key, signed, sig)
    if not ok:
        return False, "signature"
    try:
        man = json.loads(signed[HDR_LEN:])
    except ValueError:
        return False, "manifest json"
    why = check_manifest(man, plen, target)
    if why != "ok":
        return False, why
    base = HDR_LEN + mlen
    done = 0
    for f in man["files"]:
        h = sha256()
        pos = base + f["offset"]
        left = f["size"]
        while left > 0:
            n = left if left < _CHUNK else _CHUNK
            h.update(medium.read(pos, n))
            pos += n
            left -= n
            done += n
            if done >= STEP_BYTES:
                done = 0
                yield
        if hexlify(h.digest()).decode() != f["sha256"]:
            return False, "hash " + f["path"]
    return True, man


def read_manifest(medium):
    """The manifest of the image in `medium`, unverified (for diagnostics), or None."""
    hdr = parse_header(medium.read(0, HDR_LEN))
    if isinstance(hdr, str) or hdr[2] > medium.size:
        return None
    try:
        return json.loads(medium.read(HDR_LEN, hdr[0]))
    except ValueError:
        return None


# --- running an image: ImageFS, a read-only file system over a slot (os.mount), lives in
# controller/update/imagefs.py (a small module: a mounted slot keeps only it in RAM)
from controller.update.imagefs import ImageFile, ImageFS  # noqa: E402,F401
