"""Bad arguments to the pipeline builder and the command lines name the argument."""

from __future__ import annotations

import pytest
from videos import ramp_video, write_video

from videomix_dali.graph.build import build_pipeline
from videomix_dali.graph.plan import GraphPlan
from videomix_dali.tools.cli import main


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    for c in range(2):
        for v in range(2):
            write_video(root / f"c{c}" / f"{v}.webm", ramp_video(12, 32, 32, v))
    return root


def test_pipeline_builder_and_plan_reject_bad_arguments():
    settings = dict(batch_size=1, num_frames=1, crop_size=8, mean=[0] * 3, std=[1] * 3)
    with pytest.raises(ValueError, match="dtype='int8'"):
        build_pipeline(lambda: None, GraphPlan("cpu"), dtype="int8", **settings)
    with pytest.raises(ValueError, match="device='tpu'"):
        GraphPlan("tpu")
    with pytest.raises(ValueError, match="the CPU graph's"):
        GraphPlan("gpu", host_decoded=True)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["stream", "--batch-size", "0"], "argument --batch-size: must be >= 1, got 0"),
        (["stream", "--epochs", "-1"], "argument --epochs: must be >= 1, got -1"),
        (["stream", "--recipe", "nope"], "recipe='nope' is unknown"),
        (["show", "--mode", "wrong"], "mode must be one of"),
        (["show", "--alpha", "0"], "alpha must be > 0"),
        (["bench", "--duration", "-1"], "argument --duration: must be a number of seconds"),
        (["bench", "--batch-size", "0"], "argument --batch-size: must be >= 1, got 0"),
        (["bench", "--mix", "nope"], "mix='nope' must be one of"),
    ],
)
def test_command_lines_reject_bad_arguments(tiny, capsys, argv, message):
    with pytest.raises(SystemExit) as stop:
        main([*argv, "--data", str(tiny)])
    assert message in f"{stop.value.code}" + capsys.readouterr().err
