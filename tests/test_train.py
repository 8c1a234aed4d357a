"""The training app (train/): model sizes, one SGD step, exact resume, multi-view evaluation,
2-process DDP on the CPU pipeline, ST-CAM."""

from __future__ import annotations

import csv
import math
import os
import socket
from pathlib import Path

import pytest
import torch
from torch import nn

from train import distributed as dist_utils
from train.cam import compute_cam, render_cam_png, upsample_cam
from train.checkpoint import load_checkpoint, save_checkpoint
from train.evaluate import evaluate, write_predictions
from train.models import (
    ResNet3d,
    SlowFast,
    build_model,
    count_flops,
    count_params,
    loader_frames,
)
from train.run import TrainConfig, build_run
from train.trainer import Schedule, Trainer, soft_cross_entropy
from videomix_dali.mix import VideoMix
from videomix_dali.recipes import load_recipe
from videomix_dali.tools.demo import make_demo_dataset

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    """4 classes x 3 train videos (+ 2 per class per test split), 12 frames of 48 x 64."""
    return make_demo_dataset(
        tmp_path_factory.mktemp("demo") / "d",
        videos_per_class=3,
        test_per_class=2,
        num_frames=12,
        size=(48, 64),
        progress=False,
    )


def small_config(demo: Path, **kw) -> TrainConfig:
    base = dict(
        recipe="demo", data=str(demo / "train"), model="slowonly18", width=4, num_frames=4,
        stride=2, crop_size=32, batch_size=4, epochs=2, device="cpu", mix="spatial", dropout=0.5,
    )  # fmt: skip
    return TrainConfig(**{**base, **kw})


# ---------------------------------------------------------------------------------------------
# models


def test_tiny_slowonly18_counts_match_hand_computation():
    """SlowOnly-18, width 4, 3 classes, input 3 x 2 x 16 x 16, every layer counted by hand."""
    m = ResNet3d(18, 3, width=4)
    bn = 2  # weight + bias per channel
    params = (
        3 * 4 * 7 * 7 + bn * 4  # stem 1x7x7
        + 2 * (2 * (4 * 4 * 9 + bn * 4))  # res2: 2 blocks x 2 convs 1x3x3, 4 -> 4
        + (4 * 8 * 9 + bn * 8 + 8 * 8 * 9 + bn * 8 + 4 * 8 + bn * 8)  # res3 block 1 (+shortcut)
        + 2 * (8 * 8 * 9 + bn * 8)  # res3 block 2
        + (8 * 16 * 27 + bn * 16 + 16 * 16 * 9 + bn * 16 + 8 * 16 + bn * 16)  # res4: 3x3x3 first
        + (16 * 16 * 27 + bn * 16 + 16 * 16 * 9 + bn * 16)
        + (16 * 32 * 27 + bn * 32 + 32 * 32 * 9 + bn * 32 + 16 * 32 + bn * 32)  # res5
        + (32 * 32 * 27 + bn * 32 + 32 * 32 * 9 + bn * 32)
        + 32 * 3 + 3  # fc
    )  # fmt: skip
    assert params == 79431
    assert count_params(m) == params
    # multiply-adds = outputs per layer x (C_in x kernel volume); T stays 2 everywhere
    flops = (
        (4 * 2 * 8 * 8) * (3 * 49)  # stem: 8 x 8 after stride 2
        + 4 * (4 * 2 * 4 * 4) * (4 * 9)  # res2 at 4 x 4 (after the max-pool)
        + (8 * 2 * 2 * 2) * (4 * 9 + 8 * 9 + 4 + 8 * 9 + 8 * 9)  # res3 at 2 x 2
        + (16 * 2 * 1 * 1) * (8 * 27 + 16 * 9 + 8 + 16 * 27 + 16 * 9)  # res4 at 1 x 1
        + (32 * 2 * 1 * 1) * (16 * 27 + 32 * 9 + 16 + 32 * 27 + 32 * 9)  # res5 at 1 x 1
        + 32 * 3  # fc
    )  # fmt: skip
    assert flops == 261216
    assert count_flops(m, (3, 2, 16, 16)) == flops
    assert m(torch.zeros(5, 3, 2, 16, 16)).shape == (5, 3)
    assert m.features(torch.zeros(5, 3, 2, 16, 16)).shape == (5, 32, 2, 1, 1)


