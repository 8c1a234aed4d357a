"""``videomix-dali bench``: runs end to end on tiny settings (every row, interleaved rounds,
the decode-only limit and each row's share of it), its peers really decode the same clips,
``bench-data`` writes the corpus it promises, and the mix-op micro-benchmark reports both
timings."""

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
from videomix_dali.source.probe import probe_video
from videomix_dali.tools.bench import (
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
from videomix_dali.tools.bench.data import BenchData, cut_frames, make_bench_data
from videomix_dali.tools.bench.measure import merge_rounds
from videomix_dali.tools.bench.peers import decode_only
from videomix_dali.tools.bench.report import format_table
from videomix_dali.tools.bench.run import DATA_LABELS, resolve_data
from videomix_dali.tools.bench.streams import skip_reason

H, W, F = 48, 64, 24
# a small corpus with the bench corpus' structure: FFmpeg's Matroska muxer starts a cluster at a
# keyframe only past 4 KiB, so the frames are not tinier than this and a GOP not shorter
SMALL = BenchData(
    classes=2,
    videos_per_class=1,
    long_per_class=1,
    frames=120,
    long_frames=180,
    size=(192, 256),
    gop=60,
    window=30,
    h264=True,
)


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
        + ["--duration", "0.4", "--warmup", "0.1", "--rounds", "2"]
        + ["--workers", "2", "--threads", "2"]
        + ["--loaders", "decode-limit,pyav,torchcodec,decord,dali-reader,videomix-dali"]
        + ["--json", str(out_json), "--plot", str(out_png)]
    )
    args.func(args)

    report = json.loads(out_json.read_text())
    assert {"machine", "config", "results", "skipped"} <= set(report)
    assert report["machine"]["cores"] >= 1 and report["machine"]["cpu"]
    assert report["config"]["frames"] == 4 and report["config"]["crop"] == 32
    assert report["config"]["dataset"] == "custom" and report["config"]["rounds"] == 2
    ran = {(r["loader"], r["mix"]) for r in report["results"]}
    for loader in ("pyav", "dali-reader", "videomix-dali"):
        assert {(loader, "none"), (loader, "spatial")} <= ran
    assert ("decode-limit", "none") in ran and ("decode-limit", "spatial") not in ran
    rows = {(r["loader"], r["mix"]): r for r in report["results"]}
    limit = rows["decode-limit", "none"]
    for row in report["results"]:
        assert set(RESULT_FIELDS) <= set(row), row
        assert row["device"] == "cpu"
        assert row["clips_per_s"] > 0 and row["batches"] >= 2
        assert len(row["rounds_clips_per_s"]) == 2 and "batch_s" not in row
        assert row["frames_per_s"] == pytest.approx(row["clips_per_s"] * 4, rel=0.01)
        assert 0 < row["batch_ms_p50"] <= row["batch_ms_p95"]
        assert 0 < row["cpu_util"] <= 1.5
        assert row["peak_rss_mb"] > 50
        assert row["gpu_mem_mb"] is None
        assert row["share_of_limit"] == pytest.approx(
            row["clips_per_s"] / limit["clips_per_s"], abs=1e-3
        )
        if row is not limit:  # the limit yields per-clip frame counts, not pixels
            assert row["batch_shape"] == [2, 3, 4, 32, 32]
    assert limit["batch_shape"] == [2] and limit["share_of_limit"] == 1.0
    assert rows["pyav", "none"]["ratio_to_baseline"] == 1.0
    summary = report["summary"]
    ours = rows["videomix-dali", "none"]["clips_per_s"]
    assert summary["ours_share_of_limit"] == pytest.approx(ours / limit["clips_per_s"], abs=1e-3)
    peers = [rows[k]["clips_per_s"] for k in rows if k[1] == "spatial" and k[0] != "videomix-dali"]
    assert summary["ours_mixed_vs_best_peer"] == pytest.approx(
        rows["videomix-dali", "spatial"]["clips_per_s"] / max(peers), abs=1e-3
    )
    assert {"ours_vs_best_peer", "mix_cost", "ours_mixed_share_of_limit"} <= set(summary)
    skipped = {s["loader"]: s["reason"] for s in report["skipped"]}
    for peer, module in (("torchcodec", "torchcodec"), ("decord", "decord")):
        if _importable(module):
            assert (peer, "none") in ran
        else:
            assert "not importable" in skipped[peer]
    assert "torchcodec-cuda" not in skipped  # not asked for
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_rows_taking_several_clips_per_decoded_video(tiny_dataset):
    report = run_bench(
        tiny_dataset, batch_size=4, frames=4, stride=2, crop=32, duration=0.3, warmup=0.1,
        loaders="videomix-dali", clips_per_video=2, threads=2, verbose=False,
    )  # fmt: skip
    rows = {(r["loader"], r["mix"]): r for r in report["results"]}
    assert set(rows) == {
        (loader, mix)
        for loader in ("videomix-dali", "videomix-dali k=2 views", "videomix-dali k=2 windows")
        for mix in ("none", "spatial")
    }
    for row in rows.values():
        assert row["batch_shape"] == [4, 3, 4, 32, 32] and row["clips_per_s"] > 0
    one = rows["videomix-dali", "spatial"]["clips_per_s"]
    two = rows["videomix-dali k=2 windows", "spatial"]["clips_per_s"]
    assert report["summary"]["k2_windows_vs_k1_mix_spatial"] == pytest.approx(two / one, abs=1e-3)
    assert "k=2 views" in format_table(report)


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
    from videomix_dali.tools.bench import main

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
    from videomix_dali.tools.bench.cli import load_model_factory
    from videomix_dali.tools.bench.model import tiny3d_net

    with pytest.raises(ValueError, match="no model factory"):
        build_bench_model("slowonly18", 3)
    asked = []
    net = build_bench_model("mine", 3, lambda name, k: asked.append((name, k)) or tiny3d_net(k))
    assert asked == [("mine", 3)] and net[-1].out_features == 3
    assert load_model_factory("videomix_dali.tools.bench.model:tiny3d_net") is tiny3d_net
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


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory):
    return make_bench_data(tmp_path_factory.mktemp("bench_corpus"), SMALL, progress=False)


