"""Semantics of the VideoMix family (videomix_dali.mix) against the paper's Eq. 1-3.

The reference below is written from the equations, not from the library: for every
paste a binary mask M (Eq. 2, half-open integer box) and x~ = M * x_partner +
(1 - M) * x (Eq. 1, the box comes from the partner); mixup x * lam + partner * (1 - lam).
Inputs are coded: each voxel holds 1 + its flat NCTHW index, so the output says where
every voxel came from (0 = erased).
"""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from scipy import stats

from videomix_dali.mix import (
    MODES,
    MixParams,
    VideoMix,
    apply_mix,
    mix_labels,
    mix_normalize_batch,
    sample_mix_params,
)

CUT_MODES = ("spatial", "temporal", "spatiotemporal", "perframe")
CLIP_SHAPES = [
    (1, 1, 1, 1, 1),
    (1, 3, 4, 5, 6),
    (2, 3, 4, 5, 6),
    (3, 2, 5, 7, 9),
    (3, 3, 1, 1, 7),
    (4, 1, 3, 8, 2),
]
FEATURE_SHAPES = [(1, 5, 3), (3, 7, 4), (4, 9, 2)]
MEAN = np.array([123.675, 116.28, 103.53])
STD = np.array([58.395, 57.12, 57.375])


# --------------------------------------------------------------------------- reference


def ref_mask(box, T, H, W):
    """Eq. 2 on the integer grid: M[t, h, w] = 1 iff t1 <= t < t2, h1 <= h < h2, w1 <= w < w2."""
    t1, t2, h1, h2, w1, w2 = (int(v) for v in box)
    M = np.zeros((T, H, W), dtype=bool)
    for t in range(T):
        for h in range(H):
            for w in range(W):
                M[t, h, w] = t1 <= t < t2 and h1 <= h < h2 and w1 <= w < w2
    return M


def ref_apply(x, p: MixParams):
    """Slow obvious NCTHW reference (features (N, T, D) seen as (N, 1, T, 1, D))."""
    N = x.shape[0]
    if x.ndim == 3:
        T, H, W = x.shape[1], 1, x.shape[2]
    else:
        T, H, W = x.shape[2:]
    x5 = x.reshape(N, -1, T, H, W)
    out = np.empty_like(x5)
    ct = np.float64 if x.dtype == np.float64 else np.float32
    for n in range(N):
        cur = x5[n].copy()
        if p.applied[n] and p.mode == "mixup":
            acc = x5[n].astype(ct)
            for j in range(p.num_pastes):
                lam = p.lam[n, j, 0]
                acc = acc * ct(lam) + x5[p.partners[n, j]].astype(ct) * ct(1.0 - lam)
            if x.dtype == np.uint8:
                acc = np.clip(np.rint(acc), 0, 255)
            cur = acc.astype(x.dtype)
        elif p.applied[n]:
            for j in range(p.num_pastes):
                M = np.zeros((T, H, W), dtype=bool)
                for box in p.boxes[n, j]:
                    M |= ref_mask(box, T, H, W)
                partner = int(p.partners[n, j])
                x_a = np.zeros_like(cur) if partner < 0 else x5[partner]
                cur = np.where(M[None], x_a, cur)  # Eq. 1: M * x_A + (1 - M) * x_B
        out[n] = cur
    return out.reshape(x.shape)


def coded(shape, dtype=np.float64):
    return (np.arange(int(np.prod(shape)), dtype=np.float64) + 1).reshape(shape).astype(dtype)


def draw(shape, mode, *, seed=0, step=0, **kw):
    return VideoMix(mode, seed=seed, **kw).sample(shape, step=step)


def cases():
    for mode in MODES:
        shapes = CLIP_SHAPES + (FEATURE_SHAPES if mode in ("temporal", "mixup", "none") else [])
        for shape in shapes:
            for per_sample in (False, True):
                ks = [2] if mode in ("cutout", "none") else [2, 3]
                for k in ks:
                    if k > 2 and shape[0] < k:
                        continue
                    yield mode, shape, per_sample, k


CASES = list(cases())


def case_params(mode, shape, per_sample, k, step=0):
    return draw(shape, mode, seed=7, step=step, per_sample=per_sample, num_videos=k)


# --------------------------------------------------------------------------- apply


