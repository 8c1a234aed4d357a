"""``videomix-dali prepare``: re-encoded trees, their indexes, resuming, broken inputs, and
the data it must never destroy or misstate (its source, the user's files, interrupted runs)."""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from pathlib import Path

import av
import numpy as np
import pytest
from videos import decode_video, ramp_video, write_video

from videomix_dali import read_index
from videomix_dali.source.probe import nvdec_unusable_reason, probe_video
from videomix_dali.tools import prepare as prepare_module
from videomix_dali.tools.cli import main
from videomix_dali.tools.prepare import FAILURES, MANIFEST, PathOverlapError, output_size, prepare

GOP = 8
FRAMES = {"run/a.webm": 40, "run/b.mp4": 20, "walk/c.webm": 33}  # source -> frame count
CUTS = {40: (0, 8, 16, 24, 32), 20: (0, 8, 16), 33: (0, 8, 16, 24, 32)}


def _write_source(path: Path, num_frames: int, seed: int) -> None:
    """VP9 .webm (the encoder's keyframe interval) or H.264 .mp4, 96x128."""
    codec = "libx264" if path.suffix == ".mp4" else "libvpx-vp9"
    write_video(path, ramp_video(num_frames, 96, 128, seed), codec=codec)


@pytest.fixture
def dataset(tmp_path) -> Path:
    """Folder-per-class source: run/a.webm (40 frames), run/b.mp4 (20), walk/c.webm (33)."""
    for seed, (rel, frames) in enumerate(FRAMES.items()):
        _write_source(tmp_path / "src" / rel, frames, seed)
    return tmp_path / "src"


def _audio_only(path: Path) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16")
        frame.sample_rate, frame.pts = 8000, 0
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def test_copy_remuxes_the_packets_as_they_are_into_matroska_cut_at_keyframes(tmp_path):
    src = tmp_path / "src"
    clips = {"run/a.mp4": ("libx264", 0), "walk/b.webm": ("libvpx-vp9", 1)}  # x264: B-frames
    for rel, (codec, seed) in clips.items():
        write_video(src / rel, ramp_video(30, 96, 128, seed), codec=codec, gop=10)
    result = prepare(src, tmp_path / "out", codec="copy", workers=1)
    assert (result.encoded, result.failures) == (2, [])
    for rel in clips:
        source, out = src / rel, (tmp_path / "out" / rel).with_suffix(".mkv")
        with av.open(str(source)) as a, av.open(str(out)) as b:
            packets = [bytes(p) for p in a.demux(video=0) if p.size]
            assert [bytes(p) for p in b.demux(video=0) if p.size] == packets  # not re-encoded
        with av.open(str(source)) as a:
            keyframes = tuple(i for i, f in enumerate(a.decode(video=0)) if f.key_frame)
        info = probe_video(out)
        assert (info.num_frames, info.height, info.width) == (30, 96, 128)
        assert info.cuts.frames == keyframes and len(keyframes) >= 3  # a cluster at each
        np.testing.assert_array_equal(decode_video(out), decode_video(source))


def test_output_size_keeps_the_aspect_with_even_sides():
    assert output_size(96, 128, 64) == (64, 86)
    assert output_size(1080, 1920, 256) == (256, 456)
    assert output_size(340, 256, 256) == (340, 256)


def test_folder_round_trip_in_both_codecs(dataset, tmp_path):
    result = prepare(dataset, tmp_path / "out", codec="both", short_side=64, gop=GOP, workers=2)
    assert (result.fmt, result.encoded, result.reused, result.failures) == ("folder", 6, 0, [])
    source = read_index(dataset)
    for codec, suffix in (("vp9", ".webm"), ("h264", ".mkv")):
        tree = tmp_path / "out" / codec
        assert result.indexes[codec] == tree
        index = read_index(tree)
        assert index.classes == source.classes == ["run", "walk"]
        got = [(e.path.relative_to(tree).as_posix(), e.label) for e in index.entries]
        assert got == [(f"run/a{suffix}", 0), (f"run/b{suffix}", 0), (f"walk/c{suffix}", 1)]
        for entry, frames in zip(index.entries, FRAMES.values()):
            info = probe_video(entry.path)
            assert (info.num_frames, info.height, info.width) == (frames, 64, 86)
            assert (info.codec, info.pix_fmt) == (codec, "yuv420p")
            assert info.cuts is not None and info.cuts.frames == CUTS[frames]
            if codec == "h264":
                assert nvdec_unusable_reason(info) is None
    assert not (tmp_path / "out" / FAILURES).exists()


