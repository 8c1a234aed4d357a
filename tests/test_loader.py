"""The DALI video pipeline on the CPU: decoded frames, sampling, crops, shards, seeds, handoff."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from videos import decode_video, ramp_video, write_video

from videomix_dali import VideoLoader

MEAN, STD = 114.75, 57.375
CLASSES = ["alpha", "beta", "gamma"]
# (class, name, frames): lengths differ so the window positions differ per video
VIDEOS = [(c, f"v{i}", 24 + 3 * i) for i, c in enumerate(CLASSES * 3)]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    for seed, (cls, name, n) in enumerate(VIDEOS):
        write_video(root / cls / f"{name}.webm", ramp_video(n, 48, 64, seed))
    return root


@pytest.fixture(scope="module", params=["vp9", "h264"])
def gpu_datasets(request, tmp_path_factory):
    """(VP9 folder for the CPU, folder in the param's codec for the GPU) of the same videos.

    128x128 is NVDEC's VP9 minimum; the CPU reads the VP9 copy (DALI's own decoder).
    """
    root = tmp_path_factory.mktemp("gpu_videos")
    for seed, (cls, name, n) in enumerate(VIDEOS):
        frames = ramp_video(n, 128, 128, seed)
        write_video(root / "vp9" / cls / f"{name}.webm", frames)
        if request.param == "h264":
            write_video(root / "h264" / cls / f"{name}.mp4", frames, codec="libx264")
    return root / "vp9", root / request.param


def unnormalize(video: torch.Tensor) -> np.ndarray:
    """(N, C, T, H, W) normalized -> (N, T, H, W, C) float pixel values."""
    return (video.float().numpy() * STD + MEAN).transpose(0, 2, 3, 4, 1)


def collect(loader, epochs=1):
    batches = []
    for _ in range(epochs):
        batches += [tuple(t.clone() for t in batch) for batch in loader]
    return batches


def test_decoded_frames_match_pyav_at_the_sampled_indices(dataset):
    # eval view: centre 48x48 crop at 48 px output = no resampling; window of T=4, stride 3
    loader = VideoLoader(
        dataset, recipe="demo", device="cpu", train=False, batch_size=4, num_frames=4,
        stride=3, crop_size=48, eval_short_side=48, return_index=True, progress=False,
    )  # fmt: skip
    seen = 0
    for video, target, index in loader:
        assert video.shape[1:] == (3, 4, 48, 48) and video.dtype == torch.float32
        got = unnormalize(video)
        for sample, i in enumerate(index.tolist()):
            entry = loader.entries[i]
            assert CLASSES[target[sample]] == entry.path.parent.name
            reference = decode_video(entry.path)[:, :, 8:56].astype(np.float32)
            start = (len(reference) - 10) // 2  # centred window of span (4 - 1) * 3 + 1 = 10
            for t, frame in enumerate(got[sample]):
                error = np.abs(reference - frame).mean(axis=(1, 2, 3))
                assert error.argmin() == start + 3 * t, (entry.path, t, error)
                assert error.min() < 3.0  # DALI's and FFmpeg's YUV->RGB rounding differ
            seen += 1
    assert seen == len(VIDEOS)


def test_train_batches_shapes_stats_and_one_crop_per_clip(tmp_path):
    # a static texture: any crop difference between the frames of a clip would show
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 255, (1, 12, 16, 3)).repeat(6, axis=1).repeat(6, axis=2)
    for c in range(2):
        for v in range(3):
            frames = np.repeat(texture, 20, axis=0).astype(np.uint8)
            write_video(tmp_path / f"c{c}" / f"{v}.webm", np.roll(frames, 7 * v, axis=2))
    loader = VideoLoader(
        tmp_path, recipe="kinetics", device="cpu", batch_size=3, num_frames=5, stride=2,
        crop_size=32, seed=3, dtype="float16", progress=False,
    )  # fmt: skip
    assert len(loader) == 2
    (video, target), _ = collect(loader)
    assert video.shape == (3, 3, 5, 32, 32) and video.dtype == torch.float16
    assert target.dtype == torch.int64 and target.shape == (3,)
    assert torch.equal(video, video[:, :, :1].expand_as(video))
    pixels = unnormalize(video)
    half_ulp = 2**-10 * STD  # float16 rounds a normalised value in [2, 4) to 2**-9
    assert -half_ulp <= pixels.min() and pixels.max() <= 255 + half_ulp
    assert abs(pixels.mean() - 127) < 25  # uniform random texture


def horizontal_flips(tmp_path, recipe: str) -> list[bool]:
    """Which training clips of a left-dark/right-bright video come out mirrored."""
    frames = np.zeros((20, 40, 60, 3), np.uint8)
    frames[...] = np.linspace(0, 255, 60)[None, None, :, None].astype(np.uint8)
    for v in range(16):
        write_video(tmp_path / recipe / "c" / f"{v}.webm", frames)
    loader = VideoLoader(
        tmp_path / recipe, recipe=recipe, device="cpu", batch_size=16, num_frames=2,
        crop_size=16, progress=False,
    )  # fmt: skip
    video, _ = next(iter(loader))
    left, right = video[..., :4].mean(dim=(1, 2, 3, 4)), video[..., -4:].mean(dim=(1, 2, 3, 4))
    return (left > right).tolist()


def test_flip_per_recipe(tmp_path):
    flips = horizontal_flips(tmp_path, "kinetics")
    assert 0 < sum(flips) < len(flips)
    assert not any(horizontal_flips(tmp_path, "ssv2"))


def test_two_shards_deliver_every_video_once_per_epoch(dataset):
    def items(shard_id):
        loader = VideoLoader(
            dataset, recipe="demo", device="cpu", batch_size=2, num_frames=2, crop_size=16,
            shard_id=shard_id, num_shards=2, last_batch="partial", return_index=True,
            progress=False,
        )  # fmt: skip
        assert len(loader) == 3  # 9 videos -> 5 per shard (one padded) -> batches 2, 2, 1
        return [batch[2].tolist() for batch in collect(loader, epochs=2)]

    shard0, shard1 = items(0), items(1)
    for epoch in range(2):
        got = sum(shard0[epoch * 3 : epoch * 3 + 3], []) + sum(shard1[epoch * 3 :][:3], [])
        assert len(got) == 10  # one padded position: the epoch order wraps around once
        assert sorted(set(got)) == list(range(9))
    assert shard0[:3] != shard0[3:]  # a new order every epoch


def test_eval_shards_see_every_view_exactly_once_without_padding(dataset):
    def items(shard_id):
        loader = VideoLoader(
            dataset, recipe="demo", device="cpu", train=False, batch_size=4, num_frames=2,
            crop_size=16, test_crops=3, shard_id=shard_id, num_shards=2, return_index=True,
            progress=False,
        )  # fmt: skip
        return sum((batch[2].tolist() for batch in collect(loader)), [])

    shard0, shard1 = items(0), items(1)
    assert (len(shard0), len(shard1)) == (14, 13)  # 9 videos x 3 crops, no wrap-around
    assert sorted(shard0 + shard1) == sorted(list(range(9)) * 3)


def test_same_seed_same_batches_different_seed_different(dataset):
    def run(seed):
        loader = VideoLoader(
            dataset, recipe="demo", device="cpu", batch_size=3, num_frames=3, crop_size=24,
            seed=seed, progress=False,
        )  # fmt: skip
        return collect(loader)

    first, again, other = run(0), run(0), run(1)
    for a, b in zip(first, again):
        assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not all(torch.equal(a[0], b[0]) for a, b in zip(first, other))


def test_resume_mid_epoch_gives_the_same_next_batches(dataset):
    def make():
        return VideoLoader(
            dataset, recipe="demo", device="cpu", batch_size=2, num_frames=3, crop_size=24,
            seed=5, progress=False,
        )  # fmt: skip

    straight = collect(make(), epochs=2)
    loader = make()
    it = iter(loader)
    next(it)
    state = loader.state_dict()
    assert state["epoch"] == 0 and state["step"] == 1
    resumed = make()
    resumed.load_state_dict(state)
    rest = collect(resumed) + collect(resumed)
    assert len(rest) == len(straight) - 1
    for a, b in zip(straight[1:], rest):
        assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_handoff_shares_dali_memory(dataset):
    from videomix_dali.handoff import to_torch

    loader = VideoLoader(
        dataset, recipe="demo", device="cpu", batch_size=2, num_frames=2, crop_size=16,
        progress=False,
    )  # fmt: skip
    loader._build()
    video, label, _ = loader._pipe.run()
    tensor = to_torch(video)
    assert tensor.data_ptr() == video[0].data_ptr()
    tensor[0, 0, 0, 0, 0] = 123.0
    assert np.array(video[0])[0, 0, 0, 0] == 123.0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"recipe": "nope"}, "recipe='nope'"),
        ({"batch_size": 0}, "batch_size=0"),
        ({"num_frames": 0}, "num_frames=0"),
        ({"stride": 0}, "stride=0"),
        ({"crop_size": -1}, "crop_size=-1"),
        ({"shard_id": 2, "num_shards": 2}, "shard_id=2"),
        ({"shard_id": 0}, "shard_id and num_shards"),
        ({"last_batch": "pad"}, "last_batch='pad'"),
        ({"dtype": "int8"}, "dtype='int8'"),
        ({"device": "tpu"}, "device='tpu'"),
        ({"sampling": "random"}, "sampling='random'"),
        ({"scale": (0.5, 0.2)}, "scale="),
        ({"std": (1.0, 0.0, 1.0)}, "std="),
        ({"test_crops": 2}, "test_crops=2"),
        ({"batch_size": 64}, "batch_size=64 is larger"),
        ({"train": False, "shard_id": 9, "num_shards": 10}, "num_shards=10 is more than the 9"),
    ],
)
def test_bad_arguments_name_the_argument(dataset, kwargs, message):
    kwargs = {"recipe": "demo", "device": "cpu", "progress": False, **kwargs}
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        VideoLoader(dataset, **kwargs)


def test_recipe_object_and_overrides_reach_the_loader(dataset):
    from videomix_dali.recipes import load_recipe

    recipe = load_recipe("demo").replace(num_frames=2, crop_size=16)
    loader = VideoLoader(dataset, recipe=recipe, device="cpu", batch_size=4, progress=False)
    assert loader.recipe == recipe.replace(batch_size=4)
    video, _ = next(iter(loader))
    assert video.shape == (4, 3, 2, 16, 16)
    with pytest.raises(TypeError, match="crop"):
        VideoLoader(dataset, recipe="demo", device="cpu", crop=16, progress=False)


@pytest.mark.gpu
def test_gpu_pipeline_matches_cpu_and_shares_memory(gpu_datasets):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    cpu_root, gpu_root = gpu_datasets
    kwargs = dict(
        recipe="demo", train=False, batch_size=3, num_frames=4, stride=3, crop_size=48,
        eval_short_side=48, progress=False,
    )  # fmt: skip
    cpu = collect(VideoLoader(cpu_root, device="cpu", **kwargs))
    gpu_loader = VideoLoader(gpu_root, device="gpu", **kwargs)
    assert gpu_loader.skipped == []
    gpu = collect(gpu_loader)
    for (vc, tc), (vg, tg) in zip(cpu, gpu):
        assert vg.is_cuda and torch.equal(tc, tg.cpu())
        assert (vg.cpu() - vc).abs().mul(STD).mean() < 1.5  # NVDEC vs FFmpeg colour rounding
    from videomix_dali.handoff import to_torch

    gpu_loader._build()
    video, _, _ = gpu_loader._pipe.run()
    assert to_torch(video).data_ptr() == video[0].data_ptr()


@pytest.mark.parametrize("mode", ["spatial", "temporal", "mixup"])
def test_mix_in_the_pipeline_pastes_the_sampled_boxes_and_weights_labels(dataset, mode):
    from videomix_dali.mix import VideoMix, apply_mix

    kwargs = dict(
        recipe="demo", device="cpu", batch_size=4, num_frames=4, crop_size=32, seed=1,
        last_batch="partial", progress=False,
    )  # fmt: skip
    plain = collect(VideoLoader(dataset, **kwargs))
    mixed = collect(VideoLoader(dataset, mix=VideoMix(mode, seed=7), **kwargs))
    assert [v.shape[0] for v, _ in mixed] == [4, 4, 1]
    reference = VideoMix(mode, seed=7)
    for step, ((video, label), (mixed_video, target)) in enumerate(zip(plain, mixed)):
        params = reference.sample(tuple(video.shape), step=step)
        expected = apply_mix(video.numpy(), params)
        np.testing.assert_allclose(mixed_video.numpy(), expected, atol=1e-5)
        assert target.dtype == torch.float32 and target.shape == (len(label), 3)
        np.testing.assert_allclose(target.sum(1).numpy(), 1.0, rtol=1e-6)
        for i in range(len(label)):
            if mode == "mixup" or len(label) == 1:
                continue
            t1, t2, h1, h2, w1, w2 = params.boxes[i, 0, 0]
            pasted = (t2 - t1) * (h2 - h1) * (w2 - w1) / (4 * 32 * 32)
            partner = params.partners[i, 0]
            expected_target = np.zeros(3)
            expected_target[label[i]] += 1 - pasted
            expected_target[label[partner]] += pasted
            np.testing.assert_allclose(target[i].numpy(), expected_target, atol=1e-6)
    assert torch.equal(mixed[-1][1], torch.nn.functional.one_hot(plain[-1][1], 3).float())


@pytest.mark.parametrize(
    "mode", ["spatial", "temporal", "spatiotemporal", "perframe", "mixup", "cutout"]
)
def test_cpu_graph_mixes_exactly_like_the_numpy_twin(dataset, mode):
    """The whole CPU loader with mixing == the twin's fused path on its unmixed crops."""
    from videomix_dali.mix import VideoMix, mix_normalize_batch

    kwargs = dict(
        recipe="demo", device="cpu", batch_size=4, num_frames=4, crop_size=32, seed=1,
        progress=False,
    )  # fmt: skip
    raw = collect(VideoLoader(dataset, mean=(0.0,) * 3, std=(1.0,) * 3, **kwargs))  # 0..255
    mix = VideoMix(mode, num_videos=3 if mode != "cutout" else 2, seed=7)
    mixed = collect(VideoLoader(dataset, mix=mix, **kwargs))
    loader = VideoLoader(dataset, **kwargs)
    reference = VideoMix(mode, num_videos=mix.num_videos, seed=7)
    for step, ((video, _), (mixed_video, _)) in enumerate(zip(raw, mixed)):
        frames = list(video.numpy().astype(np.uint8).transpose(0, 2, 3, 4, 1))  # (T, H, W, C)
        params = reference.sample(tuple(video.shape), step=step)
        want = mix_normalize_batch(frames, params, loader.recipe.mean, loader.recipe.std)
        np.testing.assert_array_equal(mixed_video.numpy().view(np.uint32), want.view(np.uint32))


