"""Reopen a run file whose writer died: clear the HDF5 superblock's file-consistency flags.

A SWMR writer marks the superblock "open for write"; if the process is killed the mark stays, and the
HDF5 library refuses every non-SWMR open ("may use h5clear"). SWMR readers can still read such a file;
to mark it interrupted or resume it we clear the flags, as ``h5clear -s`` does, without needing the
HDF5 command-line tools: superblock versions 2 and 3 keep the flags in byte 11 and end with a Jenkins
lookup3 checksum of the preceding bytes.
"""

from __future__ import annotations

from pathlib import Path

from daq.core.errors import DataFileError
from daq.storage import layout as L
from daq.storage.hdf5 import open_h5
from daq.storage.lock import writer_alive

_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_MASK = 0xFFFFFFFF


def _rot(x: int, k: int) -> int:
    return ((x << k) | (x >> (32 - k))) & _MASK


def lookup3(data: bytes, initval: int = 0) -> int:
    """Bob Jenkins' lookup3 ``hashlittle``, the checksum HDF5 uses for metadata."""
    length = len(data)
    a = b = c = (0xDEADBEEF + length + initval) & _MASK
    i = 0
    while length > 12:
        a = (a + int.from_bytes(data[i : i + 4], "little")) & _MASK
        b = (b + int.from_bytes(data[i + 4 : i + 8], "little")) & _MASK
        c = (c + int.from_bytes(data[i + 8 : i + 12], "little")) & _MASK
        a = (a - c) & _MASK
        a ^= _rot(c, 4)
        c = (c + b) & _MASK
        b = (b - a) & _MASK
        b ^= _rot(a, 6)
        a = (a + c) & _MASK
        c = (c - b) & _MASK
        c ^= _rot(b, 8)
        b = (b + a) & _MASK
        a = (a - c) & _MASK
        a ^= _rot(c, 16)
        c = (c + b) & _MASK
        b = (b - a) & _MASK
        b ^= _rot(a, 19)
        a = (a + c) & _MASK
        c = (c - b) & _MASK
        c ^= _rot(b, 4)
        b = (b + a) & _MASK
        i += 12
        length -= 12
    if length == 0:
        return c
    tail = data[i:] + b"\x00" * (12 - length)
    a = (a + int.from_bytes(tail[0:4], "little")) & _MASK
    b = (b + int.from_bytes(tail[4:8], "little")) & _MASK
    c = (c + int.from_bytes(tail[8:12], "little")) & _MASK
    c ^= b
    c = (c - _rot(b, 14)) & _MASK
    a ^= c
    a = (a - _rot(c, 11)) & _MASK
    b ^= a
    b = (b - _rot(a, 25)) & _MASK
    c ^= b
    c = (c - _rot(b, 16)) & _MASK
    a ^= c
    a = (a - _rot(c, 4)) & _MASK
    b ^= a
    b = (b - _rot(a, 14)) & _MASK
    c ^= b
    c = (c - _rot(b, 24)) & _MASK
    return c


def writer_flag_set(path: str | Path) -> bool:
    """True if the file's superblock says a writer has it open (or died with it open)."""
    with open(path, "rb") as fh:
        head = fh.read(12)
    return len(head) == 12 and head[:8] == _SIGNATURE and head[8] in (2, 3) and head[11] != 0


def clear_writer_flags(path: str | Path) -> bool:
    """Clear the consistency flags of a file left open by a dead writer; True if anything changed.

    Only call this when no process is writing the file (the run's lock says so).
    """
    path = Path(path)
    with open(path, "r+b") as fh:
        head = fh.read(8 + 4)
        if len(head) < 12 or head[:8] != _SIGNATURE:
            raise DataFileError(f"{path}: not a readable run file (no HDF5 signature at the start)")
        version, offset_size = head[8], head[9]
        if version not in (2, 3):
            return False  # older superblocks keep no consistency flags in this form
        size = 12 + 4 * offset_size  # base, extension, EOF and root addresses
        fh.seek(0)
        block = bytearray(fh.read(size + 4))
        if len(block) < size + 4:
            raise DataFileError(f"{path}: superblock truncated")
        if int.from_bytes(block[size : size + 4], "little") != lookup3(bytes(block[:size])):
            raise DataFileError(f"{path}: superblock checksum mismatch; the file header is damaged")
        if block[11] == 0:
            return False
        block[11] = 0
        block[size : size + 4] = lookup3(bytes(block[:size])).to_bytes(4, "little")
        fh.seek(0)
        fh.write(bytes(block))
    return True


