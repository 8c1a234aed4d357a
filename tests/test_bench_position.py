"""The position bench: decode cost of a window at frame 0 vs at the end of the file."""

from __future__ import annotations

import pytest
from videos import ramp_video, write_video

from videomix_dali.tools.bench.position import run_position_bench


def test_position_bench_times_first_and_last_windows(tmp_path):
    videos = [
        write_video(
            tmp_path / "data" / f"c{i % 2}" / f"v{i}.webm", ramp_video(12, 32, 48, i), gop=4
        )
        for i in range(3)
    ]
    write_video(tmp_path / "data" / "short.webm", ramp_video(5, 32, 48, 9))  # < 2 spans: left out
    report = run_position_bench(
        videos + [tmp_path / "data" / "short.webm"], tmp_path / "work",
        num_frames=2, stride=2, crop=32, rounds=1,
    )  # fmt: skip
    assert report["videos"] == 3 and report["span_frames"] == 3 and report["uncut"] == 0
    assert report["ms_per_clip_first"] > 0 and report["ms_per_clip_last"] > 0
    ratio = report["ms_per_clip_last"] / report["ms_per_clip_first"]
    assert report["last_over_first"] == pytest.approx(ratio, rel=0.01)
    lines = (tmp_path / "work" / "last.txt").read_text().splitlines()
    assert lines == [f"c{i % 2}/v{i}.webm {i % 2} 9 12" for i in range(3)]
    # the last window starts 1 frame after the keyframe at 8: so does the matched one, after 0
    lines = (tmp_path / "work" / "matched.txt").read_text().splitlines()
    assert lines == [f"c{i % 2}/v{i}.webm {i % 2} 1 4" for i in range(3)]
    assert report["last_over_matched"] > 0


def test_position_bench_needs_two_long_videos(tmp_path):
    video = write_video(tmp_path / "v.webm", ramp_video(12, 32, 48, 0))
    with pytest.raises(ValueError, match="need at least 2 videos of >= 10 frames, got 1"):
        run_position_bench([video], tmp_path / "work", num_frames=2, stride=4, rounds=1)


def test_bench_cli_positions_on_a_folder(tmp_path, capsys):
    import json

    from videomix_dali.tools.bench.cli import main

    for i in range(2):
        write_video(tmp_path / "data" / f"c{i}" / "v.webm", ramp_video(12, 32, 48, i), gop=4)
    out = tmp_path / "positions.json"
    main(["--positions", "--data", str(tmp_path / "data"), "--frames", "2", "--stride", "2",
          "--crop", "32", "--rounds", "1", "--json", str(out)])  # fmt: skip
    report = json.loads(out.read_text())
    (result,) = report["results"].values()
    assert result["videos"] == 2 and result["span_frames"] == 3
    assert "window at frame 0" in capsys.readouterr().out
