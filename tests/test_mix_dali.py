"""The DALI-native CPU mix step equals the NumPy twin's fused path, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from nvidia.dali import fn, pipeline_def, types

from videomix_dali.graph.ops import apply_dali, dali_batch_size, dali_inputs, num_dali_inputs
from videomix_dali.mix import MODES, VideoMix, mix_normalize_batch

MEAN, STD = (123.675, 116.28, 103.53), (58.395, 57.12, 57.375)


def dali_mix(frames: list[np.ndarray], params, dtype) -> np.ndarray:
    inputs = dali_inputs(params)
    assert len(inputs) == num_dali_inputs(params.mode, params.num_videos)

    batch_size = dali_batch_size(params.mode, len(frames), len(frames[0]))

    @pipeline_def(batch_size=batch_size, num_threads=2, device_id=None)
    def pipe():
        video = fn.external_source(source=lambda: frames, batch=True, layout="FHWC")
        nodes = [fn.external_source(source=_constant(a), batch=True) for a in inputs]
        return apply_dali(video, nodes, params.mode, MEAN, STD, dtype)

    p = pipe()
    p.build()
    return np.stack([np.array(s) for s in p.run()[0]])


def _constant(batch: list[np.ndarray]):
    return lambda: batch


CASES = [
    (mode, per_sample, k, prob)
    for mode in MODES
    for per_sample in (False, True)
    for k in ((2, 3) if mode not in ("cutout", "none") else (2,))
    for prob in (1.0, 0.5)
]


@pytest.mark.parametrize(("mode", "per_sample", "k", "prob"), CASES)
def test_dali_mix_equals_the_twin(mode, per_sample, k, prob):
    rng = np.random.default_rng(len(mode) + k)
    N, T, H, W = 5, 4, 18, 22
    frames = [rng.integers(0, 256, (T, H, W, 3), dtype=np.uint8) for _ in range(N)]
    mix = VideoMix(mode, num_videos=k, per_sample=per_sample, prob=prob, seed=7)
    for step in range(3):
        params = mix.sample((N, 3, T, H, W), step=step)
        want = mix_normalize_batch(frames, params, MEAN, STD)
        got = dali_mix(frames, params, types.FLOAT)
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8), repr(params))
        # float16: the same, except that DALI rounds exact ties away from zero (twin: to even)
        want16 = mix_normalize_batch(frames, params, MEAN, STD, dtype=np.float16)
        got16 = dali_mix(frames, params, types.FLOAT16)
        differ = got16.view(np.uint16) != want16.view(np.uint16)
        exact = want.astype(np.float64)[differ]
        assert np.all(np.abs(got16[differ] - exact) == np.abs(want16[differ] - exact))
        assert np.all(np.abs(got16[differ]) > np.abs(want16[differ]))  # away from zero


def test_dali_inputs_refuse_feature_params():
    params = VideoMix("temporal", seed=0).sample((4, 6, 5))
    with pytest.raises(ValueError, match="not \\(N, T, D\\) features"):
        dali_inputs(params)
