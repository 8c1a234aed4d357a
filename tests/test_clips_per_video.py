"""Several training clips per decoded video (``clips_per_video``), and a decoder that is handed
each distinct frame once, in ascending order."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from videos import decode_video, ramp_video, write_video

from videomix_dali import VideoLoader
from videomix_dali.mix import VideoMix, apply_mix
from videomix_dali.sampling import ClipConfig, ClipSampler, windows_span

CLASSES = ["alpha", "beta", "gamma"]
LENGTHS = [20, 23, 26, 29, 32, 35]
SIDE = 48
# Whole-frame crops at the frame's size (no resampling, no flip): the output is the decoded
# frames, in 0..255 units.
EXACT = dict(
    recipe="demo", device="cpu", num_frames=4, stride=2, crop_size=SIDE, scale=(1.0, 1.0),
    ratio=(1.0, 1.0), flip=False, mean=(0.0,) * 3, std=(1.0,) * 3, progress=False,
)  # fmt: skip


@pytest.fixture(scope="module", params=["vp9", "h264"])
def dataset(request, tmp_path_factory):
    """VP9 (decoded by DALI in the graph) or H.264 MP4 (decoded by PyAV on the host)."""
    root = tmp_path_factory.mktemp(request.param)
    for seed, n in enumerate(LENGTHS):
        frames = ramp_video(n, SIDE, SIDE, seed)
        name = root / CLASSES[seed % 3] / f"v{seed}"
        if request.param == "vp9":
            write_video(name.with_suffix(".webm"), frames)
        else:
            write_video(name.with_suffix(".mp4"), frames, codec="libx264", gop=8)
    return root


def assert_frames_are(loader, video: torch.Tensor, clips) -> None:
    """Each output clip is its sampled frames of a full PyAV decode (colour rounding aside)."""
    got = video.numpy().transpose(0, 2, 3, 4, 1)
    for out, clip in zip(got, clips):
        reference = decode_video(loader.entries[clip.item].path).astype(np.float32)
        for t, frame in enumerate(out):
            error = np.abs(reference - frame).mean(axis=(1, 2, 3))
            assert error.argmin() == clip.frames[t], (clip, t, error)
            assert error.min() < 3.0  # DALI's and FFmpeg's YUV->RGB rounding differ


@pytest.mark.parametrize("repeat", ["views", "windows"])
def test_a_videos_clips_decode_its_frames_once_and_match_pyav(dataset, repeat, monkeypatch):
    loader = VideoLoader(dataset, batch_size=4, clips_per_video=2, repeat=repeat, **EXACT)
    decodes = []
    real = loader._decode_input

    def counted(video, frames):
        decodes.append(frames.copy())
        return real(video, frames)

    monkeypatch.setattr(loader, "_decode_input", counted)
    batches = [video.clone() for video, _ in loader]
    assert len(batches) == len(LENGTHS) // 2
    runs = [loader.sampler.batch(0, step)[i : i + 2] for step in range(3) for i in (0, 2)]
    for run, frames in zip(runs, decodes, strict=False):  # one decode per video, in order
        np.testing.assert_array_equal(frames, np.union1d(run[0].frames, run[1].frames))
        assert (np.diff(frames) > 0).all()  # each distinct frame once, ascending
    span = (4 - 1) * 2 + 1
    for step, video in enumerate(batches):
        clips = loader.sampler.batch(0, step)
        assert video.shape == (4, 3, 4, SIDE, SIDE)
        assert_frames_are(loader, video, clips)
        for a, b in zip(clips[::2], clips[1::2]):
            assert a.item == b.item
            if repeat == "views":
                np.testing.assert_array_equal(a.frames, b.frames)
            else:
                union = np.union1d(a.frames, b.frames)
                n = LENGTHS[int(loader.entries[a.item].path.stem[1:])]
                assert union[-1] - union[0] + 1 <= windows_span(n, span) == 10


def test_a_padded_clip_decodes_each_distinct_frame_once(tmp_path, monkeypatch):
    """A video shorter than a clip repeats its last frame in the clip, not in the decoder."""
    for seed, n in enumerate([5, 6]):
        write_video(tmp_path / CLASSES[seed] / f"v{seed}.webm", ramp_video(n, SIDE, SIDE, seed))
    loader = VideoLoader(tmp_path, batch_size=2, **{**EXACT, "num_frames": 6, "stride": 1})
    assert loader.plan.picks_frames
    handed = []
    real = loader._decode_input
    monkeypatch.setattr(loader, "_decode_input", lambda v, f: handed.append(f) or real(v, f))
    (video, _), *_ = list(loader)
    first_batch = sorted(f.tolist() for f in handed[:2])  # later ones: prefetched batches
    assert first_batch == [list(range(5)), list(range(6))]
    clips = loader.sampler.batch(0, 0)
    assert sorted(c.frames.tolist() for c in clips) == [[0, 1, 2, 3, 4, 4], [0, 1, 2, 3, 4, 5]]
    assert_frames_are(loader, video, clips)


@pytest.mark.parametrize("mode", ["spatial", "mixup"])
def test_no_clip_is_mixed_with_a_sibling_and_labels_are_voxel_shares(dataset, mode):
    kwargs = dict(EXACT, batch_size=6, crop_size=16, clips_per_video=2, seed=3)
    plain = [(v.clone(), y.clone()) for v, y in VideoLoader(dataset, **kwargs)]
    mixing = VideoLoader(dataset, mix=VideoMix(mode, seed=7), **kwargs)
    mixed = [(v.clone(), y.clone()) for v, y in mixing]
    reference = VideoMix(mode, seed=7)
    for step, ((video, label), (mixed_video, target)) in enumerate(zip(plain, mixed)):
        params = reference.sample(tuple(video.shape), step=step, siblings=2)
        partners = params.partners[:, 0]
        assert (partners // 2 != np.arange(6) // 2).all()
        np.testing.assert_allclose(mixed_video.numpy(), apply_mix(video.numpy(), params), atol=1e-4)
        expected = np.zeros((6, 3))
        for i in range(6):
            own, other = params.weights[i]
            expected[i, label[i]] += own
            expected[i, label[partners[i]]] += other
            if mode != "mixup":  # the pasted box's exact share of the clip's voxels
                t1, t2, h1, h2, w1, w2 = params.boxes[i, 0, 0]
                assert other == (t2 - t1) * (h2 - h1) * (w2 - w1) / (4 * 16 * 16)
        np.testing.assert_allclose(target.numpy(), expected, atol=1e-6)


def test_resume_mid_epoch_with_two_clips_per_video_equals_a_straight_run(dataset):
    def make():
        kwargs = dict(EXACT, batch_size=4, crop_size=16, flip=True, scale=(0.3, 1.0), seed=5)
        return VideoLoader(
            dataset, **kwargs, clips_per_video=2, repeat="windows", mix=VideoMix("spatial", seed=2)
        )

    whole = make()
    straight = [tuple(t.clone() for t in b) for _ in range(2) for b in whole]
    loader = make()
    next(iter(loader))
    state = loader.state_dict()
    assert state["clips_per_video"] == 2 and state["repeat"] == "windows"
    resumed = make()
    resumed.load_state_dict(state)
    rest = [tuple(t.clone() for t in b) for _ in range(2) for b in resumed]
    assert len(rest) == len(straight) - 1
    for a, b in zip(straight[1:], rest):
        assert all(torch.equal(x, y) for x, y in zip(a, b))
    with pytest.raises(ValueError, match="clips_per_video=2"):
        VideoLoader(dataset, **dict(EXACT, batch_size=4, seed=5)).load_state_dict(state)


def test_sibling_clips_draw_their_own_crops_and_clip_zero_is_the_single_clip():
    videos = [(300, 256, 340, 0)] * 8
    recipe_fields = dict(
        train=True, num_frames=8, stride=8, sampling="window", crop_size=224,
        scale=(0.08, 1.0), ratio=(0.75, 1.33), flip=True, eval_short_side=256, test_clips=1,
        test_crops=1,
    )  # fmt: skip

    def sampler(k, repeat="views"):
        config = ClipConfig(**recipe_fields, clips_per_video=k, repeat=repeat)
        return ClipSampler(
            videos, config, batch_size=4 * k, shard_id=0, num_shards=1, last_batch="drop", seed=9
        )

    one, views, windows = sampler(1).batch(0, 1), sampler(3).batch(0, 1), sampler(3, "windows")
    assert len(one) == 4 and len(views) == 12
    for single, run in zip(one, [views[i : i + 3] for i in range(0, 12, 3)]):
        first = run[0]
        assert first.item == single.item and np.array_equal(first.roi_end, single.roi_end)
        assert len({tuple(c.roi_start) for c in run}) == 3  # each sibling its own crop
    spans = []
    for run in [windows.batch(0, s)[i : i + 3] for s in range(2) for i in range(0, 12, 3)]:
        union = np.concatenate([c.frames for c in run])
        spans.append(union.max() - union.min() + 1)
    assert max(spans) <= windows_span(300, 57) == 85


def test_clips_per_video_must_divide_the_batch_and_mixing_needs_two_videos(dataset):
    with pytest.raises(ValueError, match="multiple of clips_per_video=3"):
        VideoLoader(dataset, **dict(EXACT, batch_size=4, clips_per_video=3))
    with pytest.raises(ValueError, match="clips of two videos or more"):
        VideoLoader(
            dataset, mix=VideoMix("spatial"), **dict(EXACT, batch_size=2, clips_per_video=2)
        )
    with pytest.raises(ValueError, match="repeat='frames'"):
        VideoLoader(dataset, **dict(EXACT, batch_size=4, clips_per_video=2, repeat="frames"))


@pytest.mark.gpu
@pytest.mark.parametrize("repeat", ["views", "windows"])
def test_gpu_shares_one_nvdec_decode_like_the_cpu(tmp_path, repeat):
    """NVDEC decodes each video once and its clips take their frames on the device: the same
    clips as the CPU graph (128x128: NVDEC's VP9 minimum)."""
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    for seed, n in enumerate(LENGTHS):
        write_video(tmp_path / CLASSES[seed % 3] / f"v{seed}.webm", ramp_video(n, 128, 128, seed))
    kwargs = dict(EXACT, crop_size=32, scale=(0.3, 1.0), batch_size=4, clips_per_video=2)
    kwargs.update(repeat=repeat, mix=VideoMix("spatial", seed=1), seed=4)
    cpu = [tuple(t.clone() for t in b) for b in VideoLoader(tmp_path, **kwargs)]
    gpu = [tuple(t.cpu() for t in b) for b in VideoLoader(tmp_path, **{**kwargs, "device": "gpu"})]
    assert len(cpu) == len(gpu) == len(LENGTHS) // 2
    for (vc, yc), (vg, yg) in zip(cpu, gpu):
        torch.testing.assert_close(yg, yc)
        assert (vg - vc).abs().mean() < 1.5  # NVDEC vs libvpx colour rounding, 0..255 units