def test_paper_models_parameter_counts_and_slowfast_shapes():
    """SlowOnly-50 32.45 M (SlowFast paper: 32.5 M), SlowFast-50 8x8 34.48 M; 400 classes."""
    so50 = build_model("slowonly50", 400)
    assert count_params(so50) == 32_454_096
    assert count_params(build_model("slowfast50", 400)) == 34_480_216
    assert count_params(build_model("slowonly34", 400)) == 39_774_416
    # SlowOnly-50 (4 x 16) per view at 224 x 224; x (256/224)^2 = 27.3 G (SlowFast paper: 27.3)
    flops = count_flops(so50, (3, 4, 224, 224))
    assert flops == 20_870_823_936
    assert round(flops * (256 / 224) ** 2 / 1e9, 1) == 27.3
    # SlowFast: the loader gives the fast clip (alpha x T frames, tau / alpha stride)
    sf = SlowFast(50, 7, width=16)
    assert loader_frames(sf, 8, 8) == (32, 2)
    assert loader_frames(so50, 4, 16) == (4, 16)
    x = torch.randn(2, 3, 16, 32, 32)
    assert sf(x).shape == (2, 7)
    sf.eval()
    cam = sf.cam(x)
    assert cam.shape == (2, 7, 4, 1, 1)  # slow grid: T = 16 / 4
    torch.testing.assert_close(cam.mean(dim=(2, 3, 4)) + sf.fc.bias, sf(x), rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------------------------------------
# training


class FixedLoader:
    """Stands in for a VideoLoader where the test feeds batches itself."""

    num_classes = 4
    recipe = load_recipe("demo").replace(batch_size=8)
    step = 0

    def __len__(self) -> int:
        return 10


def test_soft_cross_entropy_and_one_step_reduce_the_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    logits = torch.randn(3, 4)
    y = torch.tensor([2, 0, 3])
    expected = torch.nn.functional.cross_entropy(logits, y)
    torch.testing.assert_close(soft_cross_entropy(logits, y), expected)  # int = one-hot
    soft = torch.tensor([[0.0, 0.0, 0.7, 0.3], [1.0, 0, 0, 0], [0, 0.5, 0, 0.5]])
    by_hand = -(soft * logits.log_softmax(1)).sum(1).mean()
    torch.testing.assert_close(soft_cross_entropy(logits, soft), by_hand)

    model = ResNet3d(18, 4, width=4, dropout=0.0)
    x = torch.randn(8, 3, 4, 32, 32)
    x_mix, y_soft = VideoMix("spatial", num_classes=4, seed=0)(x, torch.arange(8) % 4)
    assert y_soft.shape == (8, 4)
    trainer = Trainer(model, FixedLoader(), Schedule("cosine", 0.8, 10), device=torch.device("cpu"))
    assert trainer.base_lr == pytest.approx(0.1)  # 0.8 x batch 8 / 64
    model.train()
    before = float(soft_cross_entropy(model(x_mix), y_soft).detach())
    first = trainer.step(x_mix, y_soft)
    assert first == pytest.approx(before, rel=1e-5)  # BN in train mode: same batch, same loss
    after = float(soft_cross_entropy(model(x_mix), y_soft).detach())
    assert after < before - 1e-3


def test_schedules_follow_the_paper():
    cos = Schedule("cosine", 0.1, 250, warmup_epochs=34, warmup_start=0.1)
    assert cos.scaled_lr(64) == pytest.approx(0.1) and cos.scaled_lr(256) == pytest.approx(0.4)
    assert cos.factor(0) == pytest.approx(0.1)
    assert cos.factor(34) == pytest.approx(0.5 * (1 + math.cos(math.pi * 34 / 250)))
    assert cos.factor(125) == pytest.approx(0.5) and cos.factor(250) == pytest.approx(0.0)
    step = Schedule("step", 0.01, 40, milestones=(26, 33))
    assert [step.factor(e) for e in (0, 25.9, 26, 33, 39.9)] == pytest.approx(
        [1, 1, 0.1, 0.01, 0.01]
    )


def test_resume_reproduces_the_next_step_loss_exactly(demo, tmp_path):
    cfg = small_config(demo)
    model, loader, _, device, _ = build_run(cfg, progress=False)
    assert len(loader) == 3  # 12 videos, batch 4
    a = Trainer(model, loader, cfg.schedule(), device=device, progress=False)
    a.train_epoch()  # epoch 1
    a.train_epoch(max_steps=1)  # stopped mid-epoch 2
    save_checkpoint(tmp_path / "ckpt.pt", a, {"config": {"model": cfg.model}})
    losses_a = [a.step(v, t) for v, t in _take(loader, 2)]  # rest of epoch 2

    model_b, loader_b, _, _, _ = build_run(cfg, progress=False)
    b = Trainer(model_b, loader_b, cfg.schedule(), device=device, progress=False)
    state = load_checkpoint(tmp_path / "ckpt.pt")  # weights_only=True
    assert (state["loader"]["epoch"], state["loader"]["step"], state["loader"]["seed"]) == (1, 1, 0)
    b.load_state_dict(state)
    losses_b = [b.step(v, t) for v, t in _take(loader_b, 2)]
    assert losses_b == losses_a  # bit for bit: same batches, mixes, dropout masks, lr
    for k, v in a.model.state_dict().items():
        assert torch.equal(v, b.model.state_dict()[k]), k


def _take(loader, n):
    it = iter(loader)
    return [next(it) for _ in range(n)]


# ---------------------------------------------------------------------------------------------
# evaluation


class Entry:
    def __init__(self, path: str, label: int) -> None:
        self.path, self.label = path, label


class ViewLoader:
    """Per-view 'videos' that are already logits (the model is the identity), video-major."""

    train = False
    return_index = True
    step = 0
    num_classes = 3
    recipe = load_recipe("demo").replace(test_clips=3, test_crops=1)

    def __init__(self, probs: list[list[float]], index: list[int], labels: list[int]) -> None:
        self.logits = torch.tensor(probs).clamp(min=1e-9).log()
        self.index = torch.tensor(index)
        self.entries = [Entry(f"v{i}.webm", lab) for i, lab in enumerate(labels)]

    def __len__(self) -> int:
        return 3

    def __iter__(self):
        for s in range(0, len(self.index), 4):  # batches of 4 straddle videos
            idx = self.index[s : s + 4]
            yield self.logits[s : s + 4], torch.zeros_like(idx), idx


def test_multiview_averages_softmax_per_video(tmp_path):
    views = [
        [0.5, 0.3, 0.2], [0.5, 0.3, 0.2], [0.0, 0.9, 0.1],  # video 0 (label 1): vote says 0,
        [0.6, 0.1, 0.3], [0.1, 0.3, 0.6], [0.35, 0.2, 0.45],  # mean [.33 .5 .17] says 1
        [0.2, 0.7, 0.1], [0.45, 0.1, 0.45], [0.33, 0.4, 0.27],  # video 2 (label 0): -> 1
    ]  # fmt: skip
    loader = ViewLoader(views, [0, 0, 0, 1, 1, 1, 2, 2, 2], labels=[1, 2, 0])
    res = evaluate(nn.Identity(), loader, torch.device("cpu"), progress=False)
    expected = torch.tensor(views).reshape(3, 3, 3).mean(1)
    torch.testing.assert_close(res.probs, expected, atol=1e-6, rtol=1e-5)
    assert res.views.tolist() == [3, 3, 3]
    assert res.probs.argmax(1).tolist() == [1, 2, 1]
    assert res.top1 == pytest.approx(200 / 3) and res.top5 == 100.0
    write_predictions(tmp_path / "p.csv", res, loader.entries, ["a", "b", "c"])
    rows = list(csv.DictReader((tmp_path / "p.csv").open()))
    assert [(r["path"], r["label_name"], r["predicted_name"], r["top5"]) for r in rows] == [
        ("v0.webm", "b", "b", "1 0 2"),
        ("v1.webm", "c", "c", "2 0 1"),
        ("v2.webm", "a", "b", "1 0 2"),
    ]
    assert float(rows[2]["p_true"]) == pytest.approx((0.2 + 0.45 + 0.33) / 3, abs=1e-6)


# ---------------------------------------------------------------------------------------------
# DDP: 2 processes, gloo, one CPU pipeline each


def _ddp_worker(rank: int, world: int, port: int, demo: str, out: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world)
    )
    torch.set_num_threads(1)
    assert dist_utils.setup("cpu")
    cfg = small_config(Path(demo), batch_size=3, num_threads=1, epochs=1)
    model, loader, _, device, _ = build_run(cfg, progress=False)
    trainer = Trainer(model, loader, cfg.schedule(), device=device, progress=False)
    assert isinstance(trainer.net, nn.parallel.DistributedDataParallel)
    loader.return_index = True
    seen = []
    for video, target, index in loader:
        seen += index.tolist()
        trainer.step(video, target)
    dist_utils.average_buffers(trainer.model)
    from train.evaluate import make_eval_loader

    test = make_eval_loader(str(Path(demo) / "test_debiased"), vars(cfg), model, device="cpu")
    res = evaluate(model, test, device, progress=False)
    torch.save(
        {"seen": seen, "state": model.state_dict(), "probs": res.probs, "views": res.views},
        Path(out) / f"rank{rank}.pt",
    )
    dist_utils.cleanup()