@pytest.mark.parametrize("mode,shape,per_sample,k", CASES)
def test_apply_matches_reference(mode, shape, per_sample, k):
    for step in range(2):
        p = case_params(mode, shape, per_sample, k, step)
        x = coded(shape)
        out = apply_mix(x, p)
        assert out.dtype == x.dtype and out.shape == x.shape
        np.testing.assert_array_equal(out, ref_apply(x, p))
        assert np.array_equal(x, coded(shape)), "apply must not modify its input"


@pytest.mark.parametrize("dtype", [np.uint8, np.float16, np.float32])
@pytest.mark.parametrize("mode", MODES)
def test_apply_dtypes_match_reference(mode, dtype):
    rng = np.random.default_rng(3)
    for shape in [(3, 3, 4, 5, 6), (2, 1, 3, 4, 5)]:
        for per_sample in (False, True):
            p = draw(shape, mode, seed=1, per_sample=per_sample)
            if dtype == np.uint8:
                x = rng.integers(0, 256, shape).astype(np.uint8)
            else:
                x = rng.normal(size=shape).astype(dtype)
            out = apply_mix(x, p)
            assert out.dtype == x.dtype
            np.testing.assert_array_equal(out.view(np.uint8), ref_apply(x, p).view(np.uint8))


@pytest.mark.parametrize("mode", [m for m in MODES if m not in ("mixup", "none")])
def test_weights_equal_counted_voxel_shares(mode):
    for shape, per_sample, k in [
        ((3, 2, 5, 7, 9), False, 2),
        ((3, 2, 5, 7, 9), True, 2),
        ((4, 1, 6, 5, 8), True, 3),
        ((5, 1, 4, 6, 6), True, 4),
        ((5, 1, 4, 6, 6), False, 4),
        ((10, 1, 4, 5, 6), True, 10),  # > 8 pastes: counted by painting, not inclusion-exclusion
    ]:
        if mode == "cutout" and k > 2:
            continue
        for step in range(4):
            p = draw(shape, mode, seed=11, step=step, per_sample=per_sample, num_videos=k)
            out = apply_mix(coded(shape), p)
            N = shape[0]
            per_sample_voxels = int(np.prod(shape[1:]))
            vol = int(np.prod(shape[2:]))
            flat = out.reshape(N, -1).astype(np.int64)
            src = np.where(flat > 0, (flat - 1) // per_sample_voxels, -1)
            # every voxel keeps its own (c, t, h, w): only the sample changes
            where = (flat - 1) % per_sample_voxels
            keep = flat > 0
            assert np.array_equal(
                where[keep], np.broadcast_to(np.arange(per_sample_voxels), flat.shape)[keep]
            )
            C = shape[1]
            for n in range(N):
                if mode == "cutout":
                    assert p.weights[n].tolist() == [1.0, 0.0]
                    continue
                count_self = np.count_nonzero(src[n] == n) // C
                assert p.weights[n, 0] == count_self / vol
                for j in range(p.num_pastes):
                    c = np.count_nonzero(src[n] == p.partners[n, j]) // C
                    assert p.weights[n, j + 1] == c / vol
                assert np.count_nonzero(src[n] < 0) == 0


def test_mixup_weights_and_blend():
    p = draw((4, 3, 2, 3, 3), "mixup", seed=5, per_sample=True)
    np.testing.assert_array_equal(p.weights[:, 0], p.lam[:, 0, 0])
    np.testing.assert_array_equal(p.weights[:, 1], 1.0 - p.lam[:, 0, 0])
    p3 = draw((4, 3, 2, 3, 3), "mixup", seed=5, per_sample=True, num_videos=3)
    lam = p3.lam[:, :, 0]
    np.testing.assert_allclose(p3.weights[:, 0], lam[:, 0] * lam[:, 1])
    np.testing.assert_allclose(p3.weights[:, 1], (1 - lam[:, 0]) * lam[:, 1])
    np.testing.assert_allclose(p3.weights[:, 2], 1 - lam[:, 1])
    np.testing.assert_allclose(p3.weights.sum(1), 1.0)


# --------------------------------------------------------------------------- box geometry


@pytest.mark.parametrize("mode", ["spatial", "temporal", "spatiotemporal", "perframe", "mixup"])
def test_box_geometry(mode):
    T, H, W = 6, 7, 9
    for per_sample in (False, True):
        for step in range(20):
            p = draw((3, 3, T, H, W), mode, step=step, per_sample=per_sample)
            b = p.boxes
            assert np.all(b[..., 0::2] >= 0) and np.all(b[..., 0::2] <= b[..., 1::2])
            assert np.all(b[..., 1] <= T) and np.all(b[..., 3] <= H) and np.all(b[..., 5] <= W)
            if mode == "spatial":  # all T frames
                assert np.all(b[..., 0] == 0) and np.all(b[..., 1] == T)
            if mode == "temporal":  # full frames
                assert np.all(b[..., 2:4] == [0, H]) and np.all(b[..., 4:6] == [0, W])
            if mode == "perframe":  # box b on frame b
                assert b.shape[2] == T
                assert np.all(b[..., 0] == np.arange(T)) and np.all(b[..., 1] == np.arange(T) + 1)
            if mode == "mixup":
                assert np.all(b == [0, T, 0, H, 0, W])
            if not per_sample:
                assert np.all(b == b[:1]) and np.all(p.lam == p.lam[:1])


def test_feature_temporal_boxes():
    for step in range(10):
        p = draw((3, 11, 4), "temporal", step=step, per_sample=True)
        assert np.all(p.boxes[..., 2:4] == [0, 1]) and np.all(p.boxes[..., 4:6] == [0, 4])


def _side(L, lam, d):
    return int(np.floor(L * lam ** (1.0 / d) + 0.5))


@pytest.mark.parametrize(
    "mode,axes,d", [("spatial", (1, 2), 2), ("temporal", (0,), 1), ("spatiotemporal", (0, 1, 2), 3)]
)
def test_every_border_position_reachable(mode, axes, d):
    dims = (5, 6, 7)
    seen_a1 = {ax: set() for ax in axes}
    seen_a2 = {ax: set() for ax in axes}
    covered = {ax: np.zeros(dims[ax], bool) for ax in axes}
    side2 = {ax: set() for ax in axes}  # boxes of (unclipped) side 2
    mix = VideoMix(mode, per_sample=True, seed=123)
    for _ in range(150):
        p = mix.sample((16, 1) + dims)
        for n in range(16):
            box, lam = p.boxes[n, 0, 0], p.lam[n, 0, 0]
            for ax in axes:
                a1, a2 = int(box[2 * ax]), int(box[2 * ax + 1])
                if a2 > a1:
                    seen_a1[ax].add(a1)
                    seen_a2[ax].add(a2)
                    covered[ax][a1:a2] = True
                if _side(dims[ax], lam, d) == 2:
                    side2[ax].add((a1, a2))
    for ax in axes:
        L = dims[ax]
        assert seen_a1[ax] == set(range(L)), (ax, seen_a1[ax])
        assert seen_a2[ax] == set(range(1, L + 1)), (ax, seen_a2[ax])
        assert covered[ax].all()
        # centre drawn from {0, ..., L} inclusive: a side-2 box is cut to its half at
        # both borders (centre 0 -> [0, 1), centre L -> [L-1, L)), and every placement
        # in between occurs
        assert {(0, 1), (L - 1, L)} <= side2[ax], side2[ax]
        assert {(c - 1, c + 1) for c in range(1, L)} <= side2[ax]


def test_lambda_uniform_for_alpha_one():
    mix = VideoMix("spatial", alpha=1.0, per_sample=True, seed=2024)
    lam = np.concatenate([mix.sample((64, 1, 2, 4, 4)).lam.ravel() for _ in range(40)])
    assert lam.size == 2560
    assert stats.kstest(lam, "uniform").pvalue > 0.01
    mix = VideoMix("spatial", alpha=0.4, per_sample=True, seed=2024)
    lam = np.concatenate([mix.sample((64, 1, 2, 4, 4)).lam.ravel() for _ in range(40)])
    assert stats.kstest(lam, stats.beta(0.4, 0.4).cdf).pvalue > 0.01
    assert stats.kstest(lam, "uniform").pvalue < 1e-6


def test_pairing_is_a_derangement():
    for N in range(2, 10):
        for k in sorted({2, 3, 4, N} & set(range(2, N + 1))):
            for step in range(5):
                p = draw((N, 1, 2, 2, 2), "spatial", step=step, num_videos=k)
                P = p.partners
                assert P.shape == (N, k - 1)
                for j in range(k - 1):
                    assert sorted(P[:, j].tolist()) == list(range(N))  # a permutation
                    assert np.all(P[:, j] != np.arange(N))  # without fixed points
                for n in range(N):
                    assert len(set(P[n].tolist())) == k - 1  # distinct partners


def test_batch_of_one_is_not_mixed():
    for mode in ("spatial", "temporal", "spatiotemporal", "perframe", "mixup"):
        p = draw((1, 3, 4, 5, 6), mode)
        assert not p.applied.any() and p.weights.tolist() == [[1.0, 0.0]]
        x = coded((1, 3, 4, 5, 6))
        out, y = VideoMix(mode, num_classes=5, seed=0)(x, np.array([2]))
        np.testing.assert_array_equal(out, x)
        assert y.tolist() == [[0, 0, 1, 0, 0]]


def test_prob_per_batch_and_per_sample():
    applied = [draw((8, 1, 2, 3, 3), "spatial", step=s, prob=0.5).applied for s in range(200)]
    assert all(a.all() or not a.any() for a in applied)
    frac = np.mean([a[0] for a in applied])
    assert 0.35 < frac < 0.65
    ps = [draw((8, 1, 2, 3, 3), "spatial", step=s, prob=0.5, per_sample=True) for s in range(100)]
    assert any(0 < p.applied.sum() < 8 for p in ps)
    for p in ps:
        for n in np.flatnonzero(~p.applied):
            assert p.weights[n, 0] == 1.0 and p.weights[n, 1] == 0.0
    assert not any(
        draw((4, 1, 2, 3, 3), "mixup", step=s, prob=0.0).applied.any() for s in range(20)
    )
    assert all(draw((4, 1, 2, 3, 3), "mixup", step=s, prob=1.0).applied.all() for s in range(20))


def test_cutout_size_fixed():
    T, H, W = 4, 20, 30
    for step in range(30):
        p = draw((3, 3, T, H, W), "cutout", step=step, per_sample=True, cutout_size=(8, 12))
        b = p.boxes[:, 0, 0]
        assert np.all(b[:, 0] == 0) and np.all(b[:, 1] == T)  # spatial only: full T
        assert np.all(b[:, 3] - b[:, 2] <= 8) and np.all(b[:, 5] - b[:, 4] <= 12)
        inside = (b[:, 2] > 0) & (b[:, 3] < H)
        assert np.all((b[:, 3] - b[:, 2])[inside] == 8)
        assert p.weights[:, 0].tolist() == [1.0] * 3
    p = draw((2, 1, 8, 10, 10), "cutout", cutout_size=(2, 3, 3), step=3)
    assert np.all(p.boxes[..., 1] - p.boxes[..., 0] <= 2)
    p = draw((2, 1, 4, 6, 6), "cutout", cutout_size=(None, 50, 50))  # side capped at L
    assert np.all(p.boxes[:, 0, 0, :2] == [0, 4]) and np.all(p.boxes[..., 1::2] <= [4, 6, 6])


# --------------------------------------------------------------------------- fused path


def ref_fused(frames, p, mean, std, dtype):
    """Reference: paste in uint8 by masks (Eq. 1-2), then (float32(v) - mean) * (1 / std)."""
    N = len(frames)
    T, H, W, C = frames[0].shape
    m32, inv32 = np.float32(mean), np.float32(1) / np.float32(std)
    out = np.empty((N, C, T, H, W), dtype=np.float32)
    for n in range(N):
        if p.applied[n] and p.mode == "mixup":
            acc = frames[n].astype(np.float32)
            for j in range(p.num_pastes):
                lam = p.lam[n, j, 0]
                other = frames[p.partners[n, j]].astype(np.float32)
                acc = acc * np.float32(lam) + other * np.float32(1.0 - lam)
            v = (acc - m32) * inv32
        else:
            cur = frames[n].astype(np.float32)
            erased = np.zeros((T, H, W), bool)
            if p.applied[n]:
                for j in range(p.num_pastes):
                    M = np.zeros((T, H, W), bool)
                    for box in p.boxes[n, j]:
                        M |= ref_mask(box, T, H, W)
                    q = int(p.partners[n, j])
                    if q < 0:
                        erased |= M
                    else:
                        cur = np.where(M[..., None], frames[q].astype(np.float32), cur)
            v = (cur - m32) * inv32
            v[erased] = 0.0
        out[n] = v.transpose(3, 0, 1, 2)
    return out.astype(dtype)


FUSED_SHAPES = [(1, 4, 5, 6, 3), (3, 4, 5, 6, 3), (4, 3, 7, 5, 3), (2, 1, 1, 1, 3), (3, 2, 3, 4, 1)]


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("mode", MODES)
def test_fused_matches_reference_normalize(mode, dtype):
    rng = np.random.default_rng(17)
    for N, T, H, W, C in FUSED_SHAPES:
        frames = [rng.integers(0, 256, (T, H, W, C), dtype=np.uint8) for _ in range(N)]
        mean, std = MEAN[:C], STD[:C]
        for per_sample in (False, True):
            ks = [2, 3] if N >= 3 and mode not in ("cutout", "none") else [2]
            for k in ks:
                p = draw((N, C, T, H, W), mode, seed=9, per_sample=per_sample, num_videos=k)
                got = mix_normalize_batch(frames, p, mean, std, dtype=dtype)
                assert got.dtype == dtype and got.shape == (N, C, T, H, W)
                want = ref_fused(frames, p, mean, std, dtype)
                np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))


