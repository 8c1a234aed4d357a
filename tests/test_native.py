"""The CPU crop/flip/resize plugin (kernels/crop_resize.cc via videomix_dali.graph.cpu_plugin)."""

import numpy as np
import pytest
from nvidia.dali import fn, pipeline_def, types

from videomix_dali.graph import cpu_plugin as native
from videomix_dali.graph.ops import PASTE_MODES, dali_inputs
from videomix_dali.graph.plan import GraphPlan
from videomix_dali.mix import VideoMix, mix_normalize_batch

MEAN, STD = (123.675, 116.28, 103.53), (58.395, 57.12, 57.375)


def run_both(clips, starts, ends, size, plugin=True):
    """(crop_resize outputs, fn.resize(antialias=False) outputs) of per-sample inputs."""
    plan = GraphPlan.choose("cpu", {"vp9"})
    assert plan.plugin == plugin  # this machine has a compiler and headers

    @pipeline_def(batch_size=len(clips), num_threads=2, device_id=None, exec_dynamic=True)
    def pipe():
        video, start, end = fn.external_source(
            source=lambda: (clips, starts, ends), num_outputs=3, batch=True,
            layout=["FHWC", "", ""],
        )  # fmt: skip
        return (
            native.crop_resize(video, start, end, size, "cpu", plan.plugin),
            fn.resize(video, roi_start=start, roi_end=end, roi_relative=False, size=list(size),
                      antialias=False),
        )  # fmt: skip

    p = pipe()
    p.build()
    ours, dalis = p.run()
    assert ours.layout() == "FHWC"
    return [np.asarray(t) for t in ours], [np.asarray(t) for t in dalis]


def constant(batch):
    return lambda: batch


def window(y0, x0, y1, x1):
    return np.array([y0, x0], np.float32), np.array([y1, x1], np.float32)


def test_identity_flip_and_hand_computed_bilinear():
    rng = np.random.default_rng(0)
    clip = rng.integers(0, 256, (3, 10, 14, 3), dtype=np.uint8)
    ramp = np.array([0, 100], np.uint8).reshape(1, 1, 2, 1).repeat(2, axis=1)  # (1, 2, 2, 1)
    windows = [window(0, 0, 10, 14), window(0, 14, 10, 0), window(0, 0, 2, 2)]
    (same, flipped, upscaled), _ = run_both(
        [clip, clip, ramp], [w[0] for w in windows], [w[1] for w in windows], (10, 14)
    )
    assert np.array_equal(same, clip)
    assert np.array_equal(flipped, clip[:, :, ::-1])
    # 2 -> 14 columns: output centre x + 0.5 sits at (x + 0.5) / 7 - 0.5 input pixels;
    # columns left of input pixel 0's centre and right of pixel 1's clamp to the edge
    s = (np.arange(14) + 0.5) / 7 - 0.5
    expected = np.floor(np.clip(s, 0, 1) * 100 + 0.5).astype(np.uint8)
    assert upscaled.shape == (1, 10, 14, 1)
    assert np.array_equal(upscaled[0, 3, :, 0], expected)


def test_matches_dali_resize_within_one_level():
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:64, 0:90]
    smooth = ((np.sin(yy / 5) + np.cos(xx / 7)) * 60 + 128).astype(np.uint8)
    clips = [
        rng.integers(0, 256, (4, 64, 90, 3), dtype=np.uint8),
        np.repeat(smooth[None, :, :, None], 3, axis=3).repeat(2, axis=0),
        rng.integers(0, 256, (2, 33, 17, 1), dtype=np.uint8),
    ]
    windows = [
        window(3.5, 80.25, 60.0, 10.0),  # downscale, flipped
        window(-4.0, 2.0, 20.0, 30.0),  # partly above the frame, upscaled
        window(0.0, 0.0, 33.0, 17.0),  # whole frame, other aspect
    ]
    ours, dalis = run_both(clips, [w[0] for w in windows], [w[1] for w in windows], (24, 40))
    for a, b, clip in zip(ours, dalis, clips, strict=True):
        assert a.shape == b.shape == (len(clip), 24, 40, clip.shape[-1])
        diff = np.abs(a.astype(int) - b.astype(int))
        assert diff.max() <= 1 and (diff > 0).mean() < 0.02  # float rounding of the blend


