"""Dirty data at scale: damaged frame data costs one file's clips, never the epoch;
bad argument values are refused up front, naming the argument; resume states refuse what they
do not fit; one loop over a loader is live at a time."""

from __future__ import annotations

import re
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from videos import decode_video, ramp_video, write_video

from videomix_dali import VideoLoader
from videomix_dali.loading import videos as loader_module
from videomix_dali.source import verify
from videomix_dali.source.probe import probe_video

GOOD = [f"good{i}.webm" for i in range(4)]
FRAMES = 30


def packets(path: Path) -> list[tuple[int, int]]:
    """(byte position, size) of every video packet; a Matroska packet's position is its
    block's track number, the first byte after the SimpleBlock's element header."""
    with av.open(str(path)) as container:
        return [(p.pos, p.size) for p in container.demux(video=0) if p.size]


def damage(path: Path, offset: int, data: bytes) -> None:
    raw = bytearray(path.read_bytes())
    raw[offset : offset + len(data)] = data
    path.write_bytes(bytes(raw))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Four good VP9 files and two damaged ones that pass the probe (demux only).

    ``payload.webm``: zeros over the start of frame 1, 11 and 21's data (the VP9 frame
    marker), so that the decoder rejects them, and every clip (keyframes every 10 frames).
    ``header.webm``: frame 3's block header flags claim EBML lacing, so that FFmpeg drops the
    rest of that cluster (frames 3..9): the demuxer's frame 3 is frame 10.
    """
    root = tmp_path_factory.mktemp("dirty14")
    folder = root / "main" / "walking"
    for i, name in enumerate(GOOD):
        write_video(folder / name, ramp_video(FRAMES, 48, 64, i), gop=10)
    payload = write_video(folder / "payload.webm", ramp_video(FRAMES, 48, 64, 4), gop=10)
    for pos, _ in packets(payload)[1::10]:  # frames 1, 11, 21: in every group of pictures
        damage(payload, pos + 4, bytes(8))
    header = root / "header" / "walking" / "header.webm"
    write_video(header, ramp_video(FRAMES, 48, 64, 5), gop=10)
    damage(header, packets(header)[3][0] + 3, b"\x06")
    return root


def make(source, **kwargs) -> VideoLoader:
    settings = dict(
        recipe="demo", device="cpu", batch_size=2, num_frames=4, stride=2, crop_size=32,
        last_batch="partial", return_index=True, progress=False,
    )  # fmt: skip
    return VideoLoader(source, **{**settings, **kwargs})


def run(loader: VideoLoader, batches: int) -> list[tuple[torch.Tensor, list[int]]]:
    """The next ``batches`` batches as (video, dataset indices), across epochs."""
    out: list[tuple[torch.Tensor, list[int]]] = []
    while len(out) < batches:
        for video, _, index in loader:
            out.append((video.clone(), index.tolist()))
            if len(out) == batches:
                break
    return out


def names(loader: VideoLoader, batches) -> list[str]:
    return [loader.entries[i].path.name for _, index in batches for i in index]


# ------------------------------------------------------------------------ damaged frame data


def test_the_corpus_reproduces_the_damage(corpus):
    payload = corpus / "main" / "walking" / "payload.webm"
    assert probe_video(payload).num_frames == FRAMES  # the probe only demuxes
    with pytest.raises(av.error.InvalidDataError):
        decode_video(payload)
    header = corpus / "header" / "walking" / "header.webm"
    assert probe_video(header).num_frames == FRAMES - 7
    truth = ramp_video(FRAMES, 48, 64, 5)[:, 0, 0, 0].astype(float)
    got = decode_video(header)[:, 0, 0, 0]
    assert np.abs(truth[10] - got[3]) < 3  # frame 3 asked, frame 10 delivered


def test_damaged_frame_data_costs_its_clips_not_the_epoch(corpus, caplog):
    loader = make(corpus / "main")
    assert len(loader) == 3 and loader.skipped == []
    batches = run(loader, 2 * len(loader))  # two epochs
    (path, reason), *others = loader.skipped
    assert not others and loader.damaged == [path] and path.name == "payload.webm"
    assert reason.startswith("damaged frame data (frames ")
    assert "Failed to send packet to decoder" in reason and "Critical error" not in reason
    assert f"skipped {path}: damaged frame data" in caplog.text
    delivered = names(loader, batches)
    assert len(delivered) == 10 and "payload.webm" not in delivered
    for epoch in (delivered[:5], delivered[5:]):
        assert set(GOOD) <= set(epoch)  # each good file, plus one replacing payload.webm
    assert (loader.epoch, loader.step) == (2, 0)


def test_evaluation_drops_a_damaged_files_views_and_delivers_every_other_view_once(corpus):
    loader = make(corpus / "main", train=False, test_clips=2, test_crops=3, batch_size=4)
    views = [i for _, _, index in loader for i in index.tolist()]  # one epoch
    assert [p.name for p in loader.damaged] == ["payload.webm"]
    damaged = next(k for k, e in enumerate(loader.entries) if e.path.name == "payload.webm")
    assert sorted(views) == sorted(
        k for k in range(len(GOOD) + 1) if k != damaged for _ in range(6)
    )
    assert (loader.epoch, loader.step) == (1, 0)


def test_replacement_is_the_same_whatever_the_prefetch_and_where_the_run_resumes(corpus):
    straight = run(make(corpus / "main", prefetch=4), 7)
    assert [i for _, index in straight for i in index] == [
        i for _, index in run(make(corpus / "main", prefetch=1), 7) for i in index
    ]
    first = make(corpus / "main")
    run(first, 4)  # epoch 1, step 1: payload.webm found in epoch 0
    state = first.state_dict()
    assert state["damaged"] == [str(corpus / "main" / "walking" / "payload.webm")]
    resumed = make(corpus / "main")
    resumed.load_state_dict(state)
    assert [p.name for p, _ in resumed.skipped] == ["payload.webm"]
    for (v1, i1), (v2, i2) in zip(straight[4:], run(resumed, 3), strict=True):
        assert i1 == i2 and torch.equal(v1, v2)


def test_a_batch_no_single_file_explains_names_its_files_and_the_real_cause(corpus, monkeypatch):
    monkeypatch.setattr(loader_module, "clip_decode_error", lambda *a, **k: None)
    loader = make(corpus / "main", train=False, batch_size=6)
    with pytest.raises(RuntimeError) as error:
        run(loader, 1)
    message = str(error.value)
    assert message.startswith("the pipeline failed on batch 0 of epoch 0 (files: ")
    assert "payload.webm" in message and "good0.webm" in message
    assert message.endswith(
        "Failed to send packet to decoder: Invalid data found when processing input"
    )
    assert loader.skipped == []


@pytest.mark.parametrize("where", ["batch", "clip"])
def test_a_cuda_fault_is_never_blamed_on_the_files(corpus, monkeypatch, where):
    fault = "CUDA error: an illegal memory access was encountered"
    if where == "clip":  # the batch failed; decoding its clips alone meets the dead context
        monkeypatch.setattr(loader_module, "clip_decode_error", lambda *a, **k: fault)
    else:
        monkeypatch.setattr(loader_module, "build_pipeline", lambda *a, **k: _Failing(fault))
    loader = make(corpus / "main", train=False, batch_size=6)
    with pytest.raises(RuntimeError, match="CUDA fault .*no file is blamed.*illegal memory"):
        run(loader, 1)
    assert loader.skipped == [] and loader.damaged == []


class _Failing:
    """A pipeline whose every run fails with ``message``."""

    def __init__(self, message: str) -> None:
        self.message = message

    def run(self):
        raise RuntimeError(self.message)


def test_decoder_message_drops_dalis_framing():
    text = (
        "Critical error in pipeline:\nError in CPU operator `nvidia.dali.fn.decoders.video`,\n"
        'encountered:\n\nAssert on "ret >= 0" failed: Failed to send packet to decoder: '
        "Invalid data\nC++ context: [frames_decoder_cpu.cc:164]\n"
        "Current pipeline object is no longer valid."
    )
    assert verify.decoder_message(RuntimeError(text)) == (
        "Failed to send packet to decoder: Invalid data"
    )
    assert verify.decoder_message(RuntimeError("cannot read x.webm")) == "cannot read x.webm"


# --------------------------------------------------------- verify="decode" and block headers


def test_verify_decode_skips_damaged_files_up_front_and_caches(corpus, monkeypatch):
    source = [(p, 0) for p in sorted((corpus / "main" / "walking").iterdir())]
    source.append((corpus / "header" / "walking" / "header.webm", 0))
    loader = make(source, verify="decode")
    skipped = {path.name: reason for path, reason in loader.skipped}
    assert set(skipped) == {"payload.webm", "header.webm"}
    assert skipped["payload.webm"] == (
        "damaged frame data: decoding stops at frame 1 "
        "(Invalid data found when processing input, avcodec_send_packet())"
    )
    assert skipped["header.webm"] == (
        "damaged block header: the clusters hold 164 video frames (and 0 of undeclared "
        "tracks) but the demuxer delivers 23 packets, so frame indices would point at other "
        "frames"
    )
    assert sorted(e.path.name for e in loader.entries) == GOOD
    assert sorted(names(loader, run(loader, len(loader)))) == GOOD
    monkeypatch.setattr(verify, "decode_check", lambda *a: pytest.fail("not cached"))
    again = make(source, verify="decode")
    assert again.skipped == loader.skipped


def test_block_header_naming_an_undeclared_track_is_caught(tmp_path):
    path = write_video(tmp_path / "c" / "track.webm", ramp_video(FRAMES, 48, 64, 0), gop=10)
    damage(path, packets(path)[3][0], b"\x82")  # track 2, which the file does not declare
    info = probe_video(path)
    assert verify.decode_check(path, info) == (
        f"damaged block header: the clusters hold {FRAMES - 1} video frames (and 1 of "
        f"undeclared tracks) but the demuxer delivers {info.num_frames} packets, so frame "
        "indices would point at other frames"
    )
    assert verify.decode_check(tmp_path / "c" / "track.webm", info).startswith("damaged")


def test_verify_rejects_an_unknown_mode(corpus):
    with pytest.raises(
        ValueError, match=re.escape("verify='full' must be one of (None, 'decode')")
    ):
        make(corpus / "main", verify="full")


# ----------------------------------------------------------------------------- bad arguments

NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"mean": (0.5, NAN, 0.5)}, "mean=(0.5, nan, 0.5) must be 3 finite numbers (R, G, B)"),
        ({"std": (1.0, INF, 1.0)}, "std=(1.0, inf, 1.0) must be 3 finite numbers (R, G, B)"),
        ({"mean": "abc"}, "mean='abc' must be 3 finite numbers (R, G, B)"),
        ({"mean": ("1", "2", "3")}, "mean=('1', '2', '3') must be 3 finite numbers (R, G, B)"),
        ({"ratio": (1, INF)}, "ratio=(1, inf) must be 2 finite numbers (min, max)"),
        ({"seed": -1}, "seed=-1 must be an integer >= 0"),
        ({"seed": 0.5}, "seed=0.5 must be an integer"),
        ({"seed": "abc"}, "seed='abc' must be an integer"),
        ({"num_threads": "2"}, "num_threads='2' must be an integer"),
        ({"prefetch": 0}, "prefetch=0 must be an integer >= 1"),
        ({"prefetch": 10000}, "prefetch=10000 must be <= 16: DALI prepares every prefetched"),
        ({"num_frames": 10**6}, "num_frames=1000000 must be <= 1024: DALI decodes and resizes"),
    ],
)
def test_bad_values_are_refused_naming_the_argument(corpus, kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        make(corpus / "main", **kwargs)


def test_a_batch_that_cannot_fit_is_refused_with_the_estimate(corpus, monkeypatch):
    with pytest.raises(ValueError, match=r"crop_size=100000, .* GB of host memory is free"):
        make(corpus / "main", crop_size=10**5)
    monkeypatch.setattr(loader_module, "free_memory", lambda device: 10**5)
    # 2 clips x 4 frames x (48 x 64 decoded + 32 x 32 resized + float32 output) x 3 channels
    need = 3 * 2 * 4 * 3 * (48 * 64 + 32 * 32 + 4 * 32 * 32)
    with pytest.raises(ValueError) as error:
        make(corpus / "main")
    assert str(error.value) == (
        f"3 batches in flight need about {need / 1e9:.3g} GB (batch_size=2, num_frames=4, "
        "crop_size=32, dtype=float32, prefetch=2, largest video 48x64) but 0.0001 GB of host "
        "memory is free; lower one of them"
    )


# ------------------------------------------------------------------------------ resume state


@pytest.fixture(scope="module")
def good(corpus) -> list[tuple[Path, int]]:
    return [(corpus / "main" / "walking" / name, 0) for name in GOOD]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"batch_size": 1}, "saved with batch_size=2 but this loader has batch_size=1"),
        ({"num_shards": 2, "shard_id": 0}, "saved with num_shards=1 but this loader has"),
        ({"seed": 3}, "saved with seed=0 but this loader has seed=3"),
    ],
)
def test_a_state_refuses_a_loader_it_does_not_fit(good, change, message):
    state = make(good).state_dict()
    with pytest.raises(ValueError, match=re.escape(message)):
        make(good, **change).load_state_dict(state)


def test_a_state_refuses_another_index_and_an_older_layout(good):
    state = make(good).state_dict()
    other = make(good[:3] + [(good[3][0], 1)])  # same files and sizes, one label changed
    with pytest.raises(ValueError, match="saved with index=.* its position would point"):
        other.load_state_dict(state)
    older = {"epoch": 0, "step": 1, "seed": 0}
    with pytest.raises(ValueError, match="the state has no 'batch_size' .an older layout"):
        make(good).load_state_dict(older)


def test_load_state_dict_during_a_loop_ends_that_loop(good):
    loader = make(good, batch_size=1)
    expected = run(make(good, batch_size=1), 4)
    it = iter(loader)
    next(it)
    state = loader.state_dict()  # epoch 0, step 1
    next(it)
    loader.load_state_dict(state)
    with pytest.raises(RuntimeError, match=r"ended by a later iter\(\) or load_state_dict\(\)"):
        next(it)
    rest = [index for _, index in run(loader, 3)]
    assert rest == [index for _, index in expected[1:]]


def test_a_second_iterator_ends_the_first_and_continues_the_epoch(good):
    loader = make(good, batch_size=1)
    expected = [index for _, index in run(make(good, batch_size=1), 4)]
    first = iter(loader)
    got = [next(first)[2].tolist()]
    second = iter(loader)
    got.append(next(second)[2].tolist())
    with pytest.raises(RuntimeError, match="ended by a later iter"):
        next(first)
    got += [index.tolist() for _, _, index in second]
    assert got == expected and (loader.epoch, loader.step) == (1, 0)
    assert len(list(loader)) == len(loader)  # the next epoch, whole
