"""A read-only MicroPython VFS over an update image in its slot: `import` reads the .mpy
files straight from the slot, with no copying or unpacking.

    os.mount(ImageFS(SlotFile("/data/slot0.bin")), "/app"); sys.path.insert(0, "/app")

Kept apart from the verifier (controller/update/image.py) and the storage code on
purpose: the mounted file system lives as long as the application, and with it every
module its methods refer to. This one needs only json and struct, so the boot selector's
larger modules are freed once the application starts from the slot. Mount only an image
that was verified (the boot selector does that before the first trial boot); the layout
is described in controller/update/image.py.
"""

import json
import struct

_MAGIC = b"V2XI"
_HDR_LEN = 16

try:
    import io as _io

    _StreamBase = _io.IOBase
except (ImportError, AttributeError):
    _StreamBase = object


class SlotFile:
    """A read-only medium (size, read(offset, n)) over a slot file."""

    __slots__ = ("size", "_f")

    def __init__(self, path):
        self._f = open(path, "rb")
        self._f.seek(0, 2)
        self.size = self._f.tell()

    def read(self, offset, n):
        self._f.seek(offset)
        return self._f.read(n)

    def close(self):
        self._f.close()


class ImageFile(_StreamBase):
    """A read-only file inside an image (what `import` reads a .mpy through)."""

    def __init__(self, medium, start, size):
        self._m = medium
        self._start = start
        self._size = size
        self._pos = 0

    def readinto(self, buf):
        n = self._size - self._pos
        if n > len(buf):
            n = len(buf)
        if n <= 0:
            return 0
        buf[:n] = self._m.read(self._start + self._pos, n)
        self._pos += n
        return n

    def read(self, n=-1):
        left = self._size - self._pos
        if n < 0 or n > left:
            n = left
        data = self._m.read(self._start + self._pos, n) if n > 0 else b""
        self._pos += n
        return data

    def ioctl(self, req, arg):
        return 0

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        pass


class ImageFS:
    """MicroPython VFS over a verified image: `os.mount(ImageFS(slot), "/app")` and put
    "/app" first on sys.path; modules are then imported straight from the slot.
    OSError(22) when the medium holds no readable image."""

    def __init__(self, medium):
        hdr = medium.read(0, _HDR_LEN) if medium.size >= _HDR_LEN else b""
        if len(hdr) < _HDR_LEN or hdr[:4] != _MAGIC:
            raise OSError(22)
        mlen = struct.unpack("<I", hdr[8:12])[0]
        try:
            man = json.loads(medium.read(_HDR_LEN, mlen))
            files = man["files"]
        except (ValueError, KeyError, TypeError):
            raise OSError(22)
        base = _HDR_LEN + mlen
        self._m = medium
        self._files = {}
        self._dirs = {"": 1}
        for f in files:
            self._files[f["path"]] = (base + f["offset"], f["size"])
            parts = f["path"].split("/")
            for i in range(1, len(parts)):
                self._dirs["/".join(parts[:i])] = 1
        self._cwd = "/"

    def _norm(self, path):
        # the VFS layer hands over paths relative to the mount point ("/controller/x.mpy")
        return path.strip("/")

    def mount(self, readonly, mkfs):
        pass

    def umount(self):
        pass

    def stat(self, path):
        p = self._norm(path)
        if p in self._files:
            return (0x8000, 0, 0, 0, 0, 0, self._files[p][1], 0, 0, 0)
        if p in self._dirs:
            return (0x4000, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        raise OSError(2)

    def open(self, path, mode):
        if "w" in mode or "a" in mode or "+" in mode:
            raise OSError(30)  # EROFS
        p = self._norm(path)
        if p not in self._files:
            raise OSError(2)
        start, size = self._files[p]
        return ImageFile(self._m, start, size)

    def ilistdir(self, path):
        p = self._norm(path)
        if p not in self._dirs:
            raise OSError(2)
        pre = p + "/" if p else ""
        seen = {}
        out = []
        for name in list(self._files) + list(self._dirs):
            if name and name.startswith(pre):
                head = name[len(pre):].split("/")[0]
                if head and head not in seen:
                    seen[head] = 1
                    isdir = (pre + head) in self._dirs
                    out.append((head, 0x4000 if isdir else 0x8000, 0))
        return iter(out)

    def chdir(self, path):
        self._cwd = path

    def getcwd(self):
        return self._cwd

    def statvfs(self, path):
        return (512, 512, 0, 0, 0, 0, 0, 0, 0, 255)
