"""On the CPU, codecs DALI's CPU decoder lacks (H.264 here) decode with PyAV in the source, from
the same keyframe-cut bytes the GPU gets, and go through the same graph."""

from __future__ import annotations

import numpy as np
import pytest
from videos import decode_video, ramp_video, write_video

from videomix_dali import VideoLoader
from videomix_dali.source.cuts import clip_bytes
from videomix_dali.source.host_decode import HostDecodeError, decode_clip
from videomix_dali.source.probe import probe_video


@pytest.fixture(scope="module")
def h264(tmp_path_factory):
    """Two H.264 videos with x264's default B-frames, keyframes every 10 frames."""
    root = tmp_path_factory.mktemp("h264")
    for i in range(2):
        write_video(
            root / f"c{i}" / f"v{i}.mkv", ramp_video(40, 96, 128, i), codec="libx264", gop=10
        )
    return root


def test_cut_bytes_decode_to_the_frames_a_full_decode_shows(h264):
    path = h264 / "c0" / "v0.mkv"
    frames = np.array([13, 15, 17, 19, 21])  # spans a keyframe, starts inside a GOP
    data, shift = clip_bytes(path, probe_video(path).cuts, 13, 21)
    got = decode_clip(data, frames - shift)
    np.testing.assert_array_equal(got, decode_video(path)[frames])


def test_a_clip_asking_past_the_end_of_its_bytes_is_an_error_not_padding(h264):
    path = h264 / "c0" / "v0.mkv"
    data, shift = clip_bytes(path, probe_video(path).cuts, 30, 39)
    held = 40 - shift  # the last GOP's frames
    with pytest.raises(HostDecodeError, match=f"hold {held} frames, frame {held} was asked for"):
        decode_clip(data, np.array([30, 40]) - shift)
    with pytest.raises(ValueError, match="ascending"):
        decode_clip(data, np.array([3, 1]))


def test_cpu_loader_trains_on_h264_with_the_frames_it_sampled(h264):
    loader = VideoLoader(
        h264, recipe="demo", device="cpu", train=False, batch_size=2, num_frames=4, stride=3,
        crop_size=48, eval_short_side=48, mean=(0.0,) * 3, std=(1.0,) * 3, return_index=True,
        progress=False,
    )  # fmt: skip
    assert loader.skipped == [] and loader.plan.host_decoded
    ((clips, target, items),) = list(loader)
    assert clips.shape == (2, 3, 4, 48, 48) and sorted(target.tolist()) == [0, 1]
    start = (40 - 10) // 2  # the centred window of span 10
    for clip, item in zip(clips.numpy(), items.tolist()):
        path = loader.entries[item].path
        reference = decode_video(path)[:, :, 16:112].astype(np.float32)  # the centre square
        reference = reference.reshape(40, 48, 2, 48, 2, 3).mean(axis=(2, 4))  # to 48x48
        for t in range(4):
            error = np.abs(reference - clip[:, t].transpose(1, 2, 0)).mean(axis=(1, 2, 3))
            assert error.argmin() == start + 3 * t and error.min() < 3.0
