"""The main job streams real batches and reports its rate; bad input exits with a clear message."""

from __future__ import annotations

import re

import pytest
from videos import ramp_video, write_video

from videomix_dali.tools.cli import main


def test_stream_reports_every_clip_of_each_epoch(tmp_path, capsys):
    for c in range(2):
        for v in range(5):
            write_video(tmp_path / f"class{c}" / f"{v}.webm", ramp_video(20, 40, 48, v))
    main(["stream", "--data", str(tmp_path), "--device", "cpu", "--epochs", "2",
          "--batch-size", "4"])  # fmt: skip
    out = capsys.readouterr().out
    assert "10 videos, 2 classes, 2 batches per epoch on cpu" in out
    rates = re.findall(
        r"epoch (\d): 8 clips in [\d.]+ s = ([\d.]+) clips/s \(batch \(4, 3, 8, 112, 112\)", out
    )
    assert [epoch for epoch, _ in rates] == ["0", "1"]
    assert all(float(rate) > 0 for _, rate in rates)


def test_stream_on_a_missing_folder_names_it(tmp_path):
    with pytest.raises(SystemExit, match=str(tmp_path / "nowhere")):
        main(["stream", "--data", str(tmp_path / "nowhere"), "--device", "cpu"])


def test_stream_root_roots_an_index_file_elsewhere(tmp_path, capsys):
    videos = tmp_path / "videos"
    for c in range(2):
        for v in range(2):
            write_video(videos / f"c{c}" / f"y{v}_000000_000001.webm", ramp_video(12, 32, 32, v))
    csv_path = tmp_path / "lists" / "train.csv"
    csv_path.parent.mkdir()
    rows = "".join(f"c{c},y{v},0,1\n" for c in range(2) for v in range(2))
    csv_path.write_text("label,youtube_id,time_start,time_end\n" + rows)
    argv = ["stream", "--data", str(csv_path), "--device", "cpu", "--epochs", "1",
            "--batch-size", "2"]  # fmt: skip
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert str(stop.value.code).endswith(
        f"pass root='{videos}' (on the command line: --root {videos})"
    )
    main([*argv, "--root", str(videos)])
    assert "4 videos, 2 classes, 2 batches per epoch on cpu" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="--root needs --data"):
        main(["stream", "--root", str(videos)])


def test_show_writes_a_grid_of_the_mixed_batch(tmp_path, capsys):
    for c in range(2):
        for v in range(2):
            write_video(tmp_path / "data" / f"class{c}" / f"{v}.webm", ramp_video(20, 40, 48, v))
    out = tmp_path / "grid.png"
    main(["show", "--data", str(tmp_path / "data"), "--mode", "temporal", "--out", str(out)])
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "MixParams(mode='temporal', shape=(4, 3, 8, 112, 112)" in capsys.readouterr().out