def test_without_the_plugin_the_graph_uses_dali_resize(monkeypatch):
    monkeypatch.setenv("CXX", "no-such-compiler")
    monkeypatch.setattr(native, "cache_dir", lambda: native.Path("/nonexistent"))
    with pytest.raises(RuntimeError, match="no C\\+\\+ compiler 'no-such-compiler'"):
        native._build()
    monkeypatch.setattr(native, "load_plugin", lambda: "no compiler")
    assert not GraphPlan.choose("cpu", {"vp9"}, "spatial").pastes_while_resizing
    clip = np.arange(2 * 6 * 8 * 3, dtype=np.uint8).reshape(2, 6, 8, 3)
    ours, dalis = run_both([clip], [np.zeros(2, np.float32)], [np.array([6, 8], np.float32)],
                           (3, 4), plugin=False)  # fmt: skip
    assert np.array_equal(ours[0], dalis[0])


@pytest.mark.parametrize("mode", [*PASTE_MODES, "none"])
@pytest.mark.parametrize("num_videos", [2, 3])
def test_pasting_and_normalising_while_resizing_equal_resizing_then_the_twin(mode, num_videos):
    rng = np.random.default_rng(num_videos)
    N, T, S = 4, 3, 20
    sizes = [(30, 40), (30, 40), (25, 44), (30, 40)]  # mixed resolutions within the batch
    clips = [rng.integers(0, 256, (T, h, w, 3), dtype=np.uint8) for h, w in sizes]
    starts = [np.array([1.5, 38.0], np.float32), np.array([0, 0], np.float32)] * 2
    ends = [np.array([29.0, 3.0], np.float32), np.array([12.0, 15.5], np.float32)] * 2
    mix = VideoMix(mode, num_videos=num_videos, per_sample=True, seed=5)
    params = mix.sample((N, 3, T, S, S), step=1)
    inputs = dali_inputs(params) if mode != "none" else ()
    plan = GraphPlan.choose("cpu", {"vp9"}, None if mode == "none" else mode, num_videos)
    assert plan.pastes_while_resizing == (mode != "none")

    @pipeline_def(batch_size=N, num_threads=2, device_id=None, exec_dynamic=True)
    def pipe():
        video, start, end = fn.external_source(
            source=lambda: (clips, starts, ends), num_outputs=3, batch=True,
            layout=["FHWC", "", ""],
        )  # fmt: skip
        pastes = [fn.external_source(source=constant(a), batch=True) for a in inputs]
        return native.crop_resize(video, start, end, (S, S), "cpu", True), *(
            native.crop_resize(video, start, end, (S, S), "cpu", True, pastes, (MEAN, STD, dtype))
            for dtype in (types.UINT8, types.FLOAT, types.FLOAT16)
        )

    p = pipe()
    p.build()
    resized, mixed, *normalized = p.run()
    assert mixed.layout() == "FHWC" and normalized[0].layout() == "CFHW"
    resized = [np.asarray(t) for t in resized]
    if mode != "none":
        assert any(not np.array_equal(np.asarray(a), b) for a, b in zip(mixed, resized))
    # the twin's paste + normalise (== DALI's crop_mirror_normalize in float32), float16
    # rounded to even as the twin and the GPU kernel do
    for got, dtype in zip(normalized, (np.float32, np.float16), strict=True):
        want = mix_normalize_batch(resized, params, MEAN, STD, dtype=dtype)
        got = np.stack([np.asarray(t) for t in got])
        assert got.dtype == dtype and got.shape == (N, 3, T, S, S)
        np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))