def test_fused_out_and_plain_normalize():
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (4, 6, 5, 3), dtype=np.uint8) for _ in range(3)]
    p = draw((3, 3, 4, 6, 5), "none")
    out = np.full((3, 3, 4, 6, 5), np.nan, np.float32)
    res = mix_normalize_batch(frames, p, MEAN, STD, out=out)
    assert res is out
    x = np.stack(frames).astype(np.float32)
    inv_std = np.float32(1) / STD.astype(np.float32)  # DALI's crop_mirror_normalize arithmetic
    want = ((x - MEAN.astype(np.float32)) * inv_std).transpose(0, 4, 1, 2, 3)
    np.testing.assert_array_equal(out, want)
    # an (N, T, H, W, C) array works as well as a list
    np.testing.assert_array_equal(mix_normalize_batch(np.stack(frames), p, MEAN, STD), want)
    with pytest.raises(ValueError, match="out"):
        mix_normalize_batch(frames, p, MEAN, STD, out=np.empty((3, 3, 4, 6, 5), np.float16))
    with pytest.raises(ValueError, match="params"):
        mix_normalize_batch(frames[:2], p, MEAN, STD)
    with pytest.raises(ValueError, match="dtype"):
        mix_normalize_batch(frames, p, MEAN, STD, dtype=np.float64)
    with pytest.raises(ValueError, match="mean"):
        mix_normalize_batch(frames, p, MEAN[:2], STD)


