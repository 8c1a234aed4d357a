"""The cache folder trusts only what no other user can have written (videomix_dali.cache)."""

import logging
import os
import stat
import subprocess
import threading
from pathlib import Path

import pytest

from videomix_dali.cache import UntrustedCacheError, cache_dir, open_cached, write_atomic
from videomix_dali.graph import cpu_plugin as native
from videomix_dali.source.probe_cache import _read_table, _write_table, cache_file

OTHER = 4242  # a uid that is not this user's
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="plants files of another uid (chown)")


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """The cache folder of an empty ``$XDG_CACHE_HOME``, not created yet."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "videomix_dali"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "videomix_dali.cache"]


def spoil(path: Path, how: str) -> None:
    """Make ``path`` group-writable or another user's."""
    if how == "group-writable":
        path.chmod(mode(path) | stat.S_IWGRP)
    else:
        os.chown(path, OTHER, -1)


def identity(path: Path) -> tuple:
    st = path.stat()
    return st.st_ino, st.st_size, st.st_mtime_ns, st.st_mode, st.st_uid


def test_folders_are_created_0700_and_files_0600_and_read_back(folder, caplog):
    table = folder / "tables-v1" / "ab" / "x.npz"
    assert cache_dir() == folder and not folder.exists()  # created by the first write
    assert write_atomic(table, lambda f: f.write(b"data"))
    for path in (folder.parent, folder, folder / "tables-v1", table.parent):
        assert mode(path) == 0o700, path
    assert mode(table) == 0o600 and os.listdir(table.parent) == ["x.npz"]
    with open_cached(table) as f:
        assert f.read() == b"data"
    assert cache_dir() == folder and warnings(caplog) == []


def test_a_clean_folder_of_the_user_is_used_as_before(folder, caplog):
    folder.mkdir(parents=True, mode=0o755)
    (folder / cache_file().name).touch(mode=0o644)  # readable by others is fine: not writable
    assert _write_table(cache_file(), {"key": "an error"})
    assert cache_dir() == folder and _read_table(cache_file()) == {"key": "an error"}
    assert warnings(caplog) == []


@pytest.mark.parametrize("how", ["group-writable", "foreign"])
def test_a_bad_folder_warns_once_and_caching_goes_to_a_private_folder(folder, caplog, how):
    folder.mkdir(parents=True, mode=0o700)
    spoil(folder, how)
    planted = folder / cache_file().name
    planted.write_bytes(b"planted")
    private = cache_dir()
    assert cache_dir() == private != folder and private.name.startswith("videomix_dali-")
    assert mode(private) == 0o700 and private.stat().st_uid == os.geteuid()
    assert _write_table(cache_file(), {"key": "an error"})
    assert _read_table(cache_file()) == {"key": "an error"} and cache_file().parent == private
    assert planted.read_bytes() == b"planted"
    (message,) = warnings(caplog)
    why = "group- or world-writable (drwx-w----)" if how != "foreign" else f"owned by uid {OTHER}"
    assert message.startswith(f"not using the cache folder {folder} ({folder} is ")
    assert why in message and message.endswith(f"caching in {private} for this process only")


@pytest.mark.parametrize(
    ("base_mode", "trusted"), [(0o755, True), (0o775, False), (0o777, False), (0o1777, True)]
)
def test_the_base_folder_may_be_writable_by_others_only_if_sticky(
    folder, caplog, base_mode, trusted
):
    folder.mkdir(parents=True, mode=0o700)
    folder.parent.chmod(base_mode)
    assert (cache_dir() == folder) == trusted
    assert len(warnings(caplog)) == (not trusted)


@pytest.mark.parametrize("how", ["group-writable", "foreign"])
def test_a_bad_probe_cache_file_is_not_read_and_is_reported_once(folder, caplog, how):
    cache = cache_file()
    assert _write_table(cache, {"key": "planted"})
    spoil(cache, how)
    with caplog.at_level(logging.WARNING):
        assert _read_table(cache) == {}
    (record,) = caplog.records
    assert record.name == "videomix_dali.source.probe_cache"
    assert record.getMessage().startswith(
        f"ignoring the probe cache {cache}, which it cannot use ({cache} is "
    )
    assert cache_dir() == folder  # only the file is refused, and replaced by the next write
    assert _write_table(cache, {"key": "probed"}) and _read_table(cache) == {"key": "probed"}


