"""Weakly-supervised temporal action localization on features."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from train.wstal.localize import extract_proposals, localize_video
from train.wstal.metrics import IOU_THRESHOLDS, detection_map
from train.wstal.model import WSTALNet, topk_mean, wstal_loss
from videomix_dali.loading.features import FeatureLoader
from videomix_dali.mix import VideoMix
from videomix_dali.source.features import (
    load_feature_dataset,
    normalize_targets,
    positions_to_seconds,
    sample_positions,
    segment_seconds,
)
from videomix_dali.tools.demo_features import make_demo_features

# --------------------------------------------------------------------------- detection_map


def test_map_perfect():
    gt = [("v1", "A", 0.0, 10.0), ("v1", "B", 20.0, 30.0), ("v2", "A", 5.0, 15.0)]
    pred = [(v, c, s, e, 0.5) for v, c, s, e in gt]
    ap, m = detection_map(gt, pred)
    assert ap.shape == (9,)
    np.testing.assert_array_equal(ap, np.ones(9))
    assert m == 1.0


def test_map_shifted_iou_just_above_and_below():
    gt = [("v", "A", 0.0, 10.0)]
    # IoU 9/11 = 0.818: TP at 0.1 .. 0.8, FP at 0.9
    ap, m = detection_map(gt, [("v", "A", 1.0, 11.0, 1.0)])
    np.testing.assert_array_equal(ap, [1] * 8 + [0])
    assert m == pytest.approx(8 / 9)
    # IoU 5/15 = 0.333: TP at 0.1 .. 0.3 only
    ap, _ = detection_map(gt, [("v", "A", 5.0, 15.0, 1.0)])
    np.testing.assert_array_equal(ap, [1, 1, 1] + [0] * 6)
    # IoU exactly 0.5 counts at 0.5 (>=)
    ap, _ = detection_map(gt, [("v", "A", 0.0, 5.0, 1.0)], iou_thresholds=[0.5, 0.51])
    np.testing.assert_array_equal(ap, [1, 0])


def test_map_duplicate_is_false_positive():
    gt = [("v", "A", 0.0, 10.0), ("v", "A", 20.0, 30.0)]
    pred = [
        ("v", "A", 0.0, 10.0, 0.9),  # TP
        ("v", "A", 1.0, 10.0, 0.8),  # same action again: FP (IoU 0.9 with a matched gt)
        ("v", "A", 20.0, 30.0, 0.7),  # TP
    ]
    # precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1 -> envelope 1, 2/3 -> 0.5 * 1 + 0.5 * 2/3
    ap, m = detection_map(gt, pred)
    np.testing.assert_allclose(ap, np.full(9, 5 / 6))
    # the duplicate scored last: it comes after both TPs, so AP is 1 at every threshold
    ap, _ = detection_map(gt, [pred[0], pred[2], ("v", "A", 1.0, 10.0, 0.6)])
    np.testing.assert_allclose(ap, np.ones(9))


def test_map_highest_iou_unmatched_gt():
    gt = [("v", "A", 0.0, 10.0), ("v", "A", 8.0, 20.0)]
    pred = [("v", "A", 7.0, 20.0, 0.9), ("v", "A", 0.0, 9.0, 0.8)]  # IoU 12/13, then 0.9
    ap, _ = detection_map(gt, pred)
    np.testing.assert_allclose(ap, np.ones(9))
    # a detection in another video never matches
    ap, _ = detection_map(gt, [("w", "A", 0.0, 10.0, 1.0)])
    np.testing.assert_array_equal(ap, np.zeros(9))


def test_map_missed_class_and_empty():
    gt = [("v", "A", 0.0, 10.0), ("v", "B", 20.0, 30.0)]
    ap, m = detection_map(gt, [("v", "A", 0.0, 10.0, 1.0), ("v", "C", 0.0, 10.0, 1.0)])
    np.testing.assert_allclose(ap, np.full(9, 0.5))  # B missed; C has no gt: ignored
    assert m == pytest.approx(0.5)
    ap, m = detection_map(gt, [])
    np.testing.assert_array_equal(ap, np.zeros(9))
    assert m == 0.0
    with pytest.raises(ValueError, match="ground-truth"):
        detection_map([], [])
    with pytest.raises(ValueError, match="iou_thresholds"):
        detection_map(gt, [], iou_thresholds=[0.0])


def _slow_map(gt, pred, thresholds):
    """Straightforward re-implementation: loops, AP = sum over TPs of max precision after."""
    classes = sorted({g[1] for g in gt})
    out = np.zeros((len(classes), len(thresholds)))
    for ci, c in enumerate(classes):
        g = [x for x in gt if x[1] == c]
        p = [x for x in pred if x[1] == c]
        p = sorted(p, key=lambda x: -x[4])  # sorted() is stable
        for ti, thr in enumerate(thresholds):
            used = [False] * len(g)
            hits = []
            for v, _, s, e, _ in p:
                best, best_iou = -1, -1.0
                for j, (gv, _, gs, ge) in enumerate(g):
                    if gv != v or used[j]:
                        continue
                    inter = max(0.0, min(e, ge) - max(s, gs))
                    union = (e - s) + (ge - gs) - inter
                    iou = inter / union if union > 0 else 0.0
                    if iou > best_iou:
                        best, best_iou = j, iou
                if best >= 0 and best_iou >= thr:
                    used[best] = True
                    hits.append(1)
                else:
                    hits.append(0)
            precision = [sum(hits[: i + 1]) / (i + 1) for i in range(len(hits))]
            ap = 0.0
            for i, h in enumerate(hits):
                if h:
                    ap += max(precision[i:]) / len(g)
            out[ci, ti] = ap
    ap = out.mean(axis=0)
    return ap, ap.mean()


def test_map_matches_slow_reference_on_random_data():
    rng = np.random.default_rng(0)
    for trial in range(12):
        gt, pred = [], []
        for v in range(4):
            for _ in range(rng.integers(1, 5)):
                c = "ABC"[rng.integers(0, 3)]
                s = float(rng.uniform(0, 90))
                gt.append((f"v{v}", c, s, s + float(rng.uniform(1, 20))))
        for v, c, s, e in gt:  # jittered copies (some duplicates), plus noise
            for _ in range(rng.integers(0, 3)):
                d = rng.normal(0, 3, 2)
                pred.append((v, c, s + d[0], max(s + d[0] + 0.5, e + d[1]), float(rng.random())))
        for _ in range(10):
            s = float(rng.uniform(0, 90))
            c, v = "ABCD"[rng.integers(0, 4)], f"v{rng.integers(0, 5)}"
            pred.append((v, c, s, s + float(rng.uniform(1, 20)), float(rng.random())))
        if trial % 3 == 0:  # ties in score keep input order in both
            pred = [(v, c, s, e, round(sc, 1)) for v, c, s, e, sc in pred]
        ap, m = detection_map(gt, pred)
        ap_ref, m_ref = _slow_map(gt, pred, IOU_THRESHOLDS)
        np.testing.assert_allclose(ap, ap_ref, rtol=0, atol=1e-12)
        assert m == pytest.approx(m_ref, abs=1e-12)


# --------------------------------------------------------------------------- proposals


def test_extract_proposals_hand_built():
    cam = np.array([0.0, 0.2, 0.6, 0.8, 0.3, 0.0, 0.5, 1.0, 0.9, 0.1])
    props = extract_proposals(cam)  # threshold 0.5 (>=)
    assert [(s, e) for s, e, _ in props] == [(2, 4), (6, 9)]
    np.testing.assert_allclose([p[2] for p in props], [0.7, 0.8])
    # outer-inner contrast: flanks of max(1, len // 4) positions
    con = extract_proposals(cam, score="contrast")
    np.testing.assert_allclose([p[2] for p in con], [0.7 - 0.25, 0.8 - (0.0 + 0.1) / 2])
    # a run touching both ends
    assert extract_proposals(np.ones(5)) == [(0, 5, 1.0)]


def test_localize_video_seconds_and_classes():
    T, K = 10, 3
    cam = np.zeros((T, K + 1))
    cam[2:5, 1] = [0.4, 1.0, 0.6]
    cam[7:9, 2] = 0.9  # class 2 is not kept (video prob below threshold)
    video = np.array([0.05, 0.9, 0.05])
    preds = localize_video(cam, video, classes=["a", "b", "c"], video_id="v", length=20, fps=25.0)
    # positions [3, 5) of T = 10 covering L = 20 segments -> segments [6, 10) -> seconds
    assert len(preds) == 1
    v, c, s, e, sc = preds[0]
    assert (v, c) == ("v", "b")
    assert (s, e) == pytest.approx((6 * 16 / 25, 10 * 16 / 25))
    assert sc == pytest.approx(0.8)
    assert segment_seconds(3, 25.0) == pytest.approx((48 / 25, 64 / 25))
    s, e = positions_to_seconds(0, 10, length=10, num_positions=10, fps=25.0)
    assert (float(s), float(e)) == (0.0, 6.4)


# --------------------------------------------------------------------------- feature data


def _write_dataset(root, lengths, *, dim=5, labels=None, fill=None):
    """Random float32 features (or ``fill(i, L)``) and a gt JSON; returns (feat dir, json)."""
    feats = root / "features"
    feats.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    db, arrays = {}, {}
    for i, L in enumerate(lengths):
        vid = f"vid{i:03d}"
        x = fill(i, L) if fill else rng.standard_normal((L, dim)).astype(np.float32)
        np.save(feats / f"{vid}.npy", x)
        arrays[vid] = x
        labs = labels[i] if labels else ["A"]
        db[vid] = {
            "subset": "validation",
            "duration": L * 16 / 25.0,
            "fps": 25.0,
            "annotations": [
                {"segment": [1.0 + k, 2.0 + k], "label": c} for k, c in enumerate(labs)
            ],
        }
    ann = root / "gt.json"
    ann.write_text(json.dumps({"database": db}))
    return feats, ann, arrays


def test_sample_positions():
    np.testing.assert_array_equal(sample_positions(7, 7), np.arange(7))
    np.testing.assert_array_equal(sample_positions(10, 4), [0, 2, 5, 7])
    np.testing.assert_array_equal(sample_positions(3, 6), [0, 0, 1, 1, 2, 2])  # repeated
    rng = np.random.default_rng(0)
    for L, T in [(10, 4), (750, 750), (1000, 750), (3000, 750)]:
        p = sample_positions(L, T, rng=rng)
        lo, hi = np.arange(T) * L // T, np.arange(1, T + 1) * L // T
        assert p.shape == (T,) and np.all((p >= lo) & (p < hi))


def test_numpy_pipeline_is_bit_exact(tmp_path):
    feats, ann, arrays = _write_dataset(tmp_path, [9, 13, 4, 13])
    ds = load_feature_dataset(feats, ann)
    assert ds.classes == ["A"] and [v.length for v in ds.videos] == [9, 13, 4, 13]
    seen = {}
    for b in FeatureLoader(ds, batch_size=1, num_positions=None):  # full length
        assert b.features.dtype == torch.float32
        i = int(b.index[0])
        seen[i] = True
        np.testing.assert_array_equal(b.features[0].numpy(), arrays[ds.videos[i].video_id])
        assert int(b.length[0]) == ds.videos[i].length
    assert sorted(seen) == [0, 1, 2, 3]
    # fixed T equal to the file length, batch of 2, deterministic sampling: exact again
    same = ds.subset("validation")
    same.videos = [v for v in same.videos if v.length == 13]
    batches = list(FeatureLoader(same, batch_size=2, num_positions=13))
    assert len(batches) == 1
    got = batches[0].features.numpy()
    np.testing.assert_array_equal(got[0], arrays["vid001"])
    np.testing.assert_array_equal(got[1], arrays["vid003"])


def test_feature_errors_name_the_file(tmp_path):
    feats, ann, _ = _write_dataset(tmp_path, [5, 6])
    np.save(feats / "vid001.npy", np.zeros((6, 5), np.float64))
    with pytest.raises(ValueError, match=r"vid001\.npy.*float64"):
        load_feature_dataset(feats, ann)
    np.save(feats / "vid001.npy", np.zeros((6, 5, 1), np.float32))
    with pytest.raises(ValueError, match=r"vid001\.npy.*ndim 2"):
        load_feature_dataset(feats, ann)
    (feats / "vid001.npy").unlink()
    with pytest.raises(ValueError, match=r"missing features.*vid001\.npy"):
        load_feature_dataset(feats, ann)
    assert len(load_feature_dataset(feats, ann, missing="skip")) == 1
    (tmp_path / "classes.txt").write_text("B\n")
    with pytest.raises(ValueError, match=r"gt\.json.*unknown label 'A'"):
        load_feature_dataset(feats, ann, classes=tmp_path / "classes.txt", missing="skip")


def test_temporal_mix_labels_are_exact_segment_shares(tmp_path):
    T, D, N = 24, 3, 4
    labels = [["A"], ["B", "C"], ["A", "C"], ["C"], ["B"], ["A", "B", "C"], ["B"], ["A"]]

    def fill(i, L):  # every row of video i holds i: the source of each output row is readable
        return np.full((L, D), float(i), np.float32)

    feats, ann, _ = _write_dataset(
        tmp_path, [30, 24, 17, 50, 24, 40, 9, 33], dim=D, labels=labels, fill=fill
    )
    ds = load_feature_dataset(feats, ann)
    targets = normalize_targets(ds.multi_hot())
    np.testing.assert_allclose(targets.sum(1), 1.0)
    mix = VideoMix(mode="temporal", alpha=1.0, num_classes=ds.num_classes, seed=3)
    loader = FeatureLoader(ds, batch_size=N, num_positions=T, train=True, mix=mix, seed=5)
    mixed_rows = 0
    for _ in range(3):
        for b in loader:
            x, y = b.features.numpy(), b.target.numpy()
            assert x.shape == (N, T, D) and y.shape == (N, 3)
            for n in range(N):
                src = x[n, :, 0].astype(int)
                assert np.all(x[n] == src[:, None])  # whole rows pasted
                share = np.bincount(src, minlength=len(ds)) / T
                expect = share @ targets
                np.testing.assert_allclose(y[n], expect, rtol=0, atol=1e-6)
                assert y[n].sum() == pytest.approx(1.0, abs=1e-6)
                assert share[int(b.index[n])] > 0
                mixed_rows += int(np.count_nonzero(share) > 1)
    assert mixed_rows > 0


def test_feature_loader_resumes_mid_epoch_with_the_same_next_batches(tmp_path):
    feats, ann, _ = _write_dataset(tmp_path, [30, 24, 17, 50, 24, 40, 9, 33], dim=4)
    ds = load_feature_dataset(feats, ann)

    def make():
        mix = VideoMix(mode="temporal", num_classes=ds.num_classes, seed=2)
        return FeatureLoader(ds, batch_size=3, num_positions=12, train=True, mix=mix, seed=5)

    def collect(loader):
        return [tuple(t.clone() for t in b) for b in loader]

    first = make()
    straight = collect(first) + collect(first)  # two epochs from one loader and pipeline
    loader = make()
    it = iter(loader)
    next(it)
    state = loader.state_dict()
    assert state == {
        "epoch": 0,
        "step": 1,
        "seed": 5,
        "batch_size": 3,
        "num_shards": 1,
        "num_items": 8,
    }
    assert len(loader) == 2
    resumed = make()
    resumed.load_state_dict(state)
    rest = collect(resumed) + collect(resumed)
    assert len(rest) == len(straight) - 1 == 3
    for a, b in zip(straight[1:], rest):
        assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(straight[0][0], straight[2][0])  # a new order, new jitter per epoch
    next(it)  # the epoch's last batch: from now on the position is the next epoch's first
    end = loader.state_dict()
    assert (end["epoch"], end["step"]) == (1, 0)
    after = make()
    after.load_state_dict(end)
    assert all(torch.equal(x, y) for x, y in zip(straight[2], next(iter(after))))


@pytest.mark.gpu
def test_feature_loader_on_the_gpu_matches_the_cpu(tmp_path):
    feats, ann, _ = _write_dataset(tmp_path, [30, 24, 17, 50, 24, 40], dim=4)
    ds = load_feature_dataset(feats, ann)

    def batches(device):
        mix = VideoMix(mode="temporal", num_classes=ds.num_classes, seed=2)
        loader = FeatureLoader(
            ds, batch_size=3, num_positions=12, train=True, mix=mix, device=device
        )
        return [tuple(t.clone() for t in b) for b in loader]

    for cpu, gpu in zip(batches("cpu"), batches("gpu")):
        assert gpu.features.is_cuda and gpu.target.is_cuda
        assert torch.equal(cpu.features, gpu.features.cpu())
        assert torch.equal(cpu.target, gpu.target.cpu())


def test_loss_uses_normalised_targets_with_background():
    torch.manual_seed(0)
    logits = torch.randn(2, 4)
    y = torch.tensor([[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
    q = torch.tensor([[0.25, 0.25, 0.0, 0.5], [0.0, 0.0, 0.5, 0.5]])
    want = -(q * torch.log_softmax(logits, 1)).sum(1).mean()
    assert wstal_loss(logits, y).item() == pytest.approx(want.item())
    model = WSTALNet(6, 3, hidden=8)
    video, cam = model(torch.randn(2, 17, 6))
    assert cam.shape == (2, 17, 4) and video.shape == (2, 4)
    torch.testing.assert_close(video, cam.topk(2, dim=1).values.mean(1))  # k = 17 // 8
    assert topk_mean(torch.arange(8.0).reshape(1, 8, 1)).item() == 7.0


# --------------------------------------------------------------------------- training


def test_short_training_localizes_above_chance(tmp_path):
    from train.wstal import run_experiment

    root = make_demo_features(tmp_path / "demo", seed=0, train_videos=96, test_videos=48)
    ds = load_feature_dataset(
        root / "features", root / "annotations.json", classes=root / "classes.txt"
    )
    train, test = ds.subset("validation"), ds.subset("test")
    assert len(train) == 96 and len(test) == 48
    kw = dict(hidden=64, num_positions=160, lr=1e-3, batch_size=16, progress=False)
    chance = run_experiment(train, test, mix="none", epochs=0, seed=0, **kw)
    res = run_experiment(train, test, mix="temporal", epochs=12, seed=0, **kw)
    # Measured (2 CPU cores, no GPU): untrained mAP 0.022 (AP@0.1 0.143, video top-1
    # accuracy 0.19 -- chance); temporal mix, 12 epochs: mAP 0.322 (AP@0.1 0.587), video
    # accuracy 0.625.  The bounds keep a wide margin below the trained numbers.
    assert chance["map"] < 0.08
    assert res["map"] > 0.2
    assert res["ap"][0] > 0.4
    assert res["accuracy"] > 0.4


def test_cli_compare_writes_table_and_predictions(tmp_path, capsys):
    from train.wstal.__main__ import main

    out = tmp_path / "out"
    modes = ["none", "temporal", "hide-and-seek"]
    argv = ["--demo", str(tmp_path / "demo"), "--compare", ",".join(modes), "--epochs", "1"]
    assert main([*argv, "--hidden", "16", "--out", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "mAP (%) @ IoU" in text and all(f"\n{m} " in text for m in modes)
    for m in modes:
        rows = (out / f"predictions_{m}.csv").read_text().splitlines()
        assert rows[0] == "video_id,label,start,end,score" and len(rows) > 1
    res = json.loads((out / "results.json").read_text())
    assert len(res["temporal"]["ap"]) == 9
    assert main(["--features", str(tmp_path / "nope"), "--annotations", "x.json"]) == 2


def test_hide_and_seek_hides_exactly_the_sampled_segments():
    from videomix_dali.mix.hide import hide_segments, sample_hidden

    rng = np.random.default_rng(4)
    hidden = sample_hidden(rng, 3, 10, 4, 0.5)  # segments [0, 4), [4, 8), [8, 10)
    assert hidden.shape == (3, 10) and hidden.any() and not hidden.all()
    for row in hidden:  # whole segments at a time
        assert all(len(set(row[a:b])) == 1 for a, b in ((0, 4), (4, 8), (8, 10)))
    again = sample_hidden(np.random.default_rng(4), 3, 10, 4, 0.5)
    assert np.array_equal(hidden, again)  # seeded
    x = torch.arange(3 * 10 * 2, dtype=torch.float32).reshape(3, 10, 2)
    fill = torch.tensor([-1.0, -2.0])
    y = hide_segments(x, torch.from_numpy(hidden), fill)
    assert torch.equal(y[torch.from_numpy(hidden)], fill.expand(int(hidden.sum()), 2))
    assert torch.equal(y[~torch.from_numpy(hidden)], x[~torch.from_numpy(hidden)])
    assert torch.equal(x, torch.arange(60, dtype=torch.float32).reshape(3, 10, 2))  # untouched
    assert not sample_hidden(rng, 2, 5, 2, 0.0).any() and sample_hidden(rng, 2, 5, 2, 1.0).all()
