"""Clips decode from only the bytes they need: Matroska / WebM cut at keyframe clusters."""

from __future__ import annotations

import numpy as np
import pytest
from nvidia.dali import fn, pipeline_def
from videos import decode_video, ramp_video, write_video

from videomix_dali import VideoLoader
from videomix_dali.sampling import segment_frames
from videomix_dali.source.cuts import clip_bytes
from videomix_dali.source.probe import probe_video

GOP, NUM_FRAMES = 20, 60  # keyframes at 0, 20, 40


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return write_video(
        tmp_path_factory.mktemp("cuts") / "a.webm", ramp_video(NUM_FRAMES, 96, 128, 0), gop=GOP
    )


def dali_decode(data: np.ndarray, frames: np.ndarray, device: str = "cpu") -> np.ndarray:
    """DALI's decode of ``frames`` of the in-memory file ``data``: (T, H, W, 3) uint8."""

    @pipeline_def(batch_size=1, num_threads=1, device_id=0 if device == "gpu" else None)
    def pipe():
        encoded = fn.external_source(source=lambda: [data], batch=True)
        index = fn.external_source(source=lambda: [np.asarray(frames, np.int32)], batch=True)
        return fn.decoders.video(
            encoded, device="mixed" if device == "gpu" else "cpu", frames=index
        )

    p = pipe()
    p.build()
    out = p.run()[0]
    return np.array(out.as_cpu()[0] if device == "gpu" else out[0])


WINDOWS = {
    "at frame 0": [0, 2, 4, 6],
    "just before a keyframe": [19],
    "on a keyframe": [20, 21],
    "just after a keyframe": [21, 23, 25],
    "spanning two GOPs": [15, 25, 35, 45],
    "at the very end": [56, 57, 58, 59],
    "segments over the whole video": list(segment_frames(NUM_FRAMES, 8, None)),
}


def test_probe_finds_the_keyframe_clusters(video):
    cuts = probe_video(video).cuts
    assert cuts.frames == (0, 20, 40)
    assert cuts.starts[0] > cuts.header[-1][1] and cuts.end == video.stat().st_size


@pytest.mark.parametrize("name", list(WINDOWS))
def test_cut_input_decodes_the_same_frames_as_the_whole_file(video, name):
    frames = np.array(WINDOWS[name])
    cuts = probe_video(video).cuts
    data, shift = clip_bytes(video, cuts, int(frames.min()), int(frames.max()))
    assert shift == max(f for f in cuts.frames if f <= frames.min())  # keyframe at or before
    assert len(data) < video.stat().st_size or shift == 0
    whole = np.fromfile(video, np.uint8)
    got = dali_decode(data, frames - shift)
    np.testing.assert_array_equal(got, dali_decode(whole, frames))
    reference = decode_video(video).astype(np.float32)  # PyAV: identify each frame
    for t, frame in zip(frames, got):
        error = np.abs(reference - frame).mean(axis=(1, 2, 3))
        assert error.argmin() == t and error.min() < 3.0


def test_late_windows_read_only_their_gop(video):
    cuts = probe_video(video).cuts
    late, shift = clip_bytes(video, cuts, 41, 59)
    header = sum(b - a for a, b in cuts.header) + 12  # + the Segment of unknown size
    assert shift == 40 and len(late) == header + cuts.end - cuts.starts[2]


def test_loader_index_sub_ranges_select_the_right_frames_through_cuts(video):
    index = video.parent / "sub.txt"
    index.write_text(f"{video} 0 41 60\n{video} 1 5 30\n")
    loader = VideoLoader(
        index, recipe="demo", device="cpu", train=False, batch_size=2, num_frames=4,
        stride=3, crop_size=48, eval_short_side=48, return_index=True, progress=False,
    )  # fmt: skip
    assert loader.uncut == []
    ((clips, _, items),) = list(loader)
    reference = decode_video(video)[:, 24:72, 40:88].astype(np.float32)  # the centre crop
    mean, std = loader.recipe.mean[0], loader.recipe.std[0]
    for clip, item in zip(clips.numpy(), items.tolist()):
        first, last = (41, 60) if item == 0 else (5, 30)
        start = first + (last - first - 10) // 2  # centred window of span 10
        for t in range(4):
            frame = clip[:, t].transpose(1, 2, 0) * std + mean
            error = np.abs(reference - frame).mean(axis=(1, 2, 3))
            assert error.argmin() == start + 3 * t


def test_files_that_cannot_be_cut_decode_whole_and_are_listed(tmp_path):
    avi = write_video(tmp_path / "c0" / "a.avi", ramp_video(30, 96, 128, 0), codec="libx264")
    write_video(tmp_path / "c1" / "b.webm", ramp_video(30, 96, 128, 1), gop=10)
    loader = VideoLoader(
        tmp_path, recipe="demo", device="cpu", train=False, batch_size=2, progress=False
    )
    reason = "avi container: its packets cannot be rewrapped (h264 extradata is not an avcC"
    assert [p for p, _ in loader.uncut] == [avi] and loader.uncut[0][1].startswith(reason)
    ((video, target),) = list(loader)
    assert video.shape == (2, 3, 8, 112, 112) and sorted(target.tolist()) == [0, 1]


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["at frame 0", "spanning two GOPs", "at the very end"])
def test_gpu_cut_input_decodes_the_frames_a_full_decode_shows(tmp_path, name):
    """NVDEC on the cut bytes gives, at each index, the frame PyAV's full decode shows there
    (within colour-conversion rounding; the ramp's neighbours differ by far more)."""
    frames = np.array(WINDOWS[name])
    clip = ramp_video(NUM_FRAMES, 128, 128, 0)
    for path in (
        write_video(tmp_path / "v.webm", clip, gop=GOP),
        write_video(tmp_path / "h.mkv", clip, codec="libx264", gop=GOP),
    ):
        cuts = probe_video(path).cuts
        data, shift = clip_bytes(path, cuts, int(frames.min()), int(frames.max()))
        got = dali_decode(data, frames - shift, "gpu").astype(np.float32)
        reference = decode_video(path).astype(np.float32)
        for t, frame in zip(frames, got):
            error = np.abs(reference - frame).mean(axis=(1, 2, 3))
            assert error.argmin() == t and error.min() < 3.0, (path.name, t, error.min())