def test_a_bad_sub_folder_a_symlink_or_a_fifo_is_refused(folder, tmp_path):
    table = folder / "tables-v1" / "ab" / "x.npz"
    assert write_atomic(table, lambda f: f.write(b"data"))
    os.chown(folder / "tables-v1", OTHER, -1)
    with pytest.raises(UntrustedCacheError, match=f"{folder / 'tables-v1'} is owned by uid"):
        open_cached(table)
    assert not write_atomic(table, lambda f: f.write(b"new"))
    os.chown(folder / "tables-v1", os.geteuid(), -1)
    outside = tmp_path / "outside.npz"
    outside.write_bytes(b"planted")
    table.unlink()
    table.symlink_to(outside)
    with pytest.raises(OSError):
        open_cached(table)
    table.unlink()
    os.mkfifo(table)  # refused without blocking on the open
    with pytest.raises(UntrustedCacheError, match=f"{table} is not a regular file"):
        open_cached(table)


def test_the_temporary_file_never_follows_a_planted_symlink(folder, tmp_path):
    target = folder / "verify-v1.json"
    victim = tmp_path / "victim"
    victim.write_bytes(b"victim")
    folder.mkdir(parents=True)
    tmp = folder / f"{target.name}.{os.getpid()}-{threading.get_ident()}.tmp"
    tmp.symlink_to(victim)
    assert not write_atomic(target, lambda f: f.write(b"{}"))  # O_EXCL: the link is removed
    assert victim.read_bytes() == b"victim" and not tmp.is_symlink()
    assert write_atomic(target, lambda f: f.write(b"{}")) and target.read_bytes() == b"{}"


@pytest.fixture
def compiles(monkeypatch):
    """native._build with the compiler faked (it writes b"compiled") and loads recorded."""
    loaded: list[str] = []

    def compile_(cmd, **_):
        Path(cmd[cmd.index("-o") + 1]).write_bytes(b"compiled")
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(native.subprocess, "run", compile_)
    monkeypatch.setattr(native.plugin_manager, "load_library", loaded.append)
    return loaded


def plugin_name(monkeypatch, tmp_path) -> str:
    """The file name _build gives the plugin here (from a build in a clean folder)."""
    with monkeypatch.context() as m:
        m.setenv("XDG_CACHE_HOME", str(tmp_path / "clean"))
        return native._build().name


@pytest.mark.parametrize("how", ["group-writable", "foreign"])
def test_a_plugin_planted_in_a_bad_folder_is_not_loaded(
    folder, tmp_path, monkeypatch, caplog, compiles, how
):
    planted = folder / plugin_name(monkeypatch, tmp_path)
    folder.mkdir(parents=True, mode=0o700)
    spoil(folder, how)
    planted.write_bytes(b"planted")
    before = identity(planted)
    assert native.load_plugin.__wrapped__() is None
    (used,) = compiles
    assert Path(used).parent == cache_dir() != folder and Path(used).read_bytes() == b"compiled"
    assert identity(planted) == before and planted.read_bytes() == b"planted"
    assert len(warnings(caplog)) == 1


@pytest.mark.parametrize("how", ["group-writable", "foreign"])
def test_a_bad_plugin_in_the_users_folder_is_compiled_again(
    folder, tmp_path, monkeypatch, caplog, compiles, how
):
    planted = folder / plugin_name(monkeypatch, tmp_path)
    folder.mkdir(parents=True, mode=0o700)
    planted.write_bytes(b"planted")
    spoil(planted, how)
    assert native.load_plugin.__wrapped__() is None
    assert compiles == [str(planted)] and planted.read_bytes() == b"compiled"
    assert mode(planted) == 0o600 and planted.stat().st_uid == os.geteuid()
    assert warnings(caplog) == []
