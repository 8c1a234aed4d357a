"""Stacked augmentations (the paper's Table 13): VideoMix, then Mixup, then Cutout, in the
pipeline, with the exact labels of each stage."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from videos import ramp_video, write_video

from videomix_dali import VideoLoader
from videomix_dali.mix import MixStack, VideoMix, apply_mix, mix_normalize_batch


def stack(seed: int = 7, num_classes: int | None = None) -> MixStack:
    return MixStack(
        VideoMix("spatial", seed=seed, num_classes=num_classes),
        VideoMix("mixup", seed=seed + 1, num_classes=num_classes),
        VideoMix("cutout", seed=seed + 2, num_classes=num_classes),
    )


def test_labels_follow_each_stage_exactly():
    mix = stack(num_classes=4)
    y = np.array([0, 1, 2, 3])
    spatial, mixup, cutout = mix.sample((4, 3, 4, 16, 16), step=0)
    got = mix.labels(y, [spatial, mixup, cutout])
    # paste: each sample keeps 1 - share of its own class and gets share of its partner's
    eye = np.eye(4, dtype=np.float64)
    t1, t2, h1, h2, w1, w2 = spatial.boxes[0, 0, 0]
    share = (t2 - t1) * (h2 - h1) * (w2 - w1) / (4 * 16 * 16)
    pasted = (1 - share) * eye[y] + share * eye[y[spatial.partners[:, 0]]]
    lam = mixup.lam[0] if np.ndim(mixup.lam) else mixup.lam
    blended = lam * pasted + (1 - lam) * pasted[mixup.partners[:, 0]]  # mixup after the paste
    np.testing.assert_allclose(got, blended, atol=1e-6)  # cutout leaves labels as they are
    np.testing.assert_allclose(got.sum(1), 1.0, rtol=1e-6)


def test_a_stack_needs_real_stages():
    with pytest.raises(ValueError, match="two or more VideoMix stages"):
        MixStack(VideoMix("spatial"))
    with pytest.raises(ValueError, match="mode='none'"):
        MixStack(VideoMix("spatial"), VideoMix("none"))
    with pytest.raises(ValueError, match="first stage only"):
        MixStack(VideoMix("spatial"), VideoMix("mixup", label_smoothing=0.1))


def test_the_cpu_pipeline_stacks_exactly_like_the_numpy_twin(tmp_path):
    for i in range(4):
        write_video(tmp_path / f"c{i % 2}" / f"v{i}.webm", ramp_video(12, 48, 64, i))
    kw = dict(
        recipe="demo", device="cpu", batch_size=4, num_frames=4, crop_size=32, seed=1,
        progress=False,
    )  # fmt: skip
    loader = VideoLoader(tmp_path, **kw)
    raw = [v.clone() for v, _ in VideoLoader(tmp_path, mean=(0.0,) * 3, std=(1.0,) * 3, **kw)]
    mixed = [(v.clone(), t.clone()) for v, t in VideoLoader(tmp_path, mix=stack(), **kw)]
    reference, r = stack(), loader.recipe
    for step, (video, (mixed_video, target)) in enumerate(zip(raw, mixed)):
        frames = list(video.numpy().astype(np.uint8).transpose(0, 2, 3, 4, 1))
        first, *later = reference.sample(tuple(video.shape), step=step)
        want = mix_normalize_batch(frames, first, r.mean, r.std)
        for params in later:
            want = apply_mix(want, params)
        np.testing.assert_array_equal(mixed_video.numpy(), want)
        assert target.shape == (4, 2) and torch.allclose(target.sum(1), torch.ones(4))


@pytest.mark.gpu
def test_the_gpu_pipeline_stacks_like_the_cpu_one(tmp_path):
    for i in range(4):  # 128x128: NVDEC's VP9 minimum
        write_video(tmp_path / f"c{i % 2}" / f"v{i}.webm", ramp_video(12, 128, 128, i))
    kw = dict(recipe="demo", batch_size=4, num_frames=4, crop_size=64, seed=1, progress=False)
    cpu = [
        (v.clone(), t.clone()) for v, t in VideoLoader(tmp_path, device="cpu", mix=stack(), **kw)
    ]
    gpu = [(v.cpu(), t.cpu()) for v, t in VideoLoader(tmp_path, device="gpu", mix=stack(), **kw)]
    for (vc, yc), (vg, yg) in zip(cpu, gpu):
        assert torch.equal(yc, yg)
        assert (vg - vc).abs().mul(57.375).mean() < 1.5  # NVDEC vs FFmpeg colour rounding