# --------------------------------------------------------------------------- labels


def test_labels_mix_and_smoothing():
    K, eps = 6, 0.1
    p = draw((4, 3, 4, 8, 8), "spatial", seed=3, num_videos=3)
    y = np.array([0, 2, 2, 5])
    ys = mix_labels(y, p, K, eps)
    assert ys.dtype == np.float32 and ys.shape == (4, K)
    onehot = np.eye(K)[y]
    smooth = (1 - eps) * onehot + eps / K
    want = p.weights[:, :1] * smooth
    for j in range(2):
        want = want + p.weights[:, j + 1 : j + 2] * smooth[p.partners[:, j]]
    np.testing.assert_array_equal(ys, want.astype(np.float32))
    np.testing.assert_allclose(ys.sum(1), 1.0, rtol=1e-6)
    # soft labels in, same result
    np.testing.assert_array_equal(mix_labels(onehot.astype(np.float32), p, None, eps), ys)
    # the label weight sits on the label of the video that owns those voxels
    ys0 = mix_labels(y, p, K)
    for n in range(4):
        own = {int(y[n]): p.weights[n, 0]}
        for j in range(2):
            q = int(y[p.partners[n, j]])
            own[q] = own.get(q, 0.0) + p.weights[n, j + 1]
        for cls, w in own.items():
            assert ys0[n, cls] == np.float32(w)