def test_file_list_round_trip_keeps_labels_and_frame_ranges(dataset, tmp_path):
    (dataset / "train.txt").write_text("run/a.webm 1 4 20\nwalk/c.webm 0\nrun/a.webm 1\n")
    result = prepare(dataset / "train.txt", tmp_path / "out", short_side=64, gop=GOP, workers=2)
    assert (result.fmt, result.encoded, result.failures) == ("file_list", 2, [])
    out = tmp_path / "out" / "train.txt"
    assert result.indexes == {"vp9": out}
    assert out.read_text() == "run/a.webm 1 4 20\nwalk/c.webm 0\nrun/a.webm 1\n"
    index = read_index(out)
    got = [(e.path, e.label, e.start, e.end) for e in index.entries]
    a, c = tmp_path / "out" / "run" / "a.webm", tmp_path / "out" / "walk" / "c.webm"
    assert got == [(a, 1, 4, 20), (c, 0, None, None), (a, 1, None, None)]
    assert [probe_video(p).num_frames for p in (a, c)] == [40, 33]


def _kinetics(src: Path) -> tuple[Path, dict]:
    for rel in ("run/abc_000001_000011.webm", "walk/x_y_000000_000010.webm"):
        _write_source(src / rel, 12, 0)
    csv = "label,youtube_id,time_start,time_end,split\nrun,abc,1,11,train\nwalk,x_y,0,10,train\n"
    (src / "train.csv").write_text(csv)
    return src / "train.csv", {"split": "train"}


def _ssv2(src: Path) -> tuple[Path, dict]:
    for vid in ("12", "7"):
        _write_source(src / "videos" / f"{vid}.webm", 12, 0)
    (src / "labels").mkdir()
    (src / "labels" / "labels.json").write_text('{"Pushing something": "0", "Pulling it": "1"}')
    items = (
        '[{"id": "12", "template": "Pulling it"}, {"id": "7", "template": "Pushing [something]"}]'
    )
    (src / "labels" / "train.json").write_text(items)
    return src / "labels" / "train.json", {"root": src / "videos"}


def _ucf101(src: Path) -> tuple[Path, dict]:
    for rel in ("Run/v_Run_g01_c01.avi", "Walk/v_Walk_g01_c01.avi"):
        write_video(src / rel, ramp_video(12, 96, 128, 0), codec="mpeg4")
    (src / "classInd.txt").write_text("1 Run\n2 Walk\n")
    (src / "trainlist01.txt").write_text("Run/v_Run_g01_c01.avi 1\nWalk/v_Walk_g01_c01.avi 2\n")
    return src / "trainlist01.txt", {}


def _hmdb51(src: Path) -> tuple[Path, dict]:
    for rel in ("run/a.avi", "run/b.avi", "walk/c.avi"):
        write_video(src / rel, ramp_video(12, 96, 128, 0), codec="mpeg4")
    (src / "splits").mkdir()
    (src / "splits" / "run_test_split1.txt").write_text("a.avi 1\nb.avi 2\n")
    (src / "splits" / "walk_test_split1.txt").write_text("c.avi 0\n")
    return src / "splits", {"fmt": "hmdb51", "root": src}


# format -> (source maker, index files written in DST and their text)
INDEX_FORMATS = {
    "kinetics_csv": (
        _kinetics,
        {
            "train.csv": "label,youtube_id,time_start,time_end,split\n"
            "run,abc,1,11,train\nwalk,x_y,0,10,train\n"
        },
    ),
    "ssv2_json": (_ssv2, {"train.json": None, "labels.json": None}),
    "ucf101": (
        _ucf101,
        {
            "trainlist01.txt": "Run/v_Run_g01_c01.webm 1\nWalk/v_Walk_g01_c01.webm 2\n",
            "classInd.txt": "1 Run\n2 Walk\n",
        },
    ),
    "hmdb51": (
        _hmdb51,
        {"run_test_split1.txt": "a.webm 1\nb.webm 2\n", "walk_test_split1.txt": "c.webm 0\n"},
    ),
}


