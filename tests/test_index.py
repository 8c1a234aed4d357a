"""Index readers: every format on a small fixture, and the strict error / warning paths."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from videomix_dali.source.index import (
    FORMATS,
    VideoEntry,
    VideoIndex,
    read_index,
    stratified_subset,
)

pytestmark = pytest.mark.filterwarnings("error")  # a clean index must not warn


def touch(root: Path, *rels: str) -> list[Path]:
    """Create empty (dummy) video files; the readers only look at names."""
    out = []
    for rel in rels:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"")
        out.append(p)
    return out


def pairs(index: VideoIndex, root: Path) -> list[tuple[str, int]]:
    return [(e.path.relative_to(root).as_posix(), e.label) for e in index.entries]


# ------------------------------------------------------------------------------ formats


def test_folder_per_class(tmp_path):
    touch(
        tmp_path,
        "b_jump/x2.mp4",
        "b_jump/x1.webm",
        "b_jump/sub/deeper.MKV",
        "a_run/clip.avi",
        "a_run/notes.txt",
        "a_run/.hidden.mp4",
        "loose.mp4",
    )
    (tmp_path / "c_empty").mkdir()
    idx = read_index(tmp_path)
    assert idx.classes == ["a_run", "b_jump", "c_empty"]
    assert pairs(idx, tmp_path) == [
        ("a_run/clip.avi", 0),
        ("b_jump/sub/deeper.MKV", 1),
        ("b_jump/x1.webm", 1),
        ("b_jump/x2.mp4", 1),
    ]
    assert all(e.path.is_absolute() and e.start is None and e.end is None for e in idx.entries)
    assert idx.missing == [] and len(idx) == 4 and idx.source == str(tmp_path)
    assert idx.class_to_id() == {"a_run": 0, "b_jump": 1, "c_empty": 2}
    # split= picks a sub-folder; classes= fixes the ids
    touch(tmp_path, "s/train/b_jump/v.mp4")
    sub = read_index(tmp_path / "s", split="train", classes=["a_run", "b_jump"])
    assert sub.classes == ["a_run", "b_jump"] and sub.entries[0].label == 1
    with pytest.raises(ValueError, match=r"unknown class 'b_jump'"):
        read_index(tmp_path / "s" / "train", classes=["a_run"])


def test_dali_file_list(tmp_path):
    touch(tmp_path, "v/a.webm", "v/b.webm", "v/c.webm", "elsewhere/d.webm")
    lst = tmp_path / "list.txt"
    lst.write_text("v/a.webm 2\n\nv/b.webm 0 10 42\n  v/c.webm\t1  \n")
    idx = read_index(lst)
    assert idx.classes == ["0", "1", "2"]
    assert idx.entries == [
        VideoEntry(tmp_path / "v/a.webm", 2),
        VideoEntry(tmp_path / "v/b.webm", 0, 10, 42),
        VideoEntry(tmp_path / "v/c.webm", 1),
    ]
    # root= changes what relative paths resolve against; classes= names the ids
    (tmp_path / "list2.txt").write_text("d.webm 1\n")
    idx2 = read_index(tmp_path / "list2.txt", root=tmp_path / "elsewhere", classes=["x", "y"])
    assert idx2.entries == [VideoEntry(tmp_path / "elsewhere/d.webm", 1)]
    assert idx2.classes == ["x", "y"]
    with pytest.raises(ValueError, match=r"list2\.txt, line 1: label 1 out of range for 1 classes"):
        read_index(tmp_path / "list2.txt", root=tmp_path / "elsewhere", classes=["x"])
    # the same file twice as different segments is not a duplicate
    (tmp_path / "seg.txt").write_text("v/a.webm 0 0 8\nv/a.webm 0 8 16\n")
    assert [(e.start, e.end) for e in read_index(tmp_path / "seg.txt").entries] == [(0, 8), (8, 16)]


def test_kinetics_csv(tmp_path):
    root = tmp_path / "k400" / "train"
    touch(
        root,
        "air drumming/abc_000010_000020.mp4",
        "abseiling/xyz_000000_000010.webm",
        "abseiling/xyz_000000_000010.txt",
        "zumba/qqq_000005_000015.mkv",
        "zumba/val_000001_000011.mp4",
    )
    csv_path = tmp_path / "k400" / "train.csv"
    csv_path.write_text(
        "label,youtube_id,time_start,time_end,split\n"
        "zumba,qqq,5,15,train\n"
        '"air drumming",abc,10,20,train\n'
        "abseiling,xyz,0,10,train\n"
        "zumba,val,1,11,val\n"
    )
    idx = read_index(csv_path, root=root, split="train")
    assert idx.classes == ["abseiling", "air drumming", "zumba"]  # sorted over all rows
    assert pairs(idx, root) == [
        ("zumba/qqq_000005_000015.mkv", 2),
        ("air drumming/abc_000010_000020.mp4", 1),
        ("abseiling/xyz_000000_000010.webm", 0),
    ]
    assert len(read_index(csv_path, root=root)) == 4  # no split filter
    # downloaders that write '_' for ' ' in folder names; a CSV without a split column
    touch(tmp_path / "u", "air_drumming/abc_000010_000020.mp4")
    (tmp_path / "u.csv").write_text(
        "label,youtube_id,time_start,time_end\nair drumming,abc,10,20\n"
    )
    idx = read_index(tmp_path / "u.csv", root=tmp_path / "u")
    assert pairs(idx, tmp_path / "u") == [("air_drumming/abc_000010_000020.mp4", 0)]
    with pytest.raises(ValueError, match=r"u\.csv: split='train' given but the CSV has no 'split'"):
        read_index(tmp_path / "u.csv", root=tmp_path / "u", split="train")
    (tmp_path / "test.csv").write_text("youtube_id,time_start,time_end,split\nabc,10,20,test\n")
    with pytest.raises(ValueError, match=r"test\.csv: no 'label' column, labels are unavailable"):
        read_index(tmp_path / "test.csv")


def test_class_folders_without_videos_say_so(tmp_path):
    touch(tmp_path, "run/notes.txt")
    with pytest.raises(ValueError) as err:
        read_index(tmp_path)
    assert str(err.value) == (
        f"{tmp_path}: no video in its class sub-folders "
        "(files ending in .webm, .mp4, .mkv, .avi, .mov, .m4v)"
    )


def test_kinetics_csv_finds_its_split_folder_without_root(tmp_path):
    """The demo's layout (train.csv beside train/<label>/...) and a CSV without a split column
    whose folder is named like it load with the default root, the CSV's folder."""
    touch(tmp_path, "train/run/a_000000_000002.webm", "val/run/b_000001_000003.mp4")
    (tmp_path / "train.csv").write_text(
        "label,youtube_id,time_start,time_end,split\nrun,a,0,2,train\nrun,b,1,3,val\n"
    )
    idx = read_index(tmp_path / "train.csv")
    assert pairs(idx, tmp_path) == [
        ("train/run/a_000000_000002.webm", 0),
        ("val/run/b_000001_000003.mp4", 0),
    ]
    (tmp_path / "val.csv").write_text("label,youtube_id,time_start,time_end\nrun,b,1,3\n")
    assert pairs(read_index(tmp_path / "val.csv"), tmp_path) == [("val/run/b_000001_000003.mp4", 0)]