def test_cutout_and_none_keep_labels():
    y = np.array([1, 0, 3])
    for mode in ("cutout", "none"):
        _, ys = VideoMix(mode, num_classes=4, seed=0)(coded((3, 1, 2, 4, 4)), y)
        np.testing.assert_array_equal(ys, np.eye(4, dtype=np.float32)[y])


# --------------------------------------------------------------------------- seeding


def test_seeding_same_seed_same_params_steps_and_ranks_differ():
    shape = (6, 3, 4, 16, 16)
    a = VideoMix("spatial", seed=42, per_sample=True)
    b = VideoMix("spatial", seed=42, per_sample=True)
    pa = [a.sample(shape) for _ in range(3)]
    pb = [b.sample(shape) for _ in range(3)]
    assert pa == pb
    assert pa[0] != pa[1] and pa[1] != pa[2]
    assert a.step == 3
    assert a.sample(shape, step=1) == pa[1] and a.step == 3  # step= leaves the counter alone
    r1 = VideoMix("spatial", seed=42, per_sample=True, rank=1)
    assert r1.sample(shape, step=0) != pa[0]
    assert VideoMix("spatial", seed=43, per_sample=True).sample(shape) != pa[0]
    # checkpoint: the counter resumes
    c = VideoMix("spatial", seed=42, per_sample=True)
    c.load_state_dict(a.state_dict())
    assert c.sample(shape) == a.sample(shape)
    # the stream is [seed, rank, step] through PCG64
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([42, 0, 0])))
    assert sample_mix_params(shape, rng=rng, per_sample=True) == pa[0]


