"""The demo dataset: real VP9 files, deterministic, with the scene shortcut where it belongs."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import av
import numpy as np
import pytest

from videomix_dali.source.index import read_index
from videomix_dali.source.probe import nvdec_unusable_reason
from videomix_dali.source.probe_cache import probe_videos
from videomix_dali.tools import demo
from videomix_dali.tools.demo import (
    DIRECTIONS,
    SPLITS,
    demo_split,
    ensure_demo_dataset,
    make_demo_dataset,
)

PARAMS = dict(
    seed=3,
    num_classes=4,
    videos_per_class=5,
    test_per_class=4,
    num_frames=12,
    size=(48, 64),
    scene_bias=0.8,
)
CLASSES = ["move_down", "move_left", "move_right", "move_up"]  # ids follow sorted names


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_demo_dataset(tmp_path_factory.mktemp("demo") / "d", progress=False, **PARAMS)


def metadata(root: Path) -> dict:
    return json.loads((root / "metadata.json").read_text())


def decode(path: Path) -> np.ndarray:
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


def all_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_layout_and_every_file_decodes(dataset):
    meta = metadata(dataset)
    assert meta["classes"] == CLASSES
    assert (dataset / "classes.txt").read_text() == "".join(c + "\n" for c in CLASSES)
    assert meta["counts"] == {"train": 20, "test_biased": 16, "test_debiased": 16}
    on_disk = sorted(p.relative_to(dataset).as_posix() for p in dataset.rglob("*.webm"))
    listed = sorted(v["path"] for s in SPLITS for v in meta["splits"][s])
    assert on_disk == listed and len(listed) == 52
    first = meta["splits"]["train"][0]
    assert first["path"] == "train/move_down/demo0001_000000_000001.webm"
    assert meta["splits"]["test_debiased"][-1]["youtube_id"] == "demo0052"
    errors = []
    for split in SPLITS:
        for v in meta["splits"][split]:
            assert v["path"].startswith(f"{split}/{CLASSES[v['label']]}/")
            frames = decode(dataset / v["path"])
            assert frames.shape == (12, 48, 64, 3), v["path"]
            # decoded pixels stay within a few levels of what was rendered
            src = demo.render_frames(v, 12, (48, 64))
            err = np.abs(frames.astype(np.int16) - src)
            assert err.mean() < 2.5, v["path"]
            errors.append(err.ravel())
    assert np.percentile(np.concatenate(errors), 99) <= 10
    with av.open(str(dataset / first["path"])) as c:
        stream = c.streams.video[0]
        assert stream.codec_context.name == "vp9"
        assert stream.average_rate == 25
        assert stream.codec_context.colorspace == 6  # tagged BT.601: decoders need not guess


def test_deterministic_by_seed(dataset, tmp_path):
    # same seed in a fresh process: byte-identical files, metadata included
    again = tmp_path / "again"
    code = (
        "import sys; from videomix_dali.tools.demo import make_demo_dataset; "
        f"make_demo_dataset(sys.argv[1], progress=False, **{PARAMS!r})"
    )
    subprocess.run([sys.executable, "-c", code, str(again)], check=True)
    assert all_bytes(again) == all_bytes(dataset)
    # another seed: other videos, other off-class scenes
    other = make_demo_dataset(tmp_path / "other", progress=False, **{**PARAMS, "seed": 4})
    a, b = all_bytes(dataset), all_bytes(other)
    assert a.keys() == b.keys()
    assert all(a[k] != b[k] for k in a if k.endswith(".webm"))
    scenes = [[v["scene"] for v in metadata(r)["splits"]["train"]] for r in (dataset, other)]
    assert scenes[0] != scenes[1]


def test_reuse_regenerate_and_refuse(dataset, tmp_path):
    stamps = {p: p.stat().st_mtime_ns for p in dataset.rglob("*")}
    assert make_demo_dataset(dataset, progress=False, **PARAMS) == dataset
    assert ensure_demo_dataset(dataset, progress=False, **PARAMS) == dataset
    assert {p: p.stat().st_mtime_ns for p in dataset.rglob("*")} == stamps  # left as it was

    root = tmp_path / "r"
    make_demo_dataset(root, progress=False, **{**PARAMS, "videos_per_class": 6})
    make_demo_dataset(root, progress=False, **PARAMS)  # other params: replaced, nothing stale
    assert all_bytes(root).keys() == all_bytes(dataset).keys()
    assert metadata(root)["params"]["videos_per_class"] == 5

    foreign = tmp_path / "foreign"
    (foreign / "train").mkdir(parents=True)
    with pytest.raises(ValueError, match="not a demo dataset .* refusing to overwrite"):
        make_demo_dataset(foreign, progress=False)
    with pytest.raises(ValueError, match="num_classes must be an int in"):
        make_demo_dataset(tmp_path / "x", num_classes=9)
    with pytest.raises(ValueError, match="size must be"):
        make_demo_dataset(tmp_path / "x", size=(50, 64))


def test_scene_is_a_shortcut_only_in_the_biased_splits(dataset):
    meta = metadata(dataset)
    for split, n in (("train", 5), ("test_biased", 4)):
        for c in range(4):
            scenes = [v["scene"] for v in meta["splits"][split] if v["label"] == c]
            assert len(scenes) == n
            assert scenes.count(c) == round(0.8 * n)  # exactly 4 of 5, 3 of 4
    table = Counter((v["label"], v["scene"]) for v in meta["splits"]["test_debiased"])
    assert table == {(c, s): 1 for c in range(4) for s in range(4)}  # independent of the class
    # per_class not a multiple of K: every class sees every scene 1 or 2 times, totals balance
    rng = np.random.default_rng(0)
    scenes = demo.assign_scenes(rng, num_classes=4, per_class=6, bias=None)
    per_class = [Counter(s) for s in scenes]
    assert all(sorted(c.values()) == [1, 1, 2, 2] for c in per_class)
    assert Counter(s for row in scenes for s in row) == {0: 6, 1: 6, 2: 6, 3: 6}


def test_written_indexes_read_back(dataset):
    meta = metadata(dataset)
    for split in SPLITS:
        expected = {(dataset / v["path"], v["label"]) for v in meta["splits"][split]}
        from_list = read_index(dataset / f"{split}_file_list.txt", classes=CLASSES)
        assert read_index(dataset / f"{split}_file_list.txt").classes == ["0", "1", "2", "3"]
        from_csv = read_index(dataset / f"{split}.csv", root=dataset / split, split=split)
        from_folder = read_index(dataset / split)
        for idx in (from_list, from_csv, from_folder):
            assert {(e.path, e.label) for e in idx.entries} == expected
            assert idx.classes == CLASSES and idx.missing == []


def test_decoded_motion_matches_the_class(dataset):
    meta = metadata(dataset)
    for split in SPLITS:
        for v in meta["splits"][split]:
            frames = decode(dataset / v["path"])
            centres = []
            for f in (frames[0], frames[-1]):
                ys, xs = np.nonzero(f.min(axis=-1) > 200)  # the white disc; scenes are coloured
                assert len(xs) > 20
                centres.append(np.array([xs.mean(), ys.mean()]))
            move = centres[1] - centres[0]
            dx, dy = DIRECTIONS[meta["classes"][v["label"]]]
            for axis, d in ((0, dx), (1, dy)):
                if d == 0:
                    assert abs(move[axis]) < 1.0, v["path"]
                else:
                    assert d * move[axis] > 12, v["path"]  # >= half the free span of the axis
            assert np.allclose(centres[0], v["start_xy"], atol=1.0)
            assert np.allclose(centres[1], v["end_xy"], atol=1.0)


def test_h264_copies(tmp_path):
    tiny = dict(num_classes=2, videos_per_class=1, test_per_class=1, num_frames=6, size=(48, 64))
    root = make_demo_dataset(tmp_path / "h", h264=True, progress=False, **tiny)
    mp4 = sorted(p.relative_to(root / "h264").as_posix() for p in root.rglob("*.mp4"))
    webm = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.webm"))
    assert mp4 == [w[: -len(".webm")] + ".mp4" for w in webm] and len(mp4) == 6
    for rel in mp4:
        with av.open(str(root / "h264" / rel)) as c:
            assert c.streams.video[0].codec_context.name == "h264"
        assert decode(root / "h264" / rel).shape == (6, 48, 64, 3)
    idx = read_index(root / "h264" / "train_file_list.txt")
    assert sorted(e.path for e in idx.entries) == [
        root / "h264" / p for p in mp4 if p[:6] == "train/"
    ]
    make_demo_dataset(root, h264=False, progress=False, **tiny)
    assert not (root / "h264").exists()  # regenerated without the copies: none left behind


def test_demo_split_gives_the_gpu_h264_copies_that_nvdec_takes(tmp_path):
    tiny = dict(num_classes=2, videos_per_class=1, test_per_class=1, num_frames=6)  # 128x96
    root = tmp_path / "d"
    gpu = demo_split(root, "test_debiased", "gpu", progress=False, **tiny)
    assert gpu == root / "h264" / "test_debiased"
    mp4 = sorted(gpu.rglob("*.mp4"))
    webm = sorted((root / "test_debiased").rglob("*.webm"))
    assert len(mp4) == 2
    assert [p.relative_to(gpu).with_suffix(".webm") for p in mp4] == [
        p.relative_to(root / "test_debiased") for p in webm
    ]
    infos = probe_videos(mp4 + webm, progress=False)
    assert [(i.codec, i.width, i.height) for i in infos] == [("h264", 128, 96)] * 2 + [
        ("vp9", 128, 96)
    ] * 2
    assert [nvdec_unusable_reason(i) for i in infos] == [None, None] + [
        "128x96 is below NVDEC's vp9 minimum of 128x128 (width x height); transcode with "
        "ffmpeg -i IN -c:v libx264 -pix_fmt yuv420p OUT.mp4 (H.264 takes 48x16 and up)"
    ] * 2
    stamp = (root / "metadata.json").stat().st_mtime_ns
    assert demo_split(root, "train", "cpu", progress=False, **tiny) == root / "train"
    assert (root / "metadata.json").stat().st_mtime_ns == stamp  # copies kept, nothing remade
    assert sorted(gpu.rglob("*.mp4")) == mp4
    with pytest.raises(ValueError, match="split='val' must be one of"):
        demo_split(root, "val", "gpu", **tiny)
    with pytest.raises(ValueError, match="device='cuda' must be 'cpu', 'gpu' or 'auto'"):
        demo_split(root, "train", "cuda", **tiny)
