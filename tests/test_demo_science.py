"""The demo as an experiment: --seeds aggregation and verdicts, a 2-seed compare end to end, the
ablation's chart against its JSON, --init-from into another class count."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

import train.__main__ as cli
from train.checkpoint import init_from, save_checkpoint
from train.experiment import format_table, paired_difference, summarize, verdict
from train.models import build_model
from train.run import TrainConfig, build_run
from train.trainer import Trainer
from videomix_dali.tools.demo import make_demo_dataset

torch.set_num_threads(2)

RUNS = {
    "none": [{"seed": 0, "t": 20.0}, {"seed": 1, "t": 30.0}, {"seed": 2, "t": 40.0}],
    "spatial": [{"seed": 0, "t": 25.0}, {"seed": 1, "t": 30.0}, {"seed": 2, "t": 50.0}],
    "mixup": [{"seed": 0, "t": 30.0}, {"seed": 1, "t": 42.0}, {"seed": 2, "t": 54.0}],
}
TINY = ["--recipe", "demo", "--model", "slowonly18", "--width", "4", "--num-frames", "4"]
TINY += ["--stride", "2", "--crop-size", "32", "--batch-size", "4", "--epochs", "1"]
TINY += ["--device", "cpu", "--no-progress"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    """4 classes x 2 train videos, 1 per class per test split, 8 frames of 48 x 64."""
    return make_demo_dataset(
        tmp_path_factory.mktemp("demo") / "d",
        videos_per_class=2,
        test_per_class=1,
        num_frames=8,
        size=(48, 64),
        progress=False,
    )


def data_args(demo: Path) -> list[str]:
    return ["--data", str(demo / "train"), "--val"] + [
        str(demo / s) for s in ("test_biased", "test_debiased")
    ]


def test_seeds_mean_std_and_verdicts_from_hand_made_results():
    s = summarize(RUNS, ["t"])
    assert s["none"]["t"] == {"mean": 30.0, "std": 10.0, "values": [20.0, 30.0, 40.0]}
    assert s["spatial"]["t"]["mean"] == 35.0
    assert s["spatial"]["t"]["std"] == math.sqrt(175.0)  # (100 + 25 + 225) / 2
    assert paired_difference(RUNS, "spatial", "none", "t") == (5.0, 5.0, 3)  # 5, 0, 10
    assert verdict(RUNS, "spatial", "none", "t") == (
        "spatial − none on t: +5.0 ± 5.0 points over 3 seeds "
        "(the interval contains 0: not separated from seed noise)"
    )
    assert verdict(RUNS, "mixup", "none", "t") == (  # 10, 12, 14
        "mixup − none on t: +12.0 ± 2.0 points over 3 seeds (the interval excludes 0: mixup higher)"
    )
    # differences 8.33, 4.17, 0 (k / 24 videos): mean == std, not split by rounding
    tie = {
        "none": [{"seed": i, "t": 100 * (k / 24)} for i, k in enumerate((18, 19, 20))],
        "spatial": [{"seed": i, "t": 100 * (20 / 24)} for i in range(3)],
    }
    assert verdict(tie, "spatial", "none", "t") == (
        "spatial − none on t: +4.2 ± 4.2 points over 3 seeds "
        "(the interval contains 0: not separated from seed noise)"
    )
    one = {"none": RUNS["none"][:1], "spatial": RUNS["spatial"][:1]}
    assert summarize(one, ["t"])["none"]["t"]["std"] is None
    assert verdict(one, "spatial", "none", "t") == (
        "spatial − none on t: +5.0 points over 1 seed (one seed: no interval, no verdict)"
    )
    assert format_table(summarize(RUNS, ["t"]), ["t"], 3) == (
        "| top-1 (%), mean ± std over 3 seeds | none | spatial | mixup |\n"
        "|---|---|---|---|\n"
        "| t | 30.0 ± 10.0 | 35.0 ± 13.2 | 42.0 ± 12.0 |"
    )


def test_two_seed_one_epoch_compare_end_to_end_then_reused(demo, tmp_path, capsys):
    argv = TINY + data_args(demo) + ["--compare", "none,spatial", "--seeds", "2"]
    assert cli.main(argv + ["--out", str(tmp_path)]) == 0
    saved = json.loads((tmp_path / "compare.json").read_text())
    assert saved["seeds"] == [0, 1] and saved["splits"] == ["test_biased", "test_debiased"]
    for mode in ("none", "spatial"):
        assert [r["seed"] for r in saved["runs"][mode]] == [0, 1]
        for split in saved["splits"]:
            values = [r[split] for r in saved["runs"][mode]]
            assert all(v in (0.0, 25.0, 50.0, 75.0, 100.0) for v in values)  # 4 videos a split
            assert saved["summary"][mode][split]["values"] == values
            assert saved["summary"][mode][split]["mean"] == sum(values) / 2
        assert (tmp_path / mode / "seed1" / "checkpoint.pt").is_file()
    out = capsys.readouterr().out
    assert "| top-1 (%), mean ± std over 2 seeds | none | spatial |" in out
    assert "spatial − none on test_debiased: " in out and "over 2 seeds" in out
    # the same command again reuses the finished runs, with the same numbers
    assert cli.main(argv + ["--out", str(tmp_path)]) == 0
    again = json.loads((tmp_path / "compare.json").read_text())
    assert all(r["reused"] for rows in again["runs"].values() for r in rows)
    assert "4 runs (4 reused) in " in capsys.readouterr().out
    assert again["summary"] == saved["summary"]


class _Top1:
    def __init__(self, top1: float) -> None:
        self.top1 = top1


def test_ablation_writes_a_chart_that_agrees_with_its_json(demo, tmp_path, monkeypatch):
    """Training is replaced by made-up scores; what is checked is what is written."""

    def fake_run(cfg: TrainConfig, out, **kw):
        base = 10.0 * cli.ABLATION_MODES.index(cfg.mix) + 100.0 * bool(cfg.randaugment) + cfg.seed
        return {"test_biased": _Top1(base + 1.0), "test_debiased": _Top1(base / 2)}

    drawn = []
    plot = cli.plot_summary
    monkeypatch.setattr(cli, "run", fake_run)
    monkeypatch.setattr(cli, "plot_summary", lambda *a, **k: drawn.extend(plot(*a, **k)))
    cli.main(TINY + data_args(demo) + ["--ablation", "--out", str(tmp_path)])
    saved = json.loads((tmp_path / "ablation.json").read_text())
    assert saved["modes"] == list(cli.ABLATION_MODES) and saved["seeds"] == [0, 1, 2]
    assert (tmp_path / "ablation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(drawn) == len(cli.ABLATION_MODES) * 2 == 9 * 2  # 7 modes, 2 augment rows
    for mode, split, height, err in drawn:
        stat = saved["summary"][mode][split]
        assert height == pytest.approx(stat["mean"], abs=1e-9)
        assert err == pytest.approx(stat["std"], abs=1e-9)
    assert saved["summary"]["spatial"]["test_biased"] == {
        "mean": 12.0, "std": 1.0, "values": [11.0, 12.0, 13.0]
    }  # fmt: skip


def test_init_from_a_demo_checkpoint_into_another_class_count(demo, tmp_path, capsys):
    cfg = TrainConfig(
        recipe="demo", data=str(demo / "train"), model="slowonly18", width=4, num_frames=4,
        stride=2, crop_size=32, batch_size=4, epochs=1, device="cpu",
    )  # fmt: skip
    model, loader, _, device, _ = build_run(cfg, progress=False)
    ckpt = tmp_path / "demo.pt"
    trainer = Trainer(model, loader, cfg.schedule(), device=device, progress=False)
    save_checkpoint(ckpt, trainer, {"config": vars(cfg), "classes": list(loader.classes)})
    saved = model.state_dict()

    torch.manual_seed(1)
    three = build_model("slowonly18", 3, width=4)
    fresh_head = three.fc.weight.detach().clone()
    report = init_from(three, ckpt)
    assert report.skipped == {
        "fc.weight": "shape (4, 32) in the checkpoint, (3, 32) in the model: re-initialised",
        "fc.bias": "shape (4,) in the checkpoint, (3,) in the model: re-initialised",
    }
    assert report.reinitialised() == ["fc.weight", "fc.bias"] and report.missing == []
    assert sorted(report.loaded) == sorted(k for k in saved if not k.startswith("fc."))
    for name, tensor in three.state_dict().items():
        if not name.startswith("fc."):
            torch.testing.assert_close(tensor, saved[name], rtol=0, atol=0)
    torch.testing.assert_close(three.fc.weight, fresh_head, rtol=0, atol=0)

    # through the run config (python -m train --init-from): same class count, all loaded
    model2, *_ = build_run(TrainConfig(**{**vars(cfg), "init_from": str(ckpt)}), progress=False)
    assert f"--init-from {ckpt}:\nloaded {len(saved)} tensors\n" in capsys.readouterr().out
    torch.testing.assert_close(model2.state_dict(), saved, rtol=0, atol=0)