def test_the_demo_csv_loads_as_written(tmp_path):
    from videomix_dali.tools.demo import SPLITS, make_demo_dataset

    demo = make_demo_dataset(
        tmp_path / "demo", videos_per_class=2, test_per_class=1, num_frames=2, size=(32, 32),
        progress=False,
    )  # fmt: skip
    for split in SPLITS:
        from_csv = read_index(demo / f"{split}.csv")
        assert from_csv.entries == read_index(demo / split).entries
        assert from_csv.missing == []


def test_a_kinetics_csv_without_its_videos_names_the_root_to_pass(tmp_path):
    csv_path = tmp_path / "k400" / "annotations" / "train.csv"
    csv_path.parent.mkdir(parents=True)
    csv_path.write_text("label,youtube_id,time_start,time_end\nair drumming,abc,10,20\n")
    where = tmp_path / "k400" / "annotations"
    with pytest.raises(ValueError) as err:
        read_index(csv_path)
    assert str(err.value) == (
        f"{csv_path}: no usable entries (1 named file(s) missing on disk, e.g. "
        f"{where / 'air drumming' / 'abc_000010_000020'}); paths are resolved against {where}: "
        "pass root= (on the command line: --root) the folder that holds "
        "air drumming/abc_000010_000020.webm (or .mp4, .mkv, .avi, .mov, .m4v)"
    )
    # the videos flat in a sibling folder (the layout of some downloaders): that folder is named
    (video,) = touch(tmp_path / "k400" / "train", "abc_000010_000020.mp4")
    with pytest.raises(ValueError) as err:
        read_index(csv_path)
    assert str(err.value).endswith(
        f"; found {video}: pass root='{video.parent}' (on the command line: --root {video.parent})"
    )
    assert pairs(read_index(csv_path, root=video.parent), video.parent) == [
        ("abc_000010_000020.mp4", 0)
    ]