def test_pack_unpack_roundtrip():
    for mode, shape, per_sample, k in CASES[::3]:
        p = case_params(mode, shape, per_sample, k)
        rows, coef = p.pack()
        T = shape[1] if len(shape) == 3 else shape[2]
        assert rows.dtype == np.int32 and coef.dtype == np.float64
        assert (rows.shape[1], coef.shape[1]) == MixParams.packed_widths(mode, k, T)
        assert rows.shape[0] == coef.shape[0] == shape[0]
        q = MixParams.unpack(rows, coef, mode=mode, shape=shape)
        assert q == p
        assert MixParams.unpack(list(rows), list(coef), mode=mode, shape=shape) == p
        assert repr(q) == repr(p)
    p = draw((2, 3, 4, 5, 6), "spatial")
    with pytest.raises(ValueError, match="mode"):
        MixParams.unpack(*p.pack(), mode="temporal", shape=(2, 3, 4, 5, 6))
    assert MixParams.packed_widths("spatial", 2, 8) == (7 + 1 + 6, 2 + 1 + 2)
    assert MixParams.packed_widths("perframe", 2, 8) == (7 + 1 + 6 * 8, 2 + 8 + 2)
    assert MixParams.packed_widths("none", 2, 8) == (7, 1)


def test_params_are_frozen_and_readable():
    p = draw((3, 3, 4, 8, 8), "spatial")
    with pytest.raises(ValueError):
        p.boxes[0, 0, 0, 0] = 3
    with pytest.raises(AttributeError):
        p.mode = "temporal"
    text = repr(p)
    assert "mode='spatial'" in text and "weights self" in text and "t[0:4)" in text


# --------------------------------------------------------------------------- errors


def test_value_errors_name_the_argument():
    x = coded((4, 3, 2, 5, 5))
    y = np.arange(4)
    with pytest.raises(ValueError, match="mode"):
        VideoMix("cutmix")
    for alpha in (0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="alpha"):
            VideoMix(alpha=alpha)
    for prob in (-0.1, 1.5):
        with pytest.raises(ValueError, match="prob"):
            VideoMix(prob=prob)
    with pytest.raises(ValueError, match="num_videos"):
        VideoMix(num_videos=1)
    with pytest.raises(ValueError, match="num_videos"):
        VideoMix(num_videos=5, num_classes=4)(x, y)
    for eps in (1.0, -0.1):
        with pytest.raises(ValueError, match="label_smoothing"):
            VideoMix(label_smoothing=eps)
    with pytest.raises(ValueError, match="cutout_size"):
        VideoMix("cutout", cutout_size=(0, 5))
    with pytest.raises(ValueError, match="cutout_size"):
        VideoMix("spatial", cutout_size=(5, 5))
    mix = VideoMix(num_classes=4, seed=0)
    with pytest.raises(ValueError, match="x must be"):
        mix(x[:, :, 0], y)  # 4-D
    with pytest.raises(ValueError, match=r"channel-last"):
        mix(np.zeros((4, 8, 16, 16, 3), np.float32), y)
    with pytest.raises(ValueError, match="feature"):
        mix(np.zeros((4, 8, 16), np.float32), y)
    with pytest.raises(ValueError, match="shape"):
        mix.sample((4, 3, 5))
    with pytest.raises(ValueError, match="y holds 3"):
        mix(x, y[:3])
    with pytest.raises(ValueError, match="num_classes"):
        VideoMix(seed=0)(x, y)
    with pytest.raises(ValueError, match=r"y label values"):
        mix(x, np.array([0, 1, 2, 4]))
    with pytest.raises(ValueError, match=r"y label values"):
        mix(x, np.array([0, -1, 2, 3]))
    with pytest.raises(ValueError, match="num_classes"):
        mix(x, np.ones((4, 5), np.float32))
    with pytest.raises(ValueError, match="params were drawn"):
        mix.apply(x[:3], y[:3], mix.sample(x.shape))
    with pytest.raises(ValueError, match="seed"):
        VideoMix(seed=-1)


