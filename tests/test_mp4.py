"""Datasets as they ship: MP4 clips decode only the GOPs they need (their packets rewrapped as
Matroska, :mod:`videomix_dali.source.remux`), on the CPU through PyAV or DALI's VP9 decoder."""

from __future__ import annotations

import numpy as np
import pytest
from videos import decode_video, ramp_video, write_video

from videomix_dali import VideoLoader
from videomix_dali.source.probe_cache import probe_videos
from videomix_dali.source.table_store import TableRef, _load

FRAMES = 60


@pytest.fixture(scope="module")
def mp4s(tmp_path_factory):
    """Two H.264 MP4s with x264's default B-frames and two VP9 MP4s, keyframes every 10."""
    root = tmp_path_factory.mktemp("mp4")
    for i in range(2):
        clip = ramp_video(FRAMES, 96, 128, i)
        write_video(root / "h264" / f"c{i}" / f"v{i}.mp4", clip, codec="libx264", gop=10)
        write_video(root / "vp9" / f"c{i}" / f"v{i}.mp4", clip, gop=10)
    return root


def loader_for(root, **kw):
    return VideoLoader(
        root, recipe="demo", device="cpu", train=False, batch_size=2, num_frames=4, stride=3,
        crop_size=48, eval_short_side=48, mean=(0.0,) * 3, std=(1.0,) * 3, return_index=True,
        progress=False, **kw,
    )  # fmt: skip


@pytest.mark.parametrize("codec, host_decoded", [("h264", True), ("vp9", False)])
def test_mp4_clips_hold_the_frames_a_full_decode_shows(mp4s, codec, host_decoded):
    loader = loader_for(mp4s / codec)
    assert loader.skipped == [] and loader.uncut == [] and loader.plan.host_decoded == host_decoded
    ((clips, _, items),) = list(loader)
    start = (FRAMES - 10) // 2  # the centred window of span 10
    for clip, item in zip(clips.numpy(), items.tolist()):
        reference = decode_video(loader.entries[item].path)[:, :, 16:112].astype(np.float32)
        reference = reference.reshape(FRAMES, 48, 2, 48, 2, 3).mean(axis=(2, 4))  # to 48x48
        for t in range(4):
            error = np.abs(reference - clip[:, t].transpose(1, 2, 0)).mean(axis=(1, 2, 3))
            assert error.argmin() == start + 3 * t and error.min() < 3.0


def test_a_late_mp4_clip_carries_its_gop_not_the_file(mp4s):
    loader = loader_for(mp4s / "h264")
    clip = loader.sampler.batch(0, 0)[0]
    path, table = loader.entries[clip.item].path, loader._cuts[clip.item].load()
    data, frames = loader._decode_input(clip.item, np.arange(52, 60, dtype=np.int32))
    keyframe = int(table.display[table.safe][table.display[table.safe] <= 52].max())
    assert frames.tolist() == list(range(52 - keyframe, 60 - keyframe))
    packets = int(table.size[table.display >= keyframe].sum())
    assert packets <= len(data) < packets + 2048 < path.stat().st_size / 2  # + Matroska framing


def test_mp4_tables_live_beside_the_probe_cache_and_a_lost_one_is_rebuilt(mp4s):
    paths = sorted((mp4s / "h264").rglob("*.mp4"))
    first = probe_videos(paths, progress=False)
    again = probe_videos(paths, progress=False)  # from the cache
    assert [i.cuts for i in again] == [i.cuts for i in first]
    ref = again[0].cuts
    assert isinstance(ref, TableRef) and ref.file().is_file()
    before = ref.load()
    ref.file().unlink()
    _load.cache_clear()
    rebuilt = ref.load()
    assert ref.file().is_file() and np.array_equal(rebuilt.pos, before.pos)
    assert rebuilt.num_frames == again[0].num_frames == FRAMES


def test_a_lost_table_of_a_changed_video_is_not_rebuilt_from_other_contents(mp4s, tmp_path):
    path = tmp_path / "c0" / "v.mp4"
    path.parent.mkdir()
    path.write_bytes((mp4s / "h264" / "c0" / "v0.mp4").read_bytes())
    (info,) = probe_videos([path], progress=False)
    info.cuts.file().unlink()
    _load.cache_clear()
    with path.open("ab") as f:
        f.write(b"\0")  # the file changed: its probed frame count no longer holds
    with pytest.raises(ValueError, match="changed on disk since it was probed"):
        info.cuts.load()
