"""Reading an untrusted .zip safely: what the run import (engine/runs/transfer.py) and dataset uploads
(engine/data/uploads.py) share.

Everything that can be checked from the zip's central directory is checked before a single member is
decompressed, so a bomb costs no memory before it is refused:

- the member count;
- every name: no absolute path, drive letter, '..' part or NUL (nothing may land outside a folder if
  anything ever extracted it); no symbolic link; no name twice;
- no encryption, only stored or deflated members;
- each member's ratio (unpacked / stored, over `ratio_floor`) and its own cap (by suffix);
- the total unpacked size, absolutely and as a multiple of the archive's size (a bomb of many
  members, each small enough to pass the per-member ratio check).

Then `read_members` decompresses what passed, never more than each header declares (zipfile checks
the CRC). `png_size` reads a PNG's pixel count from its IHDR header, before any decoder runs.
"""

from __future__ import annotations

import io
import os
import re
import stat
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

from engine.data.dataset import DataError

MiB = 2**20


class ArchiveError(DataError):
    """The archive is damaged, unsafe or over a limit; the message says which and what to do."""


@dataclass(frozen=True)
class ArchiveLimits:
    """What one kind of archive may be. The messages name it (`what`) and say what to do (`advice`)."""

    what: str  # "a run export", "a dataset upload": the messages' subject
    max_members: int  # entries in the zip's directory, folders included
    max_total_bytes: int  # all members that are read, once unpacked
    advice: str  # what to do when the total is too large, e.g. "upload fewer images"
    max_ratio: float = 100  # unpacked / stored, for a member over ratio_floor (a zip bomb is ~1000×)
    ratio_floor: int = MiB  # small members (text, tiny PNGs) may compress well: the ratio counts above this
    max_total_ratio: float = 20  # all members together, unpacked / the archive's size ...
    small_archive_bytes: int = 16 * MiB  # ... once they unpack to more than this
    max_member_bytes: dict[str, int] = field(default_factory=dict)  # by lower-case suffix (".png")


def open_zip(data: bytes, not_a_zip: str) -> zipfile.ZipFile:
    """The zip in `data`; ArchiveError(`not_a_zip`) when it is not one."""
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError, NotImplementedError):
        raise ArchiveError(not_a_zip) from None


def check_name(name: str) -> None:
    """Refuse names that would land outside the folder they were extracted into."""
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or ".." in parts or "\x00" in name:
        raise ArchiveError(f"the archive holds an unsafe path {name[:200]!r} (absolute or with '..'); refused")


def check_members(zf: zipfile.ZipFile, archive_bytes: int, limits: ArchiveLimits,
                  select: Callable[[zipfile.ZipInfo], bool] = lambda info: True) -> list[zipfile.ZipInfo]:
    """The members to read, after the name, type and size checks (from the zip's directory alone).

    select(info) is asked about every member whose name is safe and that is no link: True to read it,
    False to leave it out (then no other check applies to it); it may raise to refuse the archive.
    """
    infos = zf.infolist()
    if len(infos) > limits.max_members:
        raise ArchiveError(f"the archive holds {len(infos):,} files, more than the {limits.max_members:,} "
                           f"{limits.what} may hold; {limits.advice}")
    seen, total, keep = set(), 0, []
    for info in infos:
        name = info.filename
        check_name(name)
        if stat.S_ISLNK(info.external_attr >> 16):
            raise ArchiveError(f"the archive member {name[:200]!r} is a symbolic link; refused")
        if not select(info):
            continue
        if name in seen:
            raise ArchiveError(f"the archive holds {name[:200]!r} twice; refused")
        seen.add(name)
        if info.flag_bits & 0x1:
            raise ArchiveError(f"the archive member {name[:200]!r} is encrypted; make the archive without a password")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise ArchiveError(f"the archive member {name[:200]!r} uses an unsupported compression; "
                               "only stored and deflated members are read")
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > limits.ratio_floor and ratio > limits.max_ratio:
            raise ArchiveError(f"the archive member {name[:200]!r} unpacks {ratio:.0f}× larger than it is stored "
                               f"(over {limits.max_ratio:.0f}×): it looks like a zip bomb; refused")
        limit = limits.max_member_bytes.get(os.path.splitext(name)[1].lower())
        if limit is not None and info.file_size > limit:
            raise ArchiveError(f"the archive member {name[:200]!r} is {info.file_size / MiB:.1f} MiB, over the "
                               f"{limit / MiB:.0f} MiB such a file of {limits.what} can be; refused")
        total += info.file_size
        if total > limits.max_total_bytes:
            raise ArchiveError(f"the archive unpacks to more than {limits.max_total_bytes // MiB} MiB, the limit "
                               f"for {limits.what}; {limits.advice}")
        keep.append(info)
    if total > max(limits.max_total_ratio * archive_bytes, limits.small_archive_bytes):
        raise ArchiveError(f"the archive's files unpack to {total / MiB:.0f} MiB, "
                           f"{total / max(archive_bytes, 1):.0f}× its size (over {limits.max_total_ratio:.0f}×): "
                           "it looks like a zip bomb; refused")
    return keep


def read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    """One member's bytes; zipfile never returns more than the declared size and checks the CRC."""
    try:
        with zf.open(info) as f:
            data = f.read(info.file_size + 1)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError, RuntimeError) as e:
        raise ArchiveError(f"the archive member {info.filename[:200]!r} cannot be read "
                           f"({type(e).__name__}: {e}); the file is damaged") from None
    if len(data) != info.file_size:
        raise ArchiveError(f"the archive member {info.filename[:200]!r} is not the size its header says; "
                           "the file is damaged")
    return data


def read_members(zf: zipfile.ZipFile, infos: list[zipfile.ZipInfo]) -> dict[str, bytes]:
    """Decompress each member (see read_member): name → bytes."""
    return {info.filename: read_member(zf, info) for info in infos}


PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk, the first after the signature, without Pillow.

    The size is known from 24 bytes, before any decoder runs: a 39 KB file claiming 6300×6300 pixels
    would cost 340 MB to decode.
    """
    if len(data) < 24 or data[12:16] != b"IHDR":
        raise ArchiveError("a PNG in the archive has no IHDR header; the file is damaged")
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
