"""Dirty datasets: every good file delivered exactly once per epoch, every bad one skipped and
explained; failures mid-run name the file; long runs do not leak; resume is exact."""

from __future__ import annotations

import os
import re
import socket
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from videos import ramp_video, write_video

from videomix_dali import VideoLoader
from videomix_dali.mix import VideoMix

# avc.mp4 (H.264, which DALI's CPU decoder lacks) makes the whole set decode with PyAV
GOOD = ["good0.webm", "good1.webm", "space name ü.webm", "big.webm", "vfr.webm", "avc.mp4"]
SHORT = ["short.webm", "one.webm"]  # 5 frames and 1 frame: fewer than a clip spans
BAD = {  # file -> what its reason must say
    "zero.webm": "not a readable video",
    "random.webm": "not a readable video",
    "text.mp4": "not a readable video",
    "trunc.webm": "truncated",
    "audio.webm": "no video stream",
}


def write_vfr_video(path: Path, frames: np.ndarray) -> None:
    """VP9 with irregular frame timestamps (variable frame rate)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libvpx-vp9", rate=25)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        pts = np.cumsum([0] + [20 if i % 3 else 70 for i in range(1, len(frames))])
        for frame, t in zip(frames, pts):
            video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
            video_frame.pts, video_frame.time_base = int(t), Fraction(1, 1000)
            for packet in stream.encode(video_frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def write_audio_only(path: Path) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libopus", rate=48000)
        for i in range(10):
            frame = av.AudioFrame.from_ndarray(
                np.zeros((1, 960), np.float32), format="flt", layout="mono"
            )
            frame.sample_rate, frame.pts = 48000, i * 960
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("dirty")
    folder = root / "walking"
    for i, name in enumerate(["good0.webm", "good1.webm", "space name ü.webm"]):
        write_video(folder / name, ramp_video(30, 48, 64, i))
    write_video(folder / "big.webm", ramp_video(30, 72, 96, 3))  # another resolution
    write_vfr_video(folder / "vfr.webm", ramp_video(30, 48, 64, 4))
    write_video(folder / "short.webm", ramp_video(5, 48, 64, 5))
    write_video(folder / "one.webm", ramp_video(1, 48, 64, 6))
    (folder / "zero.webm").write_bytes(b"")
    good = (folder / "good0.webm").read_bytes()
    (folder / "trunc.webm").write_bytes(good[: len(good) // 2])
    rng = np.random.default_rng(0)
    (folder / "random.webm").write_bytes(rng.integers(0, 256, 5000, dtype=np.uint8).tobytes())
    (folder / "text.mp4").write_text("not a video\n" * 50)
    write_audio_only(folder / "audio.webm")
    write_video(folder / "avc.mp4", ramp_video(30, 48, 64, 7), codec="libx264")
    return root


def make(source, **kwargs) -> VideoLoader:
    settings = dict(
        recipe="demo", device="cpu", batch_size=3, num_frames=4, stride=2, crop_size=32,
        last_batch="partial", return_index=True, progress=False,
    )  # fmt: skip
    return VideoLoader(source, **{**settings, **kwargs})


def delivered_names(loader: VideoLoader, epochs: int) -> list[list[str]]:
    names = []
    for _ in range(epochs):
        epoch = []
        for video, _, index in loader:
            assert torch.isfinite(video).all()
            epoch += [loader.entries[i].path.name for i in index.tolist()]
        names.append(epoch)
    return names


def test_good_files_delivered_once_per_epoch_bad_ones_skipped_with_reasons(corpus, caplog):
    loader = make(corpus)
    skipped = {path.name: reason for path, reason in loader.skipped}
    assert set(skipped) == set(BAD)
    for name, expected in BAD.items():
        assert expected in skipped[name], (name, skipped[name])
    assert loader.plan.host_decoded and "skipped 5 of 13 indexed videos" in caplog.text
    assert "2 of 8 videos have fewer frames than the 7 a clip spans, so each epoch pads 2" in (
        caplog.text
    )
    for epoch in delivered_names(loader, epochs=2):
        assert sorted(epoch) == sorted(GOOD + SHORT)  # short ones padded (the default)


def test_short_videos_can_be_skipped_instead_of_padded(corpus):
    loader = make(corpus, short_videos="skip")
    skipped = {path.name: reason for path, reason in loader.skipped}
    assert set(skipped) == set(BAD) | set(SHORT)
    assert skipped["short.webm"] == (
        "5 frames, fewer than the 7 a clip spans (short_videos='skip')"
    )
    (epoch,) = delivered_names(loader, epochs=1)
    assert sorted(epoch) == sorted(GOOD)


def test_padded_short_video_repeats_its_last_frame(corpus):
    loader = make([(corpus / "walking" / "one.webm", 0)], batch_size=1, train=False)
    video, _, _ = next(iter(loader))
    assert torch.equal(video, video[:, :, :1].expand_as(video))


def test_nothing_usable_lists_every_reason(corpus):
    bad = [(corpus / "walking" / name, 0) for name in BAD]
    with pytest.raises(ValueError) as error:
        make(bad)
    message = str(error.value)
    assert message.startswith("no usable videos in ")
    for name, reason in BAD.items():
        assert re.search(re.escape(name) + ".*" + re.escape(reason), message), name


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_unreadable_file_is_skipped(tmp_path):
    write_video(tmp_path / "c" / "ok.webm", ramp_video(10, 32, 32, 0))
    locked = write_video(tmp_path / "c" / "locked.webm", ramp_video(10, 32, 32, 1))
    locked.chmod(0)
    loader = make(tmp_path, batch_size=1)
    ((path, reason),) = loader.skipped
    assert path.name == "locked.webm" and "ermission" in reason


def test_failure_mid_run_names_the_file_and_a_new_loader_works(tmp_path):
    for i in range(4):
        write_video(tmp_path / "c" / f"{i}.webm", ramp_video(12, 32, 32, i))
    loader = make(tmp_path, batch_size=2, train=False, prefetch=1)
    victim = loader.entries[3].path
    victim.unlink()
    with pytest.raises(RuntimeError, match=re.escape(str(victim))):
        delivered_names(loader, epochs=1)
    again = make(tmp_path, batch_size=2, train=False)  # the folder no longer lists it
    assert sorted(delivered_names(again, epochs=1)[0]) == ["0.webm", "1.webm", "2.webm"]


def resident_kb() -> int:
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1))


def test_long_run_with_mixing_keeps_memory_and_descriptors_flat(corpus):
    loader = make(corpus, mix=VideoMix("spatial", seed=0), return_index=False, batch_size=4)
    batches, warmup, total = 0, 40, 240
    while batches < total:
        for _video, _target in loader:
            batches += 1
            if batches == warmup:
                rss, fds = resident_kb(), len(os.listdir("/proc/self/fd"))
            if batches == total:
                break
    assert resident_kb() < rss * 1.05
    assert len(os.listdir("/proc/self/fd")) <= fds


def test_resume_with_mixing_continues_exactly(corpus):
    def run(loader, batches):
        out = []
        while len(out) < batches:
            for video, target, _ in loader:
                out.append((video.clone(), target.clone()))
                if len(out) == batches:
                    return out
        return out

    kwargs = dict(mix=VideoMix("spatial", seed=2), seed=4)
    straight = run(make(corpus, **kwargs), 7)
    first = make(corpus, **kwargs)
    run(first, 4)  # stops inside epoch 1: 3 batches per epoch
    state = first.state_dict()
    assert (state["epoch"], state["step"]) == (1, 1)
    resumed = make(corpus, **kwargs)
    resumed.load_state_dict(state)
    for (v1, t1), (v2, t2) in zip(straight[4:], run(resumed, 3), strict=True):
        assert torch.equal(v1, v2) and torch.equal(t1, t2)


def _rank_listing(rank: int, port: int, roots: list[str], cache_home: str, out: str) -> None:
    """One rank of a two-process gloo group building a loader on its own listing."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), XDG_CACHE_HOME=cache_home)
    torch.distributed.init_process_group("gloo", rank=rank, world_size=2)
    try:
        make(roots[rank], batch_size=1)
        message = "built"
    except ValueError as exc:
        message = str(exc)
    finally:
        torch.distributed.destroy_process_group()
    Path(out, f"{rank}.txt").write_text(message)


def test_ranks_that_list_different_videos_stop_before_the_first_batch(tmp_path):
    roots = [tmp_path / "early", tmp_path / "late"]  # the folder before and after a new file
    for root in roots:
        for i in range(2):
            write_video(root / f"c{i}" / f"v{i}.webm", ramp_video(8, 32, 48, i))
    write_video(roots[1] / "c0" / "added.webm", ramp_video(8, 32, 48, 2))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = (port, [str(r) for r in roots], str(tmp_path / "cache"), str(tmp_path))
    torch.multiprocessing.spawn(_rank_listing, args=args, nprocs=2)
    for rank in range(2):
        message = (tmp_path / f"{rank}.txt").read_text()
        assert message.startswith("the ranks see different indexes of ")
        assert "(rank 0: 2 videos, rank 1: 3 videos)" in message