def test_an_index_without_its_videos_names_the_root_to_pass(tmp_path):
    lists = tmp_path / "ucfTrainTestlist"
    lists.mkdir()
    (lists / "classInd.txt").write_text("1 YoYo\n")
    (lists / "trainlist01.txt").write_text("YoYo/v_YoYo_g08_c01.avi 1\n")
    (video,) = touch(tmp_path / "UCF 101", "YoYo/v_YoYo_g08_c01.avi")
    with pytest.raises(ValueError) as err:
        read_index(lists / "trainlist01.txt")
    assert str(err.value) == (
        f"{lists / 'trainlist01.txt'}: no usable entries (1 named file(s) missing on disk, e.g. "
        f"{lists / 'YoYo' / 'v_YoYo_g08_c01.avi'}); found {video}: "
        f"pass root='{tmp_path / 'UCF 101'}' (on the command line: --root "
        f"'{tmp_path / 'UCF 101'}')"
    )
    (tmp_path / "list.txt").write_text("clips/a.webm 0\n")
    with pytest.raises(ValueError) as err:
        read_index(tmp_path / "list.txt")
    assert str(err.value).endswith(
        f"); paths are resolved against {tmp_path}: pass root= (on the command line: --root) "
        "the folder that holds clips/a.webm"
    )


def test_ssv2_json(tmp_path):
    labels = {"Putting something on something": "1", "Pushing something from left to right": "0"}
    (tmp_path / "labels.json").write_text(json.dumps(labels))
    train = [
        {
            "id": "7",
            "template": "Putting [something] on [something]",
            "label": "putting a cup on a",
        },
        {"id": "12", "template": "Pushing [something] from left to right", "placeholders": ["x"]},
    ]
    (tmp_path / "train.json").write_text(json.dumps(train))
    touch(tmp_path, "videos/7.webm", "videos/12.mp4")
    idx = read_index(tmp_path / "train.json", root=tmp_path / "videos")
    assert idx.classes == ["Pushing something from left to right", "Putting something on something"]
    assert pairs(idx, tmp_path / "videos") == [("7.webm", 1), ("12.mp4", 0)]
    (tmp_path / "test.json").write_text(json.dumps([{"id": "7"}]))
    with pytest.raises(ValueError, match=r"test\.json, entry 1: no 'template', labels are unavail"):
        read_index(tmp_path / "test.json", root=tmp_path / "videos")
    (tmp_path / "bad.json").write_text(json.dumps([{"id": "7", "template": "Dancing [something]"}]))
    with pytest.raises(ValueError, match=r"bad\.json, entry 1: unknown class 'Dancing something'"):
        read_index(tmp_path / "bad.json", root=tmp_path / "videos")


