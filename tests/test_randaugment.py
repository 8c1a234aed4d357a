"""RandAugment for video in the graph: one draw per clip, the same for all its frames, drawn by
the seeded sampler (exact resume), applied after the crop and before mixing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from videos import ramp_video, write_video

from videomix_dali import VideoLoader
from videomix_dali.graph.randaugment import suite
from videomix_dali.mix import VideoMix, mix_normalize_batch
from videomix_dali.sampling import ClipSampler


@pytest.fixture(scope="module")
def static(tmp_path_factory):
    """Four videos whose frames are all the same picture (a different one per video)."""
    root = tmp_path_factory.mktemp("static")
    for i in range(4):
        frame = ramp_video(1, 48, 64, i) + np.uint8(20 * i)
        write_video(root / f"c{i % 2}" / f"v{i}.webm", np.repeat(frame, 12, axis=0))
    return root


def batches(root, **kw):
    settings = dict(
        recipe="demo", device="cpu", batch_size=4, num_frames=4, stride=2, crop_size=32,
        mean=(0.0,) * 3, std=(1.0,) * 3, seed=3, progress=False,
    )  # fmt: skip
    loader = VideoLoader(root, **{**settings, **kw})
    return [(v.clone(), t.clone()) for v, t in loader], loader


def test_every_frame_of_a_clip_gets_the_same_operations(static):
    (plain, _), *_ = batches(static)[0]
    (augmented, _), *_ = batches(static, randaugment=(2, 9))[0]
    for clip in augmented:  # (C, T, H, W): a clip of one picture stays one picture
        assert all(torch.equal(clip[:, 0], clip[:, t]) for t in range(1, 4))
    assert not torch.equal(augmented, plain)  # and the operations did something


def test_draws_are_per_clip_seeded_and_independent_of_the_crop(static):
    _, loader = batches(static, randaugment=(2, 9))
    clips = loader.sampler.batch(0, 0)
    draws = np.stack([c.augment for c in clips])  # (N, 2, n): operation, sign
    assert draws.shape == (4, 2, 2) and len({d.tobytes() for d in draws}) > 1
    assert draws[:, 0].max() < len(suite()) and set(draws[:, 1].ravel()) <= {0, 1}
    _, plain = batches(static)
    for a, b in zip(clips, plain.sampler.batch(0, 0)):  # same frames and crop without it
        assert np.array_equal(a.frames, b.frames) and np.array_equal(a.roi_start, b.roi_start)
    again, _ = batches(static, randaugment=(2, 9))
    first, _ = batches(static, randaugment=(2, 9))
    assert all(torch.equal(x, y) for (x, _), (y, _) in zip(first, again))


def test_n_zero_is_the_identity(static):
    plain, _ = batches(static)
    none, loader = batches(static, randaugment=(0, 9))
    assert loader.plan.randaugment is None
    assert all(torch.equal(x, y) for (x, _), (y, _) in zip(plain, none))


def test_the_drawn_operation_is_the_one_applied(static, monkeypatch):
    identity = [a.name for a in suite()].index("identity")
    forced = np.array([[identity, identity], [1, 0]], np.int32)
    monkeypatch.setattr(ClipSampler, "augment", lambda self, epoch, position, sibling=0: forced)
    plain, _ = batches(static)
    same, _ = batches(static, randaugment=(2, 30))
    for (x, _), (y, _) in zip(plain, same):
        np.testing.assert_allclose(y.numpy(), x.numpy(), atol=1e-4)


@pytest.mark.parametrize("mode", ["spatial", "mixup"])
def test_mixing_comes_after_randaugment_and_labels_stay_exact(tmp_path, mode):
    for i in range(4):
        write_video(tmp_path / f"c{i % 2}" / f"v{i}.webm", ramp_video(12, 48, 64, i))
    raw, loader = batches(tmp_path, randaugment=(2, 9))  # augmented, in 0..255
    mixed, _ = batches(tmp_path, randaugment=(2, 9), mix=VideoMix(mode, seed=7))
    reference = VideoMix(mode, seed=7)
    for step, ((video, _), (mixed_video, target)) in enumerate(zip(raw, mixed)):
        frames = list(video.numpy().astype(np.uint8).transpose(0, 2, 3, 4, 1))
        params = reference.sample(tuple(video.shape), step=step)
        want = mix_normalize_batch(frames, params, (0.0,) * 3, (1.0,) * 3)
        np.testing.assert_array_equal(mixed_video.numpy(), want)
        np.testing.assert_allclose(target.sum(1).numpy(), 1.0, rtol=1e-6)


@pytest.mark.gpu
def test_gpu_randaugment_applies_the_cpu_graphs_draws(tmp_path):
    """The same host draws on both backends: the clips differ only by decode and resampling
    rounding (a wrong operation or a misplaced step would differ by far more)."""
    for i in range(4):  # 128x128: NVDEC's VP9 minimum
        write_video(tmp_path / f"c{i % 2}" / f"v{i}.webm", ramp_video(12, 128, 128, i))
    kw = dict(randaugment=(2, 9), crop_size=64, mix=VideoMix("spatial", seed=7))
    cpu, _ = batches(tmp_path, **kw)
    gpu, _ = batches(tmp_path, device="gpu", **kw)
    for (vc, yc), (vg, yg) in zip(cpu, gpu):
        assert vg.is_cuda and torch.equal(yc, yg.cpu())
        assert (vg.cpu() - vc).abs().mean() < 3.0  # 0..255 units