# --------------------------------------------------------------------------- torch, show


def test_torch_cpu_in_out():
    torch = pytest.importorskip("torch")
    mix = VideoMix("spatial", num_classes=5, seed=0)
    x = torch.arange(3 * 2 * 3 * 4 * 5, dtype=torch.float16).reshape(3, 2, 3, 4, 5)
    y = torch.tensor([0, 4, 2])
    p = mix.sample(tuple(x.shape))
    xo, ys = mix.apply(x, y, p)
    assert isinstance(xo, torch.Tensor) and xo.dtype == torch.float16 and xo.device == x.device
    assert isinstance(ys, torch.Tensor) and ys.dtype == torch.float32 and ys.shape == (3, 5)
    np.testing.assert_array_equal(xo.numpy(), apply_mix(x.numpy(), p))
    np.testing.assert_array_equal(ys.numpy(), mix_labels(y.numpy(), p, 5))
    frames = [torch.randint(0, 256, (3, 4, 5, 2), dtype=torch.uint8).numpy() for _ in range(3)]
    out = torch.empty((3, 2, 3, 4, 5), dtype=torch.float32)
    res = mix_normalize_batch(frames, p, MEAN[:2], STD[:2], out=out)
    assert res is out
    np.testing.assert_array_equal(out.numpy(), mix_normalize_batch(frames, p, MEAN[:2], STD[:2]))


def _png_size(path):
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    w, h = struct.unpack(">II", data[16:24])
    assert zlib.crc32(data[12:29]) == struct.unpack(">I", data[29:33])[0]
    return w, h


def test_render_mix_grid_png(tmp_path):
    pytest.importorskip("matplotlib")
    from videomix_dali.tools.show import grid_pixel_size, render_mix_grid

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (3, 3, 10, 24, 32), dtype=np.uint8)
    mix = VideoMix("spatial", num_classes=4, seed=1)
    p = mix.sample(x.shape)
    xo, ys = mix.apply(x, np.array([0, 1, 3]), p)
    path = tmp_path / "grid.png"
    render_mix_grid(xo, p, ys, ["a", "b", "c", "d"], path, max_frames=4)
    assert _png_size(path) == grid_pixel_size(3, 4, 24, 32)
    # frames list (T, H, W, C) and a float clip work too
    frames = [f.transpose(1, 2, 3, 0) for f in x]
    render_mix_grid(frames, p, ys, None, tmp_path / "g2.png")
    assert _png_size(tmp_path / "g2.png") == grid_pixel_size(3, 8, 24, 32)


def test_clips_of_one_video_are_never_each_others_partners():
    from videomix_dali.mix import VideoMix

    runs = np.arange(12) // 3  # four videos, three clips each, side by side
    for seed in range(50):
        p = VideoMix("spatial", num_videos=3, seed=seed).sample((12, 3, 4, 8, 8), siblings=3)
        assert (runs[p.partners] != runs[:, None]).all()
        assert all(len(set(row)) == 2 for row in p.partners)
        assert all(sorted(column) == list(range(12)) for column in p.partners.T)
    alone = VideoMix("spatial", seed=0).sample((2, 3, 4, 8, 8), siblings=2)
    assert not alone.applied.any() and (alone.weights == [1.0, 0.0]).all()