def test_ucf101_split_files(tmp_path):
    lists = tmp_path / "ucfTrainTestlist"
    lists.mkdir()
    (lists / "classInd.txt").write_text("1 ApplyEyeMakeup\n2 HandstandPushups\n3 YoYo\n")
    (lists / "trainlist01.txt").write_text(
        "YoYo/v_YoYo_g08_c01.avi 3\r\nHandstandPushups/v_HandStandPushups_g08_c01.avi 2\r\n"
    )
    (lists / "testlist01.txt").write_text(
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi\nhandstandpushups/v_HandStandPushups_g01_c01.avi\n"
    )
    videos = tmp_path / "UCF-101"
    touch(
        videos,
        "YoYo/v_YoYo_g08_c01.avi",
        "HandstandPushups/v_HandStandPushups_g08_c01.avi",
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi",
        "handstandpushups/v_HandStandPushups_g01_c01.avi",
    )
    train = read_index(lists / "trainlist01.txt", root=videos)
    assert train.classes == ["ApplyEyeMakeup", "HandstandPushups", "YoYo"]
    assert pairs(train, videos) == [
        ("YoYo/v_YoYo_g08_c01.avi", 2),
        ("HandstandPushups/v_HandStandPushups_g08_c01.avi", 1),
    ]
    test = read_index(lists / "testlist01.txt", root=videos)
    assert [e.label for e in test.entries] == [0, 1]
    (lists / "trainlist02.txt").write_text("YoYo/v_YoYo_g08_c01.avi 1\n")
    with pytest.raises(ValueError, match=r"trainlist02\.txt, line 1: label 1 \(ApplyEyeMakeup\) "):
        read_index(lists / "trainlist02.txt", root=videos)
    (lists / "testlist02.txt").write_text("ApplyEyeMakeup/a.avi\nSkiing/v_Skiing_g01_c01.avi\n")
    with pytest.raises(ValueError, match=r"testlist02\.txt, line 2: unknown class 'Skiing'"):
        read_index(lists / "testlist02.txt", root=videos)


def test_hmdb51_split_files(tmp_path):
    splits = tmp_path / "splits"
    splits.mkdir()
    (splits / "wave_test_split1.txt").write_text("w1.avi 1 \nw2.avi 2 \nw3.avi 0 \n")
    (splits / "brush_hair_test_split1.txt").write_text("b1.avi 2\nb2.avi 1\n")
    (splits / "brush_hair_test_split2.txt").write_text("b1.avi 1\nb2.avi 2\n")
    videos = tmp_path / "hmdb51"
    touch(
        videos,
        "wave/w1.avi",
        "wave/w2.avi",
        "wave/w3.avi",
        "brush_hair/b1.avi",
        "brush_hair/b2.avi",
    )
    train = read_index(splits, fmt="hmdb51", root=videos, split="train")
    assert train.classes == ["brush_hair", "wave"]
    assert pairs(train, videos) == [("brush_hair/b2.avi", 0), ("wave/w1.avi", 1)]
    test = read_index(splits, fmt="hmdb51", root=videos, split="test")
    assert pairs(test, videos) == [("brush_hair/b1.avi", 0), ("wave/w2.avi", 1)]
    test2 = read_index(splits, fmt="hmdb51", root=videos, split="test2")
    assert pairs(test2, videos) == [("brush_hair/b2.avi", 0)]
    one = read_index(splits / "wave_test_split1.txt", root=videos)  # detected from the name
    assert one.classes == ["wave"] and len(one) == 3
    (splits / "jump_test_split1.txt").write_text("j1.avi 3\n")
    with pytest.raises(ValueError, match=r"jump_test_split1\.txt, line 1: expected 'video\.avi"):
        read_index(splits, fmt="hmdb51", root=videos)


def test_pairs_input(tmp_path):
    touch(tmp_path, "a.webm", "b.webm", "c.webm")
    idx = read_index([(tmp_path / "b.webm", "walk"), (str(tmp_path / "a.webm"), "run")])
    assert idx.classes == ["run", "walk"] and idx.source == "pairs"
    assert [(e.path.name, e.label) for e in idx.entries] == [("b.webm", 1), ("a.webm", 0)]
    idx = read_index([("c.webm", 3), ("a.webm", 0)], root=tmp_path)
    assert idx.classes == ["0", "1", "2", "3"]
    assert idx.entries[0] == VideoEntry(tmp_path / "c.webm", 3)
    idx = read_index((("a.webm", "run"), ("b.webm", 1)), root=tmp_path, classes=["walk", "run"])
    assert [e.label for e in idx.entries] == [1, 1]
    with pytest.raises(ValueError, match="mix int labels and class names"):
        read_index([("a.webm", "run"), ("b.webm", 1)], root=tmp_path)
    with pytest.raises(ValueError, match=r"pairs, entry 2: label -1 is negative"):
        read_index([("a.webm", 0), ("b.webm", -1)], root=tmp_path)
    with pytest.raises(ValueError, match=r"pairs, entry 1: unknown class 'swim'"):
        read_index([("a.webm", "swim")], root=tmp_path, classes=["run"])


