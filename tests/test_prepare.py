"""``videomix-dali prepare``: re-encoded trees, their indexes, resuming and broken inputs."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from videos import ramp_video, write_video

from videomix_dali import read_index
from videomix_dali.cli import main
from videomix_dali.prepare import FAILURES, output_size, prepare
from videomix_dali.probe import nvdec_unusable_reason, probe_video

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
    rows = [line.split("\t") for line in (dst / FAILURES).read_text().splitlines()]
    failed = {Path(path).name: (codec, reason) for path, codec, reason in rows}
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
