"""``videomix-dali bench``: runs end to end on tiny settings, its peers really decode the same
clips, and the mix-op micro-benchmark reports both timings."""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from videos import ramp_video, write_video

from videomix_dali import VideoLoader
from videomix_dali.bench import (
    RESULT_FIELDS,
    PeerClipDataset,
    add_bench_parser,
    build_bench_model,
    clip_transform,
    decode_pyav,
    process_tree,
    run_bench,
    run_op_bench,
    time_model_steps,
    timm_style_mix,
    tree_cpu_seconds,
)

H, W, F = 48, 64, 24


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    """Two classes x two lossless VP9 ramp videos (48 x 64, 24 frames), folder per class."""
    root = tmp_path_factory.mktemp("bench_data")
    for i, cls in enumerate(["left", "right", "left", "right"]):
        write_video(root / cls / f"v{i}.webm", ramp_video(F, H, W, seed=i))
    return root


def _importable(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def test_bench_end_to_end_json_and_plot(tiny_dataset, tmp_path):
    parser = argparse.ArgumentParser(prog="videomix-dali")
    add_bench_parser(parser.add_subparsers(dest="command", required=True))
    out_json, out_png = tmp_path / "bench.json", tmp_path / "bench.png"
    args = parser.parse_args(
        ["bench", "--data", str(tiny_dataset), "--device", "cpu", "--batch-size", "2"]
        + ["--frames", "4", "--stride", "2", "--crop", "32", "--mix", "spatial"]
        + ["--duration", "0.4", "--warmup", "0.1", "--workers", "2", "--threads", "2"]
        + ["--loaders", "pyav,torchcodec,decord,videomix-dali"]
        + ["--json", str(out_json), "--plot", str(out_png)]
    )
    args.func(args)

    report = json.loads(out_json.read_text())
    assert {"machine", "config", "results", "skipped"} <= set(report)
    assert report["machine"]["cores"] >= 1 and report["machine"]["cpu"]
    assert report["config"]["frames"] == 4 and report["config"]["crop"] == 32
    ran = {(r["loader"], r["mix"]) for r in report["results"]}
    assert {("pyav", "none"), ("pyav", "spatial")} <= ran
    assert {("videomix-dali", "none"), ("videomix-dali", "spatial")} <= ran
    for row in report["results"]:
        assert set(RESULT_FIELDS) <= set(row), row
        assert row["device"] == "cpu"
        assert row["clips_per_s"] > 0 and row["batches"] >= 2
        assert row["frames_per_s"] == pytest.approx(row["clips_per_s"] * 4, rel=0.01)
        assert 0 < row["batch_ms_p50"] <= row["batch_ms_p95"]
        assert 0 < row["cpu_util"] <= 1.5
        assert row["peak_rss_mb"] > 50
        assert row["gpu_mem_mb"] is None
        assert row["batch_shape"] == [2, 3, 4, 32, 32]
    pyav_none = next(r for r in report["results"] if r["loader"] == "pyav" and r["mix"] == "none")
    assert pyav_none["ratio_to_baseline"] == 1.0
    skipped = {s["loader"]: s["reason"] for s in report["skipped"]}
    for peer, module in (("torchcodec", "torchcodec"), ("decord", "decord")):
        if _importable(module):
            assert (peer, "none") in ran
        else:
            assert "not importable" in skipped[peer]
    assert "torchcodec-cuda" not in skipped  # not asked for
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_rejects_bad_arguments(tiny_dataset):
    with pytest.raises(ValueError, match="loaders"):
        run_bench(tiny_dataset, loaders="pyav,nope", verbose=False)
    with pytest.raises(ValueError, match="mix"):
        run_bench(tiny_dataset, mix="cutmix", verbose=False)
    with pytest.raises(ValueError, match="model"):
        run_bench(tiny_dataset, device="cpu", model="tiny3d", verbose=False)


def _eval_loader(tiny_dataset):
    # crop == eval_short_side == the short side: a 48 x 48 window, no resampling anywhere
    return VideoLoader(
        tiny_dataset,
        recipe="demo",
        device="cpu",
        train=False,
        batch_size=4,
        num_frames=4,
        stride=3,
        crop_size=H,
        eval_short_side=H,
        num_threads=2,
        progress=False,
    )


def test_baseline_decodes_the_same_clips_as_the_pipeline(tiny_dataset):
    loader = _eval_loader(tiny_dataset)
    clips = loader.sampler.batch(0, 0)
    assert clips[0].roi_end[1] - clips[0].roi_start[1] == H  # really no resampling
    video, _label = next(iter(loader))
    dataset = PeerClipDataset.from_loader(loader)
    std = torch.tensor(loader.recipe.std).view(3, 1, 1, 1)
    for i, clip in enumerate(clips):
        ours, label = dataset[clip]
        assert label == loader.entries[clip.item].label
        assert ours.shape == video[i].shape == (3, 4, H, H)
        levels = ((ours - video[i]) * std).abs()  # in 0..255 units
        assert levels.mean() < 2.5, levels.mean()
        # red follows the frame number (4 levels a frame): per frame within 2 levels
        assert levels[0].mean(dim=(1, 2)).max() < 2.0
        # a clip one frame off is clearly worse, so the check above does see the frames
        shifted = decode_pyav(dataset.paths[clip.item], (clip.frames + 1).tolist())
        off = clip_transform(shifted, clip, H, dataset.mean, dataset.std)
        assert ((off - video[i]) * std)[0].abs().mean() > 3.0


def test_clip_transform_flip_and_resize():
    frames = np.random.default_rng(0).integers(0, 256, (2, 20, 30, 3), dtype=np.uint8)

    class Clip:
        roi_start = np.array([2.0, 4.0], np.float32)
        roi_end = np.array([18.0, 20.0], np.float32)

    class Flipped(Clip):
        roi_start = np.array([2.0, 20.0], np.float32)
        roi_end = np.array([18.0, 4.0], np.float32)

    plain = clip_transform(frames, Clip, 16, [0, 0, 0], [1, 1, 1])
    assert plain.shape == (3, 2, 16, 16)
    expected = torch.from_numpy(frames[:, 2:18, 4:20]).permute(3, 0, 1, 2).float()
    assert torch.equal(plain, expected)
    assert torch.equal(clip_transform(frames, Flipped, 16, [0, 0, 0], [1, 1, 1]), plain.flip(-1))
    assert clip_transform(frames, Clip, 8, [0, 0, 0], [1, 1, 1]).shape == (3, 2, 8, 8)


@pytest.mark.parametrize("mode", ["spatial", "temporal", "spatiotemporal"])
def test_timm_style_mix_weights_are_voxel_fractions(mode):
    n, k = 4, 4
    x = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1, 1).expand(n, 3, 8, 16, 16).clone()
    y = torch.tensor([0, 1, 2, 3])
    for seed in range(5):
        mixed, soft = timm_style_mix(x.clone(), y, k, mode, rng=np.random.default_rng(seed))
        for i in range(n):
            own = (mixed[i] == i).float().mean().item()
            assert soft[i, y[i]].item() == pytest.approx(own)
            assert soft[i].sum().item() == pytest.approx(1.0)