def test_format_detection_and_bad_fmt(tmp_path):
    touch(tmp_path, "a.webm")
    (tmp_path / "my_list.txt").write_text("a.webm 0\n")
    assert len(read_index(tmp_path / "my_list.txt")) == 1
    assert len(read_index(tmp_path / "my_list.txt", fmt="file_list")) == 1
    with pytest.raises(ValueError, match=r"fmt='csv' is not a known index format"):
        read_index(tmp_path / "my_list.txt", fmt="csv")
    (tmp_path / "x.yaml").write_text("")
    with pytest.raises(ValueError, match=r"cannot detect the index format of .*x\.yaml; pass fmt="):
        read_index(tmp_path / "x.yaml")
    with pytest.raises(ValueError, match=r"fmt='folder' needs a directory"):
        read_index(tmp_path / "my_list.txt", fmt="folder")
    with pytest.raises(ValueError, match="does not exist"):
        read_index(tmp_path / "nope.txt")
    assert set(FORMATS) == {
        "folder",
        "file_list",
        "kinetics_csv",
        "ssv2_json",
        "ucf101",
        "hmdb51",
        "pairs",
    }


# ------------------------------------------------------------------------------ strictness


@pytest.mark.filterwarnings("default")
def test_missing_files_are_reported_not_dropped(tmp_path):
    touch(tmp_path, "ok1.webm", "ok2.webm")
    names = [f"gone{i}.webm" for i in range(7)]
    lst = tmp_path / "list.txt"
    lst.write_text("ok1.webm 0\n" + "".join(f"{n} 1\n" for n in names) + "ok2.webm 1\n")
    with pytest.warns(UserWarning) as rec:
        idx = read_index(lst)
    assert len(rec) == 1
    msg = str(rec[0].message)
    first5 = ", ".join(str(tmp_path / n) for n in names[:5])
    assert msg == (
        f"{lst}: 7 file(s) named by the index are missing on disk and were left out: "
        f"{first5}, ... and 2 more"
    )
    assert rec[0].filename == __file__  # points at the caller
    assert [e.path.name for e in idx.entries] == ["ok1.webm", "ok2.webm"]
    assert idx.missing == [tmp_path / n for n in names]
    # nothing usable: an error that names the source and the count
    (tmp_path / "none.txt").write_text("gone0.webm 0\ngone1.webm 0\n")
    with pytest.raises(
        ValueError, match=r"none\.txt: no usable entries \(2 named file\(s\) missing"
    ):
        read_index(tmp_path / "none.txt")


@pytest.mark.parametrize(
    ("row", "error"),
    [
        ("c.webm", r"line 3: expected 'path label \[start end\]', got 'c\.webm'"),
        ("c.webm 1 2", r"line 3: expected 'path label \[start end\]'"),
        ("c.webm one", r"line 3: label 'one' is not an integer"),
        ("c.webm 1.5", r"line 3: label '1\.5' is not an integer"),
        ("c.webm -2", r"line 3: label -2 is negative"),
        ("c.webm 0 5 x", r"line 3: end frame 'x' is not an integer"),
        ("c.webm 0 9 4", r"line 3: end frame 4 must be greater than start 9"),
    ],
)
def test_malformed_row_names_file_and_line(tmp_path, row, error):
    touch(tmp_path, "a.webm", "b.webm", "c.webm")
    lst = tmp_path / "list.txt"
    lst.write_text(f"a.webm 0\nb.webm 1\n{row}\n")
    with pytest.raises(ValueError, match=re.escape(str(lst)) + ", " + error):
        read_index(lst)