def test_bench_data_defaults_are_kinetics_like():
    spec = BenchData()
    assert spec.size == (256, 340) and spec.fps == 30  # 340x256
    assert (spec.frames, spec.gop, spec.long_frames, spec.window) == (300, 150, 900, 57)
    with pytest.raises(ValueError, match="window"):
        BenchData(frames=40, window=57)


def test_bench_data_writes_the_promised_videos(small_corpus):
    root = small_corpus
    for split, n in (("train", SMALL.frames), ("long", SMALL.long_frames)):
        for ext, codec, base in (("webm", "vp9", root), ("mp4", "h264", root / "h264")):
            paths = sorted((base / split).glob(f"*/*.{ext}"))
            assert [p.parent.name for p in paths] == ["move_left", "move_right"]  # per class
            for path in paths:
                info = probe_video(path)
                assert (info.num_frames, info.height, info.width) == (n, 192, 256)
                assert info.codec == codec
                assert cut_frames(info.cuts) == tuple(range(0, n, SMALL.gop))  # one each gop
            for part, start in (("head", 0), ("tail", n - SMALL.window)):
                rows = (base / f"{split}_{part}.txt").read_text().splitlines()
                assert [r.split()[2:] for r in rows] == [[str(start), str(start + 30)]] * 2
        # the index sub-ranges select those frames (the CPU reads the VP9 files)
        tail = VideoLoader(
            root / f"{split}_tail.txt",
            recipe="demo",
            device="cpu",
            batch_size=2,
            num_frames=4,
            stride=4,
            progress=False,
        )
        assert min(int(c.frames.min()) for c in tail.sampler.batch(0, 0)) >= n - SMALL.window
    assert not list(root.rglob(".*.part.*"))