@pytest.mark.parametrize("fmt", list(INDEX_FORMATS))
def test_index_formats_round_trip(fmt, tmp_path):
    make, written = INDEX_FORMATS[fmt]
    index_path, options = make(tmp_path / "src")
    source = read_index(index_path, **options)
    result = prepare(index_path, tmp_path / "out", short_side=32, gop=GOP, **options)
    assert (result.fmt, result.encoded, result.failures) == (fmt, len(source), [])
    for name, text in written.items():
        content = (tmp_path / "out" / name).read_text()
        assert text is None or content == text
    prepared = read_index(result.indexes["vp9"], fmt=fmt)
    root = options.get("root", index_path.parent)
    assert prepared.classes == source.classes
    assert [(e.path.relative_to(tmp_path / "out"), e.label) for e in prepared.entries] == [
        (e.path.relative_to(root).with_suffix(".webm"), e.label) for e in source.entries
    ]


def test_an_interrupted_run_resumes(dataset, tmp_path):
    out = tmp_path / "out"
    assert prepare(dataset, out, short_side=64, gop=GOP, workers=2).encoded == 3
    kept = {p: p.stat().st_mtime_ns for p in (out / "run" / "a.webm", out / "walk" / "c.webm")}
    (out / "run" / "b.webm").unlink()  # killed while encoding b: only its temporary file is left
    (out / "run" / ".b.webm.part").write_bytes(b"half an encode")
    (out / "walk" / ".c.webm.part").write_bytes(b"a stray temporary file")

    result = prepare(dataset, out, short_side=64, gop=GOP, workers=2)
    assert (result.encoded, result.reused, result.failures) == (1, 2, [])
    assert {p: p.stat().st_mtime_ns for p in kept} == kept
    assert probe_video(out / "run" / "b.webm").num_frames == 20
    assert sorted(p.name for p in out.rglob("*.part")) == []


