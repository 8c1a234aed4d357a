"""The package's cache folder and how files are written into and read from it.

``$XDG_CACHE_HOME/videomix_dali`` (default ``~/.cache/videomix_dali``) holds the probe cache,
the MP4 sample tables, the decode-check cache and the compiled CPU plugin: whoever can write
there could run code in (the plugin) or mislead (frame counts, byte offsets) every process that
uses it. So, as ssh does, the package trusts only what no other user can have written:

- :func:`cache_dir` uses the folder only where it and its base (``$XDG_CACHE_HOME`` or
  ``~/.cache``, which may also be root's) are this user's and not group- or world-writable;
  a base may be writable by others only if sticky, like ``/tmp`` (nobody else can then rename
  our folder away), so a group-writable ``~/.cache`` counts against it; folders above the base
  are the user's choice. Otherwise it warns once, naming the folder and why, and caches in a
  private temporary folder for the rest of the process (removed at exit);
- :func:`open_cached` refuses a file, or a sub-folder on the way to it, that is another user's,
  group- or world-writable, or a symlink, as if unreadable: it is rebuilt and replaced;
- :func:`write_atomic` creates folders 0700 and writes files 0600 through an exclusively created
  temporary file, never through a symlink, then renames it.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import shutil
import stat
import tempfile
import threading
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger(__name__)

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # a FIFO: no hang
_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_WRITABLE = stat.S_IWGRP | stat.S_IWOTH
_lock = threading.Lock()
_chosen: dict[Path, Path] = {}  # cache folder asked for -> the folder used


class UntrustedCacheError(OSError):
    """A cache folder or file that another user could have written."""


def cache_dir() -> Path:
    """The package's cache folder where it passes the checks (module docstring; created 0700
    on the first write), else a private temporary folder."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    folder = base / "videomix_dali"
    with _lock:
        if folder not in _chosen:
            chosen = _trusted_or_private(folder)
            if chosen is None:
                return folder
            _chosen[folder] = chosen
        return _chosen[folder]


def file_key(path: Path, st: os.stat_result) -> str:
    """What identifies the contents of the file ``path`` (status ``st``) to the caches: its
    path, size and mtime."""
    return f"{path}|{st.st_size}|{st.st_mtime_ns}"


def open_cached(path: Path) -> BinaryIO:
    """``path``, a file in :func:`cache_dir`, open for reading once it and the sub-folders on the
    way to it are checked; :class:`UntrustedCacheError` where another user could have written
    them (a file outside :func:`cache_dir`: only the file is checked)."""
    folder = _open_folder(path.parent, create=False)
    try:
        fd = os.open(path.name, _READ, dir_fd=folder)
    finally:
        os.close(folder)
    try:
        _check(path, os.fstat(fd), folder=False)
    except OSError:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


def write_atomic(path: Path, write: Callable[[BinaryIO], object]) -> bool:
    """Write ``path`` (0600) through a temporary file, so that readers never see half a file;
    False where it cannot (a read-only cache folder only costs a re-probe next time)."""
    tmp = f"{path.name}.{os.getpid()}-{threading.get_ident()}.tmp"
    try:
        folder = _open_folder(path.parent, create=True)
    except OSError:
        return False
    try:
        with os.fdopen(os.open(tmp, _NEW, 0o600, dir_fd=folder), "wb") as f:
            write(f)
        os.replace(tmp, path.name, src_dir_fd=folder, dst_dir_fd=folder)
        return True
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=folder)
        return False
    finally:
        os.close(folder)


def _trusted_or_private(folder: Path) -> Path | None:
    """``folder`` where it and its base pass the checks, a private temporary folder where
    either fails them (warned), None where ``folder`` does not exist yet."""
    try:
        _check(folder.parent, os.stat(folder.parent), folder=True, base=True)
        _check(folder, os.stat(folder), folder=True)
    except FileNotFoundError:
        return None
    except OSError as exc:
        private = _private_folder()
        log.warning(
            "not using the cache folder %s (%s); caching in %s for this process only",
            folder,
            exc,
            private,
        )
        return private
    return folder


def _check(path: Path, st: os.stat_result, *, folder: bool, base: bool = False) -> None:
    """Raise :class:`UntrustedCacheError` unless ``st`` (of ``path``) is a folder or a regular
    file as asked, this user's (or root's, for the ``base`` folder) and writable by nobody else
    (or sticky, for the ``base`` folder)."""
    user = os.geteuid()
    if not (stat.S_ISDIR if folder else stat.S_ISREG)(st.st_mode):
        why = "not a folder" if folder else "not a regular file"
    elif st.st_uid != user and not (base and st.st_uid == 0):
        why = f"owned by uid {st.st_uid}, not by this user (uid {user})"
    elif st.st_mode & _WRITABLE and not (base and st.st_mode & stat.S_ISVTX):
        why = f"group- or world-writable ({stat.filemode(st.st_mode)})"
    else:
        return
    raise UntrustedCacheError(f"{path} is {why}")


def _open_folder(folder: Path, create: bool) -> int:
    """A descriptor of ``folder``, reached from :func:`cache_dir` (checked again) one checked
    sub-folder at a time (all created 0700 where ``create``), never through a symlink; a folder
    outside it as it is."""
    root = cache_dir()
    if not folder.is_relative_to(root):
        return os.open(folder, _DIR)
    if create:
        root.parent.mkdir(0o700, parents=True, exist_ok=True)
        root.mkdir(0o700, exist_ok=True)
    fd, at = os.open(root, _DIR), root
    try:
        _check(root, os.fstat(fd), folder=True)
        for name in folder.relative_to(root).parts:
            if create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(name, 0o700, dir_fd=fd)
            sub, at = os.open(name, _DIR | os.O_NOFOLLOW, dir_fd=fd), at / name
            os.close(fd)
            fd = sub
            _check(at, os.fstat(fd), folder=True)
    except OSError:
        os.close(fd)
        raise
    return fd


@cache
def _private_folder() -> Path:
    """This process's own temporary cache folder (0700), removed at exit."""
    folder = Path(tempfile.mkdtemp(prefix="videomix_dali-"))
    atexit.register(_remove, folder, os.getpid())
    return folder


def _remove(folder: Path, pid: int) -> None:
    if os.getpid() == pid:  # not in a forked child, whose parent still uses it
        shutil.rmtree(folder, ignore_errors=True)
