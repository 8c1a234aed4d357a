"""One file never stops a dataset: a probe failure of any kind is a skip with its reason, and
files that FFmpeg and DALI read (odd metadata, odd EBML) are read."""

from __future__ import annotations

import dataclasses

import av
import numpy as np
from videos import ramp_video, write_video

from videomix_dali import VideoLoader
from videomix_dali.source import probe_cache as probe_cache_module
from videomix_dali.source.probe import probe_video


def load(root, **kw):
    return VideoLoader(
        root, recipe="demo", device="cpu", train=False, batch_size=2, num_frames=4, stride=2,
        crop_size=32, progress=False, **kw,
    )  # fmt: skip


def test_latin1_metadata_is_read_not_fatal(tmp_path):
    path = tmp_path / "c0" / "latin1.webm"
    path.parent.mkdir(parents=True)
    with av.open(str(path), "w") as container:
        container.metadata["title"] = "XXXXXXXX"
        stream = container.add_stream("libvpx-vp9", rate=25)
        stream.height, stream.width, stream.pix_fmt = 48, 64, "yuv420p"
        for frame in ramp_video(12, 48, 64, 0):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    raw = path.read_bytes()
    assert raw.count(b"XXXXXXXX") == 1
    path.write_bytes(raw.replace(b"XXXXXXXX", "Café déjà".encode("latin-1")[:8]))  # not UTF-8
    write_video(tmp_path / "c1" / "plain.webm", ramp_video(12, 48, 64, 1))
    loader = load(tmp_path)
    assert loader.skipped == [] and len(loader.entries) == 2
    ((video, _),) = list(loader)
    assert video.shape == (2, 3, 4, 32, 32)


def test_an_ebml_header_of_unknown_size_is_decoded_whole(tmp_path):
    path = write_video(tmp_path / "c0" / "unknown.webm", ramp_video(12, 48, 64, 0))
    raw = bytearray(path.read_bytes())
    assert raw[:4] == bytes.fromhex("1a45dfa3") and raw[4] & 0x80  # a one-byte size
    raw[4] = 0xFF  # the one-byte "unknown" size
    path.write_bytes(bytes(raw))
    write_video(tmp_path / "c1" / "plain.webm", ramp_video(12, 48, 64, 1))
    info = probe_video(path)
    assert info.num_frames == 12 and info.uncut_reason == "an EBML header of unknown size"
    loader = load(tmp_path)
    assert loader.skipped == [] and [p.name for p, _ in loader.uncut] == ["unknown.webm"]
    ((video, _),) = list(loader)
    assert np.isfinite(video.numpy()).all()


def test_any_probe_failure_is_a_skip_with_its_reason(tmp_path, monkeypatch):
    for i in range(3):
        write_video(tmp_path / f"c{i % 2}" / f"v{i}.webm", ramp_video(12, 48, 64, i))
    real = probe_cache_module.probe_video

    def probe(path):
        if path.name == "v1.webm":
            raise TypeError("an unforeseen bug")
        return real(path)

    monkeypatch.setattr(probe_cache_module, "probe_video", probe)
    loader = load(tmp_path)
    assert [(p.name, r) for p, r in loader.skipped] == [
        ("v1.webm", "cannot be probed (TypeError: an unforeseen bug)")
    ]
    assert sorted(e.path.name for e in loader.entries) == ["v0.webm", "v2.webm"]


def test_an_unknown_header_size_declares_no_file_size(tmp_path):
    from videomix_dali.source.cuts import declared_size

    path = tmp_path / "x.webm"
    unknown = b"\x01\xff\xff\xff\xff\xff\xff\xff"  # an 8-byte "unknown" size
    path.write_bytes(bytes.fromhex("1a45dfa3") + unknown + b"\x42\x86\x81\x01" * 4)
    assert declared_size(path) is None


def test_a_probe_that_counts_frames_the_file_lacks_costs_the_file_never_black_frames(
    tmp_path, monkeypatch
):
    for i in range(3):  # VP9: DALI's own decoder
        write_video(tmp_path / f"c{i % 2}" / f"v{i}.webm", ramp_video(20, 48, 64, i))
    real = probe_cache_module.probe_video

    def probe(path):  # a cache entry that is well-formed but wrong
        info = real(path)
        return dataclasses.replace(info, num_frames=40) if path.name == "v1.webm" else info

    monkeypatch.setattr(probe_cache_module, "probe_video", probe)
    loader = load(tmp_path, return_index=True)  # v1's centred window: frames 16..22 of "40"
    batches = list(loader)
    ((path, reason),) = loader.skipped
    assert path.name == "v1.webm" and "out-of-bounds frame index 20" in reason
    delivered = [loader.entries[i].path.name for _, _, index in batches for i in index.tolist()]
    assert sorted(delivered) == ["v0.webm", "v2.webm"]  # evaluation: its view is dropped
    for video, _, _ in batches:  # no frame of a delivered clip is one flat colour
        assert (video.transpose(1, 2).flatten(2).std(dim=2) > 0.05).all()


def test_laced_blocks_count_every_frame_they_hold(tmp_path):
    from videomix_dali.source.cuts import CutIndex, block_counts

    def element(eid: bytes, payload: bytes) -> bytes:
        return eid + bytes([0x80 | len(payload)]) + payload  # sizes under 127 bytes here

    plain = element(b"\xa3", b"\x81\x00\x00\x80" + b"key")  # track 1, keyframe, no lacing
    xiph = b"\x81\x00\x01\x02" + b"\x02" + b"\x03\x03" + b"abc" + b"def" + b"ghij"  # 3 frames
    ebml = b"\x81\x00\x02\x06" + b"\x01" + b"\x83" + b"xyz" + b"uvw"  # EBML lacing, 2 frames
    cluster = element(b"\x1f\x43\xb6\x75", b"\xe7\x81\x00" + plain + element(b"\xa3", xiph) + (
        element(b"\xa3", ebml)
    ))  # fmt: skip
    path = tmp_path / "laced.mkv"
    path.write_bytes(b"\x00" * 16 + cluster)
    cuts = CutIndex(((0, 0),) * 3, (16,), (0,), 16 + len(cluster))
    assert block_counts(path, cuts) == {1: 6}