@pytest.mark.gpu
@pytest.mark.parametrize(
    "mode, dtype",
    [("spatial", "float32"), ("temporal", "float16"), ("spatiotemporal", "float32"),
     ("perframe", "float16"), ("mixup", "float32"), ("cutout", "float16")],
)  # fmt: skip
def test_gpu_pipeline_mixes_like_the_cpu_one(gpu_datasets, mode, dtype):
    from videomix_dali.mix import VideoMix

    cpu_root, gpu_root = gpu_datasets
    kwargs = dict(
        recipe="demo", train=False, batch_size=3, num_frames=4, stride=3, crop_size=48,
        eval_short_side=48, dtype=dtype, progress=False,
    )  # fmt: skip
    cpu = collect(VideoLoader(cpu_root, device="cpu", mix=VideoMix(mode, seed=3), **kwargs))
    gpu = collect(VideoLoader(gpu_root, device="gpu", mix=VideoMix(mode, seed=3), **kwargs))
    assert len(cpu) == len(gpu) > 0
    for (vc, yc), (vg, yg) in zip(cpu, gpu):
        assert vg.is_cuda and yg.is_cuda and vg.dtype == vc.dtype == getattr(torch, dtype)
        assert torch.equal(yc, yg.cpu())  # same params, same labels, on both backends
        assert (vg.cpu() - vc).abs().mul(STD).mean() < 1.5  # NVDEC vs FFmpeg colour rounding