def test_broken_inputs_are_listed_and_skipped(dataset, tmp_path, capsys):
    good = (dataset / "run" / "a.webm").read_bytes()
    (dataset / "run" / "half.webm").write_bytes(good[: len(good) // 2])
    (dataset / "run" / "empty.webm").write_bytes(b"")
    _audio_only(dataset / "walk" / "audio.mkv")
    dst = tmp_path / "out"

    main(["prepare", str(dataset), str(dst), "--short-side", "64", "--gop", "8"])
    assert "prepared 3 file(s): 3 encoded now, 0 done by an earlier run; 3 failed" in (
        capsys.readouterr().out
    )
    rows = [json.loads(line) for line in (dst / FAILURES).read_text().splitlines()]
    failed = {Path(row["source"]).name: (row["codec"], row["reason"]) for row in rows}
    assert sorted(failed) == ["audio.mkv", "empty.webm", "half.webm"]
    assert failed["audio.mkv"] == ("vp9", "no video stream")
    assert failed["half.webm"] == (
        "vp9",
        "truncated: the container declares 1.60 s but its frames stop after 0.72 s",
    )
    assert failed["empty.webm"][1].startswith("not a readable video (")
    names = [e.path.name for e in read_index(dst).entries]
    assert names == ["a.webm", "b.webm", "c.webm"]


def test_no_usable_input_is_an_error(tmp_path):
    (tmp_path / "src" / "run").mkdir(parents=True)
    (tmp_path / "src" / "run" / "empty.webm").write_bytes(b"")
    with pytest.raises(SystemExit, match="no file of .* could be prepared"):
        main(["prepare", str(tmp_path / "src"), str(tmp_path / "out")])
    assert (tmp_path / "out" / FAILURES).read_text().count("\n") == 1


# --------------------------------------------------------------------------------------------
# what prepare must never destroy or misstate

REPO = Path(__file__).resolve().parents[1]
OVERLAP = ": prepare would write into its own input; choose an output folder outside the dataset"


def _files(root: Path) -> dict[str, bytes]:
    """Every file under ``root``: relative path -> content."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _final_names(dst: Path) -> set[str]:
    """Files under ``dst`` under a final name: not hidden, not prepare's own lists."""
    return {
        p.relative_to(dst).as_posix()
        for p in dst.rglob("*")
        if p.is_file() and not p.name.startswith(".") and p.name not in (MANIFEST, FAILURES)
    }


def _hidden(dst: Path) -> list[Path]:
    return sorted(dst.rglob(".*"))


def _manifest_outs(dst: Path) -> list[str]:
    return [json.loads(line)["out"] for line in (dst / MANIFEST).read_text().splitlines()]


def _overlap_cases(src: Path, tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """Output folder -> the error prepare gives for it, one per way of overlapping ``src``."""
    (tmp_path / "link").symlink_to(src)
    linked = tmp_path / "link" / "prepared"
    return {
        "same": (src, f"the output folder {src} is the source {src}"),
        "inside": (
            src / "prepared",
            f"the output folder {src / 'prepared'} is inside the source {src}",
        ),
        "contains": (tmp_path, f"the output folder {tmp_path} contains the source {src}"),
        "via a symlink": (
            linked,
            f"the output folder {linked} is inside the source {src} "
            f"(resolved: {src / 'prepared'} and {src})",
        ),
    }


@pytest.mark.parametrize("where", ["same", "inside", "contains", "via a symlink"])
def test_an_output_overlapping_the_source_is_refused_before_any_work(dataset, tmp_path, where):
    dst, message = _overlap_cases(dataset, tmp_path)[where]
    before = _files(tmp_path)
    with pytest.raises(PathOverlapError) as error:
        prepare(dataset, dst, short_side=32, gop=GOP, workers=1, progress=False)
    assert str(error.value) == message + OVERLAP
    assert _files(tmp_path) == before
    assert not (dataset / "prepared").exists()


def test_the_cli_refuses_an_overlap_with_status_2_in_one_line(dataset, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["prepare", str(dataset), str(dataset)])
    assert exit_.value.code == 2
    error = f"the output folder {dataset} is the source {dataset}" + OVERLAP
    assert capsys.readouterr().err == f"videomix-dali prepare: error: {error}\n"


def _user_file_cases(src: Path, dst: Path) -> dict[str, Path]:
    """Case -> a file in ``dst`` that prepare did not write, where it would harm the output."""
    listing = src / "train.txt"
    listing.write_text("run/a.webm 0\nwalk/c.webm 1\n")
    return {
        "at an output path": dst / "run" / "a.webm",
        "a video in a class": dst / "walk" / "mine.mp4",
        "in a folder that is not a class": dst / "notes" / "todo.txt",
        "at an index path": dst / "train.txt",
    }


@pytest.mark.parametrize(
    "case",
    [
        "at an output path",
        "a video in a class",
        "in a folder that is not a class",
        "at an index path",
    ],
)
def test_a_file_prepare_did_not_write_is_never_replaced_nor_read_as_output(dataset, tmp_path, case):
    dst = tmp_path / "out"
    mine = _user_file_cases(dataset, dst)[case]
    mine.parent.mkdir(parents=True)
    mine.write_bytes(b"the user's own file")
    src = dataset / "train.txt" if case == "at an index path" else dataset
    with pytest.raises(ValueError) as error:
        prepare(src, dst, short_side=32, gop=GOP, workers=1, progress=False)
    assert str(error.value) == (
        f"1 file(s) in {dst} that prepare did not write (or that changed since; see {MANIFEST}) "
        f"would be overwritten or read as part of its output: {mine}; move them away or choose "
        "another output folder (prepare never replaces or deletes them)"
    )
    assert _files(dst) == {mine.relative_to(dst).as_posix(): b"the user's own file"}


def test_an_output_changed_since_prepare_wrote_it_is_not_replaced(dataset, tmp_path):
    dst = tmp_path / "out"
    prepare(dataset, dst, short_side=32, gop=GOP, workers=2, progress=False)
    with open(dst / "run" / "a.webm", "ab") as f:
        f.write(b" and the user's edit")
    before = _files(dst)
    with pytest.raises(ValueError, match=f"read as part of its output: {dst / 'run' / 'a.webm'};"):
        prepare(dataset, dst, short_side=32, gop=GOP, workers=2, progress=False)
    assert _files(dst) == before


def test_the_output_follows_videos_moved_or_deleted_between_runs(dataset, tmp_path):
    dst = tmp_path / "out"
    prepare(dataset, dst, short_side=32, gop=GOP, workers=2, progress=False)
    (dataset / "run" / "a.webm").rename(dataset / "walk" / "a.webm")  # to another class
    (dataset / "walk" / "c.webm").unlink()
    (dataset / "jump").mkdir()
    (dataset / "run" / "b.mp4").rename(dataset / "jump" / "b.mp4")
    (dataset / "run").rmdir()  # a class that is gone

    result = prepare(dataset, dst, short_side=32, gop=GOP, workers=2, progress=False)
    assert (result.encoded, result.reused, result.failures) == (2, 0, [])
    assert result.removed == [
        dst / "run" / "a.webm",
        dst / "run" / "b.webm",
        dst / "walk" / "c.webm",
    ]
    assert _final_names(dst) == {"jump/b.webm", "walk/a.webm"}
    assert sorted(_manifest_outs(dst)) == ["jump/b.webm", "walk/a.webm"]
    index = read_index(dst)
    assert index.classes == ["jump", "walk"]
    got = [(e.path.relative_to(dst).as_posix(), e.label) for e in index.entries]
    assert got == [("jump/b.webm", 0), ("walk/a.webm", 1)]


def test_a_stale_output_changed_since_is_kept_with_a_warning(dataset, tmp_path):
    listing, dst = dataset / "train.txt", tmp_path / "out"
    listing.write_text("run/a.webm 0\nrun/b.mp4 0\nwalk/c.webm 1\n")
    prepare(listing, dst, short_side=32, gop=GOP, workers=2, progress=False)
    listing.write_text("run/a.webm 0\n")
    changed = dst / "walk" / "c.webm"
    with open(changed, "ab") as f:
        f.write(b" and the user's edit")

    with pytest.warns(UserWarning) as warned:
        result = prepare(listing, dst, short_side=32, gop=GOP, workers=2, progress=False)
    assert [str(w.message) for w in warned] == [
        f"{changed}: an earlier prepare wrote it, but it has changed since; it is no longer part "
        "of the output and is left in place (delete it yourself)"
    ]
    assert (result.encoded, result.reused, result.removed) == (0, 1, [dst / "run" / "b.webm"])
    assert _final_names(dst) == {"run/a.webm", "train.txt", "walk/c.webm"}
    assert (dst / "train.txt").read_text() == "run/a.webm 0\n"
    assert _manifest_outs(dst) == ["run/a.webm", "train.txt"]


def test_failures_are_json_lines_whatever_the_file_name(dataset, tmp_path):
    hostile = dataset / "run" / "a\ttab and a\nnewline.webm"
    hostile.write_bytes(b"")
    result = prepare(dataset, tmp_path / "out", short_side=32, gop=GOP, workers=2, progress=False)
    text = (tmp_path / "out" / FAILURES).read_text(encoding="utf-8")
    assert text.endswith("\n") and text.count("\n") == 1
    row = json.loads(text)
    assert list(row) == ["source", "codec", "reason"]
    assert (row["source"], row["codec"]) == (str(hostile), "vp9")
    assert row["reason"].startswith("not a readable video (")
    assert result.failures == [(hostile, "vp9", row["reason"])]


@contextmanager
def _threads(workers: int):
    """Stands in for prepare's process pool: the same jobs in this process, where patches hold."""
    with ThreadPoolExecutor(workers) as pool:
        yield pool


def _disk_full(path: Path | None = None) -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), *([str(path)] if path else []))


def test_a_full_disk_fails_the_files_it_hits_and_keeps_the_last_failures_list(
    dataset, tmp_path, monkeypatch, capsys
):
    transcode = prepare_module._transcode

    def full_for_b(job, tmp, height, width):
        if job.source.name != "b.mp4":
            return transcode(job, tmp, height, width)
        tmp.write_bytes(b"the start of a file")
        raise _disk_full(tmp)

    monkeypatch.setattr(prepare_module, "_pool", _threads)
    monkeypatch.setattr(prepare_module, "_transcode", full_for_b)
    dst, b = tmp_path / "out", dataset / "run" / "b.mp4"
    main(["prepare", str(dataset), str(dst), "--short-side", "32", "--gop", "8"])
    reason = f"OSError: [Errno 28] No space left on device: '{dst / 'run' / '.b.webm.part'}'"
    out = capsys.readouterr().out
    assert "prepared 2 file(s): 2 encoded now, 0 done by an earlier run; 1 failed" in out
    assert f"  failed (vp9): {b}: {reason}\n" in out
    rows = [json.loads(line) for line in (dst / FAILURES).read_text().splitlines()]
    assert rows == [{"source": str(b), "codec": "vp9", "reason": reason}]
    assert _final_names(dst) == {"run/a.webm", "walk/c.webm"}
    assert _hidden(dst) == []

    earlier = (dst / FAILURES).read_bytes()
    write_text = Path.write_text

    def full_halfway(path, text, *args, **kwargs):  # the failures list does not fit
        if path.name != f".{FAILURES}.part":
            return write_text(path, text, *args, **kwargs)
        write_text(path, text[: len(text) // 2], *args, **kwargs)
        raise _disk_full()

    monkeypatch.setattr(Path, "write_text", full_halfway)
    with pytest.raises(OSError) as error:
        prepare(dataset, dst, short_side=32, gop=GOP, workers=2, progress=False)
    assert str(error.value) == f"[Errno 28] cannot write {dst / FAILURES}: No space left on device"
    assert (dst / FAILURES).read_bytes() == earlier
    assert _hidden(dst) == []


def test_a_manifest_line_that_does_not_fit_leaves_no_part_behind(tmp_path):
    class HalfWrite(io.FileIO):
        def write(self, data):
            super().write(data[: len(data) // 2])
            raise _disk_full()

    path = tmp_path / MANIFEST
    path.write_bytes(b'{"out": "a.webm", "size": 1}\n')
    with HalfWrite(path, "ab") as manifest, pytest.raises(OSError):
        prepare_module._append(manifest, {"out": "b.webm", "size": 2})
    assert path.read_bytes() == b'{"out": "a.webm", "size": 1}\n'


def test_the_cli_reports_an_unwritable_list_in_one_line(dataset, tmp_path, monkeypatch, capsys):
    def full(dst, failures):
        raise OSError(errno.ENOSPC, f"cannot write {dst / FAILURES}: No space left on device")

    monkeypatch.setattr(prepare_module, "_write_failures", full)
    with pytest.raises(SystemExit) as exit_:
        main(["prepare", str(dataset), str(tmp_path / "out"), "--short-side", "32"])
    message = f"[Errno 28] cannot write {tmp_path / 'out' / FAILURES}: No space left on device"
    assert exit_.value.code == f"videomix-dali prepare: error: {message}"


# a real `videomix-dali prepare` process, interrupted or killed partway

MANY = 24  # copies of one small video, enough to catch a run partway


@pytest.fixture(scope="module")
def many_videos(tmp_path_factory) -> Path:
    """Folder-per-class source: MANY copies of one 48-frame 144x192 video in three classes."""
    root = tmp_path_factory.mktemp("many") / "src"
    first = write_video(root / "c0" / "v00.webm", ramp_video(48, 144, 192, 0))
    for i in range(1, MANY):
        copy = root / f"c{i % 3}" / f"v{i:02d}.webm"
        copy.parent.mkdir(exist_ok=True)
        shutil.copyfile(first, copy)
    return root


def _start(src: Path, dst: Path, logs: Path) -> subprocess.Popen:
    """``videomix-dali prepare`` in a process of its own, its output in files under ``logs``
    (a pipe would stay open as long as any child of it lives)."""
    cmd = [sys.executable, "-m", "videomix_dali.tools.cli", "prepare", str(src), str(dst)]
    cmd += ["--short-side", "144", "--gop", str(GOP), "--workers", "2"]
    with open(logs / "stdout", "w") as out, open(logs / "stderr", "w") as err:
        return subprocess.Popen(cmd, stdout=out, stderr=err, cwd=REPO)


def _wait_for_records(proc: subprocess.Popen, dst: Path, count: int) -> None:
    """Wait until the manifest lists ``count`` files, that is, the run is under way."""
    deadline = time.monotonic() + 60
    while not (dst / MANIFEST).exists() or len(_manifest_outs(dst)) < count:
        assert proc.poll() is None, "prepare ended before it was interrupted"
        assert time.monotonic() < deadline, "prepare did not get going"
        time.sleep(0.02)


@pytest.fixture(scope="module")
def interrupted(many_videos, tmp_path_factory) -> dict:
    """A ``prepare`` process sent SIGINT after its first two files."""
    logs = tmp_path_factory.mktemp("interrupted")
    dst = logs / "out"
    proc = _start(many_videos, dst, logs)
    try:
        _wait_for_records(proc, dst, 2)
        start = time.monotonic()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
        took = time.monotonic() - start
    finally:
        proc.kill()
    stderr = (logs / "stderr").read_text()
    return {
        "dst": dst,
        "status": proc.returncode,
        "took": took,
        "stderr": stderr,
        "recorded": _manifest_outs(dst),
    }


def test_sigint_stops_promptly_and_keeps_what_finished(interrupted, many_videos):
    dst, recorded = interrupted["dst"], interrupted["recorded"]
    assert interrupted["took"] < 5
    assert 2 <= len(recorded) == len(set(recorded)) < MANY
    for rel in recorded:
        assert len(decode_video(dst / rel)) == 48
    assert _final_names(dst) == set(recorded)
    assert _hidden(dst) == []

    mtimes = {rel: (dst / rel).stat().st_mtime_ns for rel in recorded}
    result = prepare(many_videos, dst, short_side=144, gop=GOP, workers=2, progress=False)
    assert (result.encoded, result.reused, result.failures) == (
        MANY - len(recorded),
        len(recorded),
        [],
    )
    assert {rel: (dst / rel).stat().st_mtime_ns for rel in recorded} == mtimes
    assert len(_final_names(dst)) == MANY


def test_sigint_exits_130_with_one_line(interrupted):
    dst, done = interrupted["dst"], len(interrupted["recorded"])
    assert interrupted["status"] == 130
    assert interrupted["stderr"].endswith(
        f"\nvideomix-dali prepare: interrupted: {done} file(s) encoded by this run are "
        f"recorded in {dst / MANIFEST}; {MANY - done} were not finished: run the same command "
        "again to do them\n"
    )
    assert "Traceback" not in interrupted["stderr"]


def _proc_stat(pid: int) -> list[str]:
    """The fields of ``/proc/<pid>/stat`` after the command name (state first)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _descendants(pid: int) -> dict[int, str]:
    """Every process below ``pid``: pid -> start time (a later process may reuse the pid)."""
    children: dict[int, list[int]] = {}
    started: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with suppress(OSError):
                fields = _proc_stat(int(entry.name))
                children.setdefault(int(fields[1]), []).append(int(entry.name))
                started[int(entry.name)] = fields[19]
    found, todo = {}, [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found[child] = started[child]
            todo.append(child)
    return found


def _alive(pid: int, started: str) -> bool:
    """The process ``pid`` that started at ``started`` has not exited (a zombie has)."""
    try:
        fields = _proc_stat(pid)
    except OSError:
        return False
    return fields[19] == started and fields[0] != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc")
def test_no_process_outlives_a_killed_prepare(many_videos, tmp_path):
    proc = _start(many_videos, tmp_path / "out", tmp_path)
    try:
        _wait_for_records(proc, tmp_path / "out", 1)
        family = _descendants(proc.pid)
        proc.kill()
        proc.wait()
        deadline = time.monotonic() + 5
        while (alive := [p for p, t in family.items() if _alive(p, t)]) and (
            time.monotonic() < deadline
        ):
            time.sleep(0.05)
    finally:
        proc.kill()
    for pid in alive:  # do not leave them behind when the test fails
        os.kill(pid, signal.SIGKILL)
    assert len(family) >= 3  # the resource tracker, the forkserver, workers
    assert alive == []