def test_malformed_kinetics_row_and_unknown_class(tmp_path):
    touch(tmp_path, "run/a_000000_000010.mp4")
    bad = tmp_path / "bad.csv"
    bad.write_text("label,youtube_id,time_start,time_end\nrun,a,0,10\nrun,b,zero,10\n")
    with pytest.raises(ValueError, match=r"bad\.csv, line 3: time_start 'zero' is not a non-neg"):
        read_index(bad)
    short = tmp_path / "short.csv"
    short.write_text("label,youtube_id,time_start,time_end\nrun,a,0\n")
    with pytest.raises(ValueError, match=r"short\.csv, line 2: expected 4 columns"):
        read_index(short)
    good = tmp_path / "good.csv"
    good.write_text("label,youtube_id,time_start,time_end\nrun,a,0,10\njump,b,0,10\n")
    with pytest.raises(ValueError, match=r"good\.csv, line 3: unknown class 'jump'"):
        read_index(good, classes=["run", "walk"])


@pytest.mark.filterwarnings("default")
def test_duplicates_keep_first_and_warn(tmp_path):
    touch(tmp_path, "a.webm", "b.webm")
    lst = tmp_path / "list.txt"
    lst.write_text("a.webm 0\nb.webm 1\na.webm 1\n")
    with pytest.warns(UserWarning) as rec:
        idx = read_index(lst)
    assert [str(r.message) for r in rec] == [
        f"{lst}: 1 duplicate entry ignored (the first one is kept): "
        f"line 3: {tmp_path / 'a.webm'} (first at line 1)"
    ]
    assert [(e.path.name, e.label) for e in idx.entries] == [("a.webm", 0), ("b.webm", 1)]


def test_paths_escaping_root_are_rejected(tmp_path):
    root = tmp_path / "data"
    touch(root, "in.webm")
    touch(tmp_path, "outside.webm")
    lst = root / "list.txt"
    lst.write_text("in.webm 0\nsub/../../outside.webm 1\n")
    with pytest.raises(
        ValueError, match=r"list\.txt, line 2: path 'sub/\.\./\.\./outside\.webm' esc"
    ):
        read_index(lst)
    idx = read_index(lst, allow_outside_root=True)
    assert [e.path for e in idx.entries] == [root / "in.webm", tmp_path / "outside.webm"]
    (root / "abs.txt").write_text(f"{tmp_path / 'outside.webm'} 0\n")
    with pytest.raises(ValueError, match=r"abs\.txt, line 1: path .* escapes the dataset root"):
        read_index(root / "abs.txt")
    with pytest.raises(ValueError, match=r"pairs, entry 1: path '\.\./outside\.webm' escapes"):
        read_index([("../outside.webm", 0)], root=root)
    bad_label = tmp_path / "k.csv"
    bad_label.write_text("label,youtube_id,time_start,time_end\n../../x,a,0,1\n")
    with pytest.raises(ValueError, match=r"k\.csv, line 2: path .* escapes the dataset root"):
        read_index(bad_label)


def test_a_stratified_subset_keeps_each_class_share_and_the_class_list(tmp_path):
    counts = {0: 10, 1: 7, 2: 1}
    entries = [
        VideoEntry(tmp_path / f"{c}_{i}.webm", c) for c, n in counts.items() for i in range(n)
    ]
    index = VideoIndex(entries, ["a", "b", "c"], source="idx")
    half = stratified_subset(index, 0.5, seed=0)
    assert Counter(e.label for e in half.entries) == {0: 5, 1: 4, 2: 1}  # round(3.5) = 4
    assert half.classes == ["a", "b", "c"] and half.entries == sorted(
        half.entries, key=index.entries.index
    )
    assert stratified_subset(index, 0.5, seed=0) == half  # seeded
    assert stratified_subset(index, 0.5, seed=1).entries != half.entries
    assert stratified_subset(index, 1.0, seed=3).entries == index.entries
    assert read_index(half) is half  # a loader reads it as it is
    with pytest.raises(ValueError, match=r"fraction=0 must be in \(0, 1\]"):
        stratified_subset(index, 0, seed=0)