def test_bench_data_resumes_and_refuses_other_parameters(small_corpus, tmp_path):
    done = sorted(small_corpus.rglob("*.webm"))
    stamps = [p.stat().st_mtime_ns for p in done]
    missing = done[0]
    missing.unlink()
    make_bench_data(small_corpus, SMALL, progress=False)  # only the missing file is made
    assert missing.is_file()
    assert [p.stat().st_mtime_ns for p in done[1:]] == stamps[1:]
    with pytest.raises(ValueError, match="other parameters"):
        make_bench_data(small_corpus, BenchData(classes=3), progress=False)
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not a bench corpus"):
        make_bench_data(tmp_path, SMALL, progress=False)


def test_pyav_peer_seeks_to_the_keyframe_and_stops_at_the_last_frame(small_corpus):
    import av

    gop = SMALL.gop
    for path in (
        next(small_corpus.glob("long/*/*.webm")),
        next(small_corpus.glob("h264/long/*/*.mp4")),
    ):
        with av.open(str(path)) as container:
            full = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
        windows = [[0, 2, 4], [gop - 1], [gop, gop + 3], [gop + 1], [gop - 2, gop + 2], [179, 179]]
        for frames in windows:
            assert np.array_equal(decode_pyav(path, frames), full[frames]), (path, frames)
        # the limit decodes from the keyframe at or before the window through its last frame
        jobs = [(str(path), 0, 7), (str(path), gop + 1, gop + 9), (str(path), gop - 1, gop + 1)]
        assert decode_only(jobs) == [8, 10, gop + 2]


def test_merge_rounds_pools_clips_and_batch_times():
    def part(clips, wall, times, cpu, rss):
        return {
            "clips_per_s": clips / wall,
            "frames_per_s": 4 * clips / wall,
            "cpu_util": cpu,
            "peak_rss_mb": rss,
            "peak_pss_mb": rss / 2,
            "gpu_mem_mb": None,
            "clips": clips,
            "wall_s": wall,
            "batch_shape": [2, 3, 4, 8, 8],
            "batch_s": times,
        }

    row = merge_rounds([part(10, 1.0, [0.1] * 5, 0.5, 100), part(30, 3.0, [0.3] * 5, 1.0, 90)])
    assert row["clips_per_s"] == 10.0 and row["frames_per_s"] == 40.0
    assert row["rounds_clips_per_s"] == [10.0, 10.0] and row["batches"] == 10
    assert row["batch_ms_p50"] == pytest.approx(200.0) and row["batch_ms_p95"] == 300.0
    assert row["cpu_util"] == pytest.approx(0.875) and row["peak_rss_mb"] == 100
    assert row["gpu_mem_mb"] is None and row["wall_s"] == 4.0


def test_missing_peers_and_the_limit_on_gpu_skip_with_a_reason(monkeypatch):
    monkeypatch.setitem(sys.modules, "decord", None)  # import decord -> ImportError
    monkeypatch.setitem(sys.modules, "torchcodec", None)
    for peer, module in (("decord", "decord"), ("torchcodec", "torchcodec")):
        assert f"{module} is not importable" in skip_reason(peer, "cpu")
    assert "--device cpu" in skip_reason("decode-limit", "gpu")
    assert skip_reason("decode-limit", "cpu") is None
    assert skip_reason("dali-reader", "cpu") is None


def test_bench_reads_the_bench_corpus_by_default_and_labels_the_demo_table(monkeypatch, tmp_path):
    import videomix_dali.tools.bench.data as data

    asked = []
    monkeypatch.setattr(data, "bench_split", lambda root, dev: asked.append((root, dev)) or root)
    assert resolve_data(None, "cpu", tmp_path, "unused") == (tmp_path, "bench")
    assert resolve_data("bench", "gpu", tmp_path, "unused") == (tmp_path, "bench")
    assert asked == [(tmp_path, "cpu"), (tmp_path, "gpu")]
    assert resolve_data("./demo", "cpu", tmp_path, "unused")[1] == "custom"
    report = {
        "config": {"data_label": DATA_LABELS["demo"], "videos": 48, "rounds": 3, "mix": "none"},
        "machine": {"loadavg": None},
        "results": [],
        "skipped": [],
    }
    assert format_table(report).startswith("data: demo clips (128x96, 48 frames)")