def test_op_bench_reports_both_timings(tmp_path):
    report = run_op_bench(
        (2, 3, 2, 8, 8), repeats=2, gpu=None, json_path=tmp_path / "op.json", verbose=False
    )
    cpu = report["cpu"]
    for key in ("copy_ms", "apply_mix_ms", "mix_normalize_ms", "normalize_ms"):
        assert cpu[key] > 0
    assert cpu["apply_mix_vs_copy"] == pytest.approx(cpu["apply_mix_ms"] / cpu["copy_ms"], rel=0.01)
    assert cpu["mix_normalize_vs_normalize"] > 0
    if not torch.cuda.is_available():
        assert report["gpu"] is None and report["gpu_skipped"]
    assert json.loads((tmp_path / "op.json").read_text())["shape"] == [2, 3, 2, 8, 8]


def test_op_bench_cli(tmp_path, capsys):
    from videomix_dali.bench import main

    main(["--op", "--batch-size", "2", "--frames", "2", "--crop", "8", "--op-repeats", "2"])
    out = capsys.readouterr().out
    assert "apply_mix" in out and "cpu" in out


def test_model_steps_tiny3d_cpu():
    model = build_bench_model("tiny3d", 3)
    example = (torch.randn(2, 3, 4, 16, 16), torch.tensor([0, 2]))
    timing = time_model_steps(model, None, device="cpu", duration=0.05, warmup=0, example=example)
    assert timing["steps_per_s"] > 0
    soft = (example[0], torch.tensor([[0.5, 0.5, 0.0], [0.0, 0.2, 0.8]]))
    fed = time_model_steps(model, iter([soft] * 100), device="cpu", duration=0.05, warmup=0)
    assert fed["clips_per_s"] > 0


def test_bench_models_other_than_tiny3d_come_from_a_factory():
    from videomix_dali.bench.cli import load_model_factory
    from videomix_dali.bench.model import tiny3d_net

    with pytest.raises(ValueError, match="no model factory"):
        build_bench_model("slowonly18", 3)
    asked = []
    net = build_bench_model("mine", 3, lambda name, k: asked.append((name, k)) or tiny3d_net(k))
    assert asked == [("mine", 3)] and net[-1].out_features == 3
    assert load_model_factory("videomix_dali.bench.model:tiny3d_net") is tiny3d_net
    assert load_model_factory("no_such_module_here:build_model") is None
    with pytest.raises(ValueError, match="MODULE:FUNCTION"):
        load_model_factory("train.models")


def test_process_tree_counts_children():
    child = subprocess.Popen(
        [sys.executable, "-c", "import time\nt = time.time()\nwhile time.time() - t < 3: pass"]
    )
    try:
        before = tree_cpu_seconds()
        import time

        time.sleep(0.6)
        assert child.pid in process_tree()
        assert tree_cpu_seconds() - before > 0.2  # the busy child's CPU time is counted
    finally:
        child.kill()
        child.wait()