def test_ddp_two_processes_disjoint_shards_identical_weights(demo, tmp_path):
    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_ddp_worker, args=(2, port, str(demo), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2))
    assert len(r0["seen"]) == len(r1["seen"]) == 6  # 12 videos / 2 ranks, 2 batches of 3
    assert set(r0["seen"]).isdisjoint(r1["seen"])
    assert sorted(r0["seen"] + r1["seen"]) == list(range(12))
    assert r0["state"].keys() == r1["state"].keys()
    for k in r0["state"]:
        assert torch.equal(r0["state"][k], r1["state"][k]), k
    # evaluation: each rank saw half the test views; the all-reduced sums cover every video
    assert r0["views"].tolist() == [1] * 8 and torch.equal(r0["probs"], r1["probs"])


# ---------------------------------------------------------------------------------------------
# ST-CAM


def test_st_cam_shape_identity_and_png(demo, tmp_path):
    torch.manual_seed(0)
    model = ResNet3d(18, 4, width=4, last_stride=1)
    clip = torch.randn(3, 4, 32, 32)
    cam = compute_cam(model, clip, [2, 0])
    assert cam.shape == (2, 4, 2, 2)  # T' = T; 32 / 16 with res5's stride reduced to 1
    logits = model(clip[None])[0]
    torch.testing.assert_close(cam.mean(dim=(1, 2, 3)) + model.fc.bias[[2, 0]], logits[[2, 0]])
    up = upsample_cam(cam, (4, 32, 32))
    assert up.shape == (2, 4, 32, 32) and float(up.min()) >= 0 and float(up.amax()) == 1.0
    frames = torch.randint(0, 255, (4, 32, 32, 3), dtype=torch.uint8).numpy()
    png = render_cam_png(frames, up.numpy(), ["c", "a"], tmp_path / "cam.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # the CLI on a checkpoint of a trained (here: untrained) run, two videos mixed
    from train.cam import main as cam_main

    cfg = small_config(demo)
    model, loader, _, device, _ = build_run(cfg, progress=False)
    trainer = Trainer(model, loader, cfg.schedule(), device=device, progress=False)
    ckpt = tmp_path / "ckpt.pt"
    save_checkpoint(ckpt, trainer, {"config": vars(cfg), "classes": list(loader.classes)})
    v1, v2 = sorted((demo / "test_debiased").rglob("*.webm"))[:2]
    argv = ["--checkpoint", str(ckpt), "--video", str(v1), "--video2", str(v2)]
    cam_main(argv + ["--classes", "move_left,move_up", "--out", str(tmp_path / "cams")])
    assert (tmp_path / "cams" / f"stcam_{v1.stem}+{v2.stem}.png").stat().st_size > 1000
    import numpy as np

    saved = np.load(tmp_path / "cams" / f"stcam_{v1.stem}+{v2.stem}.npy")
    assert saved.shape == (2, 4, 2, 2)  # T 4; 32 / 16 with the last stride 1

    # a grid: two videos x two checkpoints, each row the CAM of the video's folder class
    grid = tmp_path / "grid.png"
    cam_main(
        ["--checkpoint", str(ckpt), str(ckpt), "--video", str(v1), str(v2), "--out", str(grid)]
    )
    assert grid.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------------------------------------
# command lines: a bad option is one line naming it, exit status 2, before any work


def _bad_paths(tmp: Path) -> dict[str, Path]:
    (tmp / "empty").mkdir()
    (tmp / "no_videos" / "run").mkdir(parents=True)
    (tmp / "notes.txt").write_text("hello\n")
    return {"missing": tmp / "nowhere", **{p.stem: p for p in tmp.iterdir()}}


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--batch-size", "0"], "argument --batch-size: must be >= 1, got 0"),
        (["--batch-size", "-3"], "argument --batch-size: must be >= 1, got -3"),
        (["--epochs", "0"], "argument --epochs: must be >= 1, got 0"),
        (["--width", "x"], "argument --width: invalid positive_int value: 'x'"),
        (["--num-frames", "2000"], "argument --num-frames: num_frames=2000 must be <= 1024"),
        (["--threads", "0"], "argument --threads: must be >= 1, got 0"),
        (["--seed", "-1"], "argument --seed: must be >= 0, got -1"),
        (["--eval-every", "-1"], "argument --eval-every: must be >= 0, got -1"),
        (["--lr", "0"], "argument --lr: must be > 0, got 0"),
        (["--alpha", "nan"], "argument --alpha: must be a finite number, got nan"),
        (["--prob", "1.5"], "argument --prob: must be in [0, 1], got 1.5"),
        (["--dropout", "-0.1"], "argument --dropout: must be in [0, 1], got -0.1"),
        (["--scene-bias", "2"], "argument --scene-bias: must be in [0, 1], got 2"),
        (["--weight-decay", "-1"], "argument --weight-decay: must be >= 0, got -1"),
        (["--num-videos", "1"], "argument --num-videos: must be >= 2, got 1"),
        (["--randaugment", "2"], "argument --randaugment: must be N,M (e.g. 2,9), got '2'"),
        (["--train-fraction", "0"], "argument --train-fraction: must be in (0, 1], got 0"),
        (["--clips-per-video", "3"],
         "argument --clips-per-video: batch_size=8 must be a multiple of clips_per_video=3"),
        (["--repeat", "frames"], "argument --repeat: invalid choice: 'frames'"),
        (["--stack", "mixup"], "argument --stack: stacks after a first mode: give --mix too"),
        (["--mix", "spatial", "--stack", "mixup,blur"],
         "argument --stack: unknown mode(s) ['blur']; choose from spatial, temporal, "
         "spatiotemporal, perframe, mixup, cutout"),
        (["--randaugment", "2,31"],
         "argument --randaugment: randaugment m=31 must be an integer in [0, 30]"),
        (["--mix", "spatial", "--num-videos", "9"],
         "argument --num-videos: must be <= the batch size (8), got 9"),
        (["--warmup-epochs", "200"],
         "argument --warmup-epochs: must be <= the epochs (100), got 200"),
        (["--seeds", "0", "--compare", "none"], "argument --seeds: must be >= 1, got 0"),
        (["--seeds", "2"], "argument --seeds: needs --compare or --ablation"),
        (["--compare", "none,nope"], "argument --compare: unknown mode(s) ['nope']; choose from"),
        (["--model", "resnet"], "argument --model: invalid choice: 'resnet'"),
        (["--recipe", "kinetics"], "argument --data: required with --recipe kinetics"),
        (["--data", ""], "argument --data: empty path"),
        (["--data", "{missing}"], "argument --data: source {missing} does not exist"),
        (["--data", "{empty}"], "argument --data: {empty}: no class sub-folders"),
        (["--data", "{no_videos}"], "argument --data: {no_videos}: no video in its class sub-"),
        (["--data", "{notes}"], "argument --data: {notes}, line 1: expected 'path label"),
        (["--val", "{empty}"], "argument --val: {empty}: no class sub-folders"),
        (["--init-from", "{missing}"], "argument --init-from: '{missing}' does not exist"),
        (["--out", "{notes}"], "argument --out: '{notes}' is a file; expected a directory"),
        (["--resume", "{missing}"], "argument --resume: no checkpoint at '{missing}'"),
        (["--out", "{empty}", "--resume"],
         "argument --resume: no checkpoint at '{empty}/checkpoint.pt'"),
    ],
)  # fmt: skip
def test_train_cli_names_the_bad_option_and_exits_2(tmp_path, capsys, argv, message):
    from train.__main__ import main

    paths = _bad_paths(tmp_path)
    assert main([a.format(**paths) for a in argv]) == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert last.startswith("python -m train: error: " + message.format(**paths)), err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--epochs", "0"], "argument --epochs: must be >= 1, got 0"),
        (["--batch-size", "-1"], "argument --batch-size: must be >= 1, got -1"),
        (["--num-segments", "0"], "argument --num-segments: must be >= 1, got 0"),
        (["--hidden", "0"], "argument --hidden: must be >= 1, got 0"),
        (["--eval-segments", "-1"], "argument --eval-segments: must be >= 0, got -1"),
        (["--lr", "-1"], "argument --lr: must be > 0, got -1"),
        (["--dropout", "1.5"], "argument --dropout: must be in [0, 1], got 1.5"),
        (["--class-threshold", "2"], "argument --class-threshold: must be in [0, 1], got 2"),
        (["--video-weight", "-1"], "argument --video-weight: must be >= 0, got -1"),
        (["--alpha", "inf"], "argument --alpha: must be a finite number, got inf"),
        (["--seed", "-2"], "argument --seed: must be >= 0, got -2"),
        (["--compare", "none,spatial"], "argument --compare: unknown mode(s) ['spatial']"),
        (["--train-subset", "train"], "argument --train-subset: invalid choice: 'train'"),
        ([], "argument --features/--annotations: give both (or --demo DIR)"),
        (["--features", "{missing}", "--annotations", "{notes}"],
         "argument --features: '{missing}' does not exist; expected a directory"),
        (["--features", "{empty}", "--annotations", "{missing}"],
         "argument --annotations: '{missing}' does not exist; expected a file"),
        (["--features", "{empty}", "--annotations", "{notes}"],
         "argument --features/--annotations: annotations {notes} are not valid JSON"),
        (["--demo", "{notes}"], "argument --demo: '{notes}' is a file; expected a directory"),
        (["--demo", "{empty}", "--features", "{empty}"],
         "argument --demo: replaces --features/--annotations"),
    ],
)  # fmt: skip
def test_wstal_cli_names_the_bad_option_and_exits_2(tmp_path, capsys, argv, message):
    from train.wstal.__main__ import main

    paths = _bad_paths(tmp_path)
    assert main([a.format(**paths) for a in argv]) == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert last.startswith("python -m train.wstal: error: " + message.format(**paths)), err
    assert "Traceback" not in err


