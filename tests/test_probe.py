"""Probing counts frames without decoding, and its cache follows changes to the file."""

from __future__ import annotations

import os

from videos import ramp_video, write_video

from videomix_dali.probe import ProbeError, VideoInfo, probe_videos


def test_probe_counts_frames_and_refreshes_when_the_file_changes(tmp_path):
    path = write_video(tmp_path / "a.webm", ramp_video(12, 32, 48, 0))
    missing = tmp_path / "gone.webm"
    info, error = probe_videos([path, missing], progress=False)
    assert info == VideoInfo(num_frames=12, height=32, width=48, codec="vp9")
    assert isinstance(error, ProbeError) and error.path == missing
    assert "No such file" in error.reason or "cannot stat" in error.reason
    write_video(path, ramp_video(7, 16, 32, 0))
    os.utime(path, ns=(1, 1))  # a different mtime, whatever the clock resolution
    (info,) = probe_videos([path], progress=False)
    assert info == VideoInfo(num_frames=7, height=16, width=32, codec="vp9")
