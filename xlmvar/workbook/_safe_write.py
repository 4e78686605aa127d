"""Write a file without ever damaging what is there.

Guarantees of :func:`atomic_write`:

- the new content goes to a temporary file in the target's folder, is flushed and
  ``fsync``-ed, renamed over the target in one step, and the folder is ``fsync``-ed, so a
  crash leaves either the old file or the new one, never half of one;
- a target that exists keeps its mode, owner and group; a new file gets the mode the
  umask allows (``0o666 & ~umask``), as any program creating a file would;
- a symbolic link is followed when ``follow_symlink`` (``--in-place``): its target is
  replaced and the link stays a link;
- the temporary file is removed on any failure, on Ctrl-C and on SIGTERM.

:func:`check_output` refuses, before any work is done, a target that is the input (same
path, a symbolic or hard link to it) or anything but a regular file or a new path.
"""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import tempfile
import threading
from pathlib import Path

__all__ = ["check_output", "atomic_write"]


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_output(target, sources=(), *, follow_symlink: bool = False, what: str = "output", in_place: bool = True) -> Path:
    """Check that ``target`` may be written; return the path to write to.

    Parameters
    ----------
    target : path
        The file to write.
    sources : sequence of paths
        Inputs that must never be overwritten (same path, symbolic or hard link).
    follow_symlink : bool
        Accept a symbolic link and return the file it points to (``--in-place``); otherwise
        a symbolic link is refused.
    what : str
        How the target is called in messages (``output``, ``-o``).
    in_place : bool
        The command offers ``--in-place`` (``calc``): the refusal of an input says so.

    Raises
    ------
    ValueError
        When the target is an input, a symbolic link (unless followed), a folder, a FIFO,
        a device or a socket, or its folder does not exist or cannot be written to.
    """
    target = Path(target)
    try:
        info = os.lstat(target)
    except FileNotFoundError:
        info = None
    if info is not None and stat.S_ISLNK(info.st_mode):
        if not follow_symlink:
            raise ValueError(f"{what}: {target} is a symbolic link; refusing to replace it (give the file it points to)")
        target = Path(os.path.realpath(target))
        try:
            info = os.lstat(target)
        except FileNotFoundError:
            info = None
    if info is not None and not stat.S_ISREG(info.st_mode):
        kind = "a folder" if stat.S_ISDIR(info.st_mode) else "not a regular file (a FIFO, device or socket)"
        raise ValueError(f"{what}: {target} is {kind}; refusing to write there")
    for source in sources:
        source = Path(source)
        same = Path(os.path.realpath(target)) == Path(os.path.realpath(source)) or (info is not None and _same_file(target, source))
        if same and not follow_symlink:
            hint = " (use --in-place)" if in_place else ""
            noun = "workbook" if source.suffix.lower() in (".xlsx", ".xlsm", ".xltx", ".xltm") else "file"
            raise ValueError(f"{what}: {target} is the input {noun} {source}; refusing to overwrite it{hint}")
    if not target.parent.is_dir():
        raise ValueError(f"{what}: folder {target.parent} does not exist")
    if not os.access(target.parent, os.W_OK | os.X_OK):  # the temporary file goes there
        raise ValueError(f"{what}: folder {target.parent} cannot be written to")
    return target


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_folder(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system lets a folder be opened
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class _Terminated(BaseException):
    """Raised inside the write when SIGTERM arrives, so the temporary file is removed."""


@contextlib.contextmanager
def _cleanup_on_sigterm():
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise _Terminated(signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def atomic_write(target, write, *, follow_symlink: bool = False) -> Path:
    """Write ``target`` through ``write(tmp_path)`` atomically; return the path written.

    See the module docstring for what is guaranteed.  On SIGTERM the temporary file is
    removed and the process ends with status 143, as the default action would.
    """
    target = Path(target)
    if follow_symlink and target.is_symlink():
        target = Path(os.path.realpath(target))
    try:
        existing = os.stat(target)
    except FileNotFoundError:
        existing = None
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with _cleanup_on_sigterm():
            write(tmp)
            if existing is not None:
                os.chmod(tmp, stat.S_IMODE(existing.st_mode))
                if (existing.st_uid, existing.st_gid) != (os.stat(tmp).st_uid, os.stat(tmp).st_gid):
                    try:
                        os.chown(tmp, existing.st_uid, existing.st_gid)
                    except PermissionError:
                        raise ValueError(
                            f"output: {target} belongs to another user or group, which this process cannot keep; "
                            "refusing to replace it"
                        ) from None
            else:
                os.chmod(tmp, 0o666 & ~_umask())
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
            _fsync_folder(target.parent)
            os.replace(tmp, target)
            _fsync_folder(target.parent)
    except _Terminated:
        tmp.unlink(missing_ok=True)
        raise SystemExit(128 + signal.SIGTERM)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target
