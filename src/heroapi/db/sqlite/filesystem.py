"""Refusing a database on a network filesystem, once, at connect.

WAL mode keeps its index in a memory-mapped `-shm` file beside the database and coordinates
processes with POSIX locks on it. On a network filesystem the mapping is not shared between
hosts and the locks are emulated, partial or absent: two writers can both believe they hold
the lock, and the database is corrupted without an error (SQLite's "WAL does not work over a
network filesystem"). Better a server that does not start than one that loses data later.

The filesystem is found in `/proc/self/mountinfo` (Linux): the mount whose mount point is the
longest prefix of the directory holding the database file (the directory, because the file
may not exist yet). Elsewhere there is nothing to read, and nothing is checked.
"""

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from heroapi.db.errors import DatabaseError

MOUNTINFO: Final = Path("/proc/self/mountinfo")

# Filesystem types (mountinfo's name; FUSE ones as `fuse.<subtype>`) that share a directory
# between hosts over a network, and so cannot hold a WAL database.
NETWORK_FILESYSTEMS: Final = frozenset(
    {
        "nfs",  # NFS v2/v3 ...
        "nfs4",  # ... and v4
        "cifs",  # SMB shares (Windows, Samba, NAS boxes)
        "smb3",
        "smbfs",
        "9p",  # Plan 9 protocol: WSL2's Windows drives, QEMU host shares
        "afs",  # AFS / OpenAFS
        "ceph",  # CephFS, kernel client ...
        "fuse.ceph-fuse",  # ... and FUSE client
        "glusterfs",
        "fuse.glusterfs",
        "lustre",  # cluster filesystems, one tree for many hosts
        "gpfs",
        "beegfs",
        "fuse.sshfs",  # a remote directory over SSH, no shared locks at all
    }
)


class NetworkFilesystem(DatabaseError):
    """The database file's directory is on a network filesystem: SQLite in WAL mode would
    corrupt it. A setup error: nothing will change by retrying."""


@dataclass(frozen=True, slots=True)
class Mount:
    point: str
    fstype: str


_ESCAPE = re.compile(r"\\([0-7]{3})")


def _unescape(field: str) -> str:
    """A mountinfo path with its octal escapes (`\\040` space, `\\011` tab, `\\012` newline,
    `\\134` backslash) decoded."""
    return _ESCAPE.sub(lambda match: chr(int(match.group(1), 8)), field)


def parse_mountinfo(text: str) -> list[Mount]:
    """Each line: `id parent major:minor root MOUNT-POINT options [optional...] - FSTYPE
    source super-options` (proc(5)); the optional fields vary, the `-` ends them."""
    mounts = []
    for line in text.splitlines():
        fields = line.split(" ")
        try:
            separator = fields.index("-", 6)
        except ValueError:
            continue  # not a mount line
        if separator + 1 < len(fields):
            mounts.append(Mount(_unescape(fields[4]), fields[separator + 1]))
    return mounts


def mount_holding(directory: str, mounts: list[Mount]) -> Mount | None:
    """The mount `directory` (absolute, symlinks resolved) is on: the longest mount point
    that is it or one of its parents. Of mounts on the same point, the last one mounted (the
    last listed) hides the others."""
    found: Mount | None = None
    longest = -1
    for mount in mounts:
        point = mount.point.rstrip("/") or "/"
        inside = point == "/" or directory == point or directory.startswith(point + "/")
        if inside and len(point) >= longest:
            found, longest = mount, len(point)
    return found


def refuse_network_filesystem(database_path: str, mountinfo: Path = MOUNTINFO) -> None:
    """Raise `NetworkFilesystem` (one line: what, where, why, what to do) if the directory
    holding `database_path` is on a network filesystem."""
    try:
        text = mountinfo.read_text(encoding="utf-8", errors="surrogateescape")
    except OSError:
        return  # not Linux, or no /proc: nothing to go by
    directory = os.path.realpath(os.path.dirname(os.path.abspath(database_path)))
    mount = mount_holding(directory, parse_mountinfo(text))
    if mount is not None and mount.fstype in NETWORK_FILESYSTEMS:
        raise NetworkFilesystem(
            f"{database_path} is on a network filesystem ({mount.fstype} mounted at "
            f"{mount.point}): SQLite's WAL mode needs shared memory and file locks that only a "
            "local filesystem gives; put the database on a local disk, or use PostgreSQL or "
            "MariaDB"
        )