def _superblock(path: Path, head: bytes) -> tuple[int, int, int]:
    """(size of offsets, end-of-file address, root object header address) of a version 2/3 superblock
    whose checksum holds; DataFileError naming what is wrong otherwise."""
    offset_size = head[9]
    if offset_size not in (2, 4, 8):
        raise DataFileError(f"{path}: damaged run file: the superblock gives {offset_size}-byte addresses")
    size = 12 + 4 * offset_size
    if len(head) < size + 4:
        raise DataFileError(f"{path}: damaged run file: the superblock is cut short")
    if int.from_bytes(head[size : size + 4], "little") != lookup3(head[:size]):
        raise DataFileError(f"{path}: damaged run file: the superblock's checksum does not match")
    fields = [int.from_bytes(head[12 + i * offset_size : 12 + (i + 1) * offset_size], "little") for i in range(4)]
    return offset_size, fields[2], fields[3]


def _object_header_ok(block: bytes) -> bool:
    """True if ``block`` starts with a version 2 object header whose first chunk's checksum holds."""
    if len(block) < 7 or block[:4] != b"OHDR" or block[4] != 2:
        return False
    flags = block[5]
    at = 6 + (16 if flags & 0x20 else 0) + (4 if flags & 0x10 else 0)
    width = 1 << (flags & 0x03)
    if len(block) < at + width:
        return False
    chunk = int.from_bytes(block[at : at + width], "little")
    end = at + width + chunk
    if len(block) < end + 4:
        return False
    return int.from_bytes(block[end : end + 4], "little") == lookup3(block[:end])


def check_structure(path: str | Path, live: bool = False) -> None:
    """Recognise a damaged run file from its structure before the HDF5 library walks it: the HDF5
    signature, the superblock's checksum, the file's length against the end-of-file address the
    superblock records (skipped while a writer is ``live``), and the root group's object header and its
    checksum. Raises DataFileError saying which part is damaged; files of older superblock versions (not
    written by this product) pass unchecked."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(64)
        if len(head) < 12 or head[:8] != _SIGNATURE:
            raise DataFileError(f"{path}: not a readable run file (no HDF5 signature at the start)")
        if head[8] not in (2, 3):
            return
        _, eof, root = _superblock(path, head)
        if not live and eof > size:
            raise DataFileError(
                f"{path}: damaged run file: cut short at {size} bytes where its superblock records {eof} "
                f"(a copy that did not finish, or a full disk)"
            )
        if root >= size:
            raise DataFileError(f"{path}: damaged run file: the root group's address lies beyond the end of the file")
        fh.seek(root)
        if not _object_header_ok(fh.read(4096)):
            raise DataFileError(f"{path}: damaged run file: the root group's object header is damaged")


def left_empty(path: Path) -> bool:
    """True if ``path`` is a run file left by a run killed before it recorded anything."""
    if writer_alive(path):
        return False
    try:
        flagged = writer_flag_set(path)
        with open_h5(path, "r", swmr=flagged) as f:
            status = f.attrs.get("status", "")
            return status in (L.RUNNING, L.INTERRUPTED) and len(f["timeseries/t"]) == 0 and len(f["steps"]) == 0
    except (OSError, KeyError, ValueError):
        return False


def refuse_existing(path: Path) -> None:
    """The error for an ``--out`` that exists, saying what it is and the way on."""
    if left_empty(path):
        raise DataFileError(
            f"{path}: was left by a run killed before it recorded anything; remove it (it holds no "
            f"samples) or choose another --out (--force where the command has it)"
        )
    raise DataFileError(f"{path}: already exists; choose another --out, remove it or use --force where offered")