@pytest.mark.parametrize("module", ["train", "train.wstal"])
def test_the_cli_process_exits_2_on_a_bad_option(module):
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", module, "--epochs", "0"], capture_output=True, text=True
    )
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1] == (
        f"python -m {module}: error: argument --epochs: must be >= 1, got 0"
    )


@pytest.mark.parametrize(
    "module, argv, message",
    [
        ("evaluate", ["--checkpoint", "{missing}", "--data", "{empty}"],
         "argument --checkpoint: '{missing}' does not exist; expected a file"),
        ("evaluate", ["--checkpoint", "{notes}", "--data", "{empty}"],
         "argument --data: {empty}: no class sub-folders"),
        ("evaluate", ["--checkpoint", "{notes}", "--data", "{empty}", "--batch-size", "0"],
         "argument --batch-size: must be >= 1, got 0"),
        ("cam", ["--checkpoint", "c.pt", "--video", "v.webm", "--frames", "0"],
         "argument --frames: must be >= 1, got 0"),
        ("cam", ["--checkpoint", "c.pt", "--video", "v.webm", "--seed", "-1"],
         "argument --seed: must be >= 0, got -1"),
        ("cam", ["--checkpoint", "a.pt", "b.pt", "--video", "v.webm", "--video2", "w.webm"],
         "argument --video2/--classes: a grid (several --checkpoint / --video) takes none"),
    ],
)  # fmt: skip
def test_evaluate_and_cam_clis_name_the_bad_option(tmp_path, capsys, module, argv, message):
    import importlib

    main = importlib.import_module(f"train.{module}").main
    paths = _bad_paths(tmp_path)
    with pytest.raises(SystemExit) as stop:
        main([a.format(**paths) for a in argv])
    assert stop.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith(f"python -m train.{module}: error: " + message.format(**paths))


def test_python_m_train_runs_outside_the_checkout_with_pythonpath(tmp_path):
    """train/ is an app folder, not an installed package: elsewhere PYTHONPATH names the
    checkout (from inside it, python -m train finds it in the working directory)."""
    import subprocess
    import sys

    checkout = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    done = subprocess.run(
        [sys.executable, "-m", "train", "--describe"],
        cwd=tmp_path, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("slowonly18 (width 16, 4 classes; loader clip 8x2)")
