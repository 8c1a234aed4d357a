"""The CUDA side of videomix_dali.mix, tested where no GPU is.

1. kernels/videomix.cuh built for the host with g++ (tests/host/videomix_host.cpp runs
   the very per-pixel functions the kernels call) agrees with the NumPy twin element
   by element: source maps, standalone pastes (uint8/float16/float32/float64), the
   fused normalise path (float32/float16) and the float16 conversions, bit for bit.
2. Where nvcc is on PATH, every kernel of kernels/videomix.cu (and the exact source
   string CuPy compiles) builds to PTX for sm_80 and sm_90.
3. ``gpu``-marked: CuPy kernels == NumPy twin bit for bit; torch CUDA in/out.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from videomix_dali.mix import MODES, VideoMix, apply_mix, mix_normalize_batch
from videomix_dali.mix.apply_cupy import kernel_dir, kernel_source
from videomix_dali.mix.apply_numpy import source_map

ROOT = Path(__file__).resolve().parents[1]
KERNELS = kernel_dir()
DRIVER = ROOT / "tests" / "host" / "videomix_host.cpp"
KERNEL_NAMES = [
    "vm_paste_u8",
    "vm_paste_f16",
    "vm_paste_f32",
    "vm_paste_f64",
    "vm_fused_f32",
    "vm_fused_f16",
]
DT_TAG = {np.uint8: "u8", np.float16: "f16", np.float32: "f32", np.float64: "f64"}
MEAN = np.array([123.675, 116.28, 103.53])
STD = np.array([58.395, 57.12, 57.375])


def test_kernel_files_ship_with_the_package():
    assert (KERNELS / "videomix.cuh").is_file() and (KERNELS / "videomix.cu").is_file()
    src = kernel_source()
    assert '#include "videomix.cuh"' not in src and "vm_fused_pixel" in src
    for name in KERNEL_NAMES:
        assert re.search(rf"VM_DEFINE_\w+\({name},", src), name


def test_mode_codes_match_header():
    from videomix_dali.mix.params import MODE_CODES

    header = (KERNELS / "videomix.cuh").read_text()
    for mode, code in MODE_CODES.items():
        assert re.search(rf"#define VM_{mode.upper()} {code}\b", header), mode


# --------------------------------------------------------------------------- host build


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    gxx = shutil.which("g++")
    if gxx is None:
        pytest.skip("g++ not on PATH")
    exe = tmp_path_factory.mktemp("host") / "videomix_host"
    cmd = [
        gxx,
        "-std=c++17",
        "-O1",
        "-ffp-contract=off",
        "-Wall",
        "-Wextra",
        f"-I{KERNELS}",
        str(DRIVER),
        "-o",
        str(exe),
    ]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return exe


def _run(exe, *args):
    return subprocess.run([str(exe), *map(str, args)], check=True, capture_output=True, text=True)


def _param_cases():
    shapes = [(1, 2, 3, 4, 5), (2, 3, 4, 5, 6), (3, 2, 5, 7, 9), (4, 1, 3, 1, 7), (3, 3, 1, 6, 1)]
    for mode in MODES:
        for shape in shapes:
            for per_sample in (False, True):
                ks = [2, 3] if shape[0] >= 3 and mode not in ("cutout", "none") else [2]
                for k in ks:
                    p = VideoMix(mode, seed=5, per_sample=per_sample, num_videos=k).sample(shape)
                    yield p
    for shape in [(3, 7, 4), (1, 5, 3)]:
        for mode in ("temporal", "mixup"):
            yield VideoMix(mode, seed=5, per_sample=True).sample(shape)


PARAMS = list(_param_cases())


def _fused_cases(seed: int):
    """(params, N random (T, H, W, C) uint8 clips, mean, std) for every clip case of PARAMS."""
    rng = np.random.default_rng(seed)
    for p in PARAMS:
        if p.is_features:
            continue
        N, C, T, H, W = p.shape
        frames = [rng.integers(0, 256, (T, H, W, C), dtype=np.uint8) for _ in range(N)]
        yield p, frames, np.resize(MEAN, C), np.resize(STD, C)


def _write_params(tmp, p):
    rows, coef = p.pack()
    rows.astype(np.int32).tofile(tmp / "rows.i32")
    coef.astype(np.float64).tofile(tmp / "coef.f64")


def test_host_source_map_matches_numpy(host, tmp_path):
    for p in PARAMS:
        _write_params(tmp_path, p)
        T, H, W = p.dims
        res = _run(host, "source", p.mode_code, p.batch_size, T, H, W, tmp_path / "rows.i32")
        got = np.array(res.stdout.split(), dtype=np.int64).reshape(p.batch_size, T, H, W)
        np.testing.assert_array_equal(got, source_map(p), err_msg=repr(p))


@pytest.mark.parametrize("dtype", [np.uint8, np.float16, np.float32, np.float64])
def test_host_paste_matches_numpy(host, tmp_path, dtype):
    rng = np.random.default_rng(1)
    for p in PARAMS[::2]:
        if dtype == np.uint8:
            x = rng.integers(0, 256, p.shape).astype(np.uint8)
        else:
            x = (rng.normal(size=p.shape) * 100).astype(dtype)
        _write_params(tmp_path, p)
        x.tofile(tmp_path / "x.bin")
        T, H, W = p.dims
        C = x.size // (p.batch_size * T * H * W)
        _run(
            host,
            "paste",
            DT_TAG[dtype],
            p.mode_code,
            p.batch_size,
            C,
            T,
            H,
            W,
            tmp_path / "rows.i32",
            tmp_path / "coef.f64",
            tmp_path / "x.bin",
            tmp_path / "o.bin",
        )
        got = np.fromfile(tmp_path / "o.bin", dtype=dtype).reshape(p.shape)
        want = apply_mix(x, p)
        np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8), err_msg=repr(p))


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_host_fused_matches_numpy(host, tmp_path, dtype):
    for p, frames, mean, std in _fused_cases(seed=2):
        N, C, T, H, W = p.shape
        _write_params(tmp_path, p)
        np.stack(frames).tofile(tmp_path / "frames.u8")
        mean.astype(np.float32).tofile(tmp_path / "mean.f32")
        (np.float32(1) / std.astype(np.float32)).tofile(tmp_path / "std.f32")  # 1 / std
        _run(
            host,
            "fused",
            DT_TAG[dtype],
            p.mode_code,
            N,
            C,
            T,
            H,
            W,
            tmp_path / "rows.i32",
            tmp_path / "coef.f64",
            tmp_path / "frames.u8",
            tmp_path / "mean.f32",
            tmp_path / "std.f32",
            tmp_path / "o.bin",
        )
        got = np.fromfile(tmp_path / "o.bin", dtype=dtype).reshape(N, C, T, H, W)
        want = mix_normalize_batch(frames, p, mean, std, dtype=dtype)
        np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8), err_msg=repr(p))


def test_host_half_conversions_match_numpy(host, tmp_path):
    rng = np.random.default_rng(0)
    edges = [0x33000000, 0x387FF000, 0x38800000, 0x477FF000, 0x7F800000]
    bits = [rng.integers(0, 2**32, 200_000, dtype=np.uint64).astype(np.uint32)]
    bits += [np.arange(e - 300, e + 300, dtype=np.uint32) for e in edges]
    halves = np.arange(65536, dtype=np.uint32) << 13
    bits += [halves, halves | 0x1000, halves | 0x0FFF, halves | 0x1001]  # ties and neighbours
    bits = np.concatenate(bits)
    bits = np.concatenate([bits, bits | np.uint32(0x80000000)])
    f = bits.view(np.float32)
    f.tofile(tmp_path / "in.f32")
    _run(host, "f2h", tmp_path / "in.f32", tmp_path / "out.u16")
    with np.errstate(all="ignore"):
        want = f.astype(np.float16).view(np.uint16)
    np.testing.assert_array_equal(np.fromfile(tmp_path / "out.u16", np.uint16), want)
    _run(host, "h2f", tmp_path / "h2f.f32")
    want = np.arange(65536, dtype=np.uint16).view(np.float16).astype(np.float32).view(np.uint32)
    np.testing.assert_array_equal(np.fromfile(tmp_path / "h2f.f32", np.uint32), want)


# --------------------------------------------------------------------------- nvcc PTX


def test_kernels_compile_to_ptx(tmp_path):
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc not on PATH")
    (tmp_path / "cupy_source.cu").write_text(kernel_source())  # what CuPy hands NVRTC
    jobs = []
    for arch, src in [
        ("sm_80", KERNELS / "videomix.cu"),
        ("sm_90", KERNELS / "videomix.cu"),
        ("sm_80", tmp_path / "cupy_source.cu"),
    ]:
        out = tmp_path / f"{src.stem}_{arch}.ptx"
        cmd = [
            nvcc,
            "--ptx",
            f"-arch={arch}",
            "--fmad=false",
            "-ftz=true",  # CuPy adds it to every compile
            f"-I{KERNELS}",
            str(src),
            "-o",
            str(out),
        ]
        jobs.append((out, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)))
    for out, proc in jobs:
        log, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, log.decode()
        ptx = out.read_text()
        entries = set(re.findall(r"\.visible \.entry (\w+)\(", ptx))
        assert entries == set(KERNEL_NAMES), (out.name, entries)
        assert "fma.rn.f32" not in ptx  # no contraction: bit-identical to the NumPy twin
        assert ".ftz" not in ptx  # subnormals kept under -ftz=true, as NumPy keeps them


def test_cupy_source_compiles_with_nvrtc():
    """Where CuPy finds libnvrtc (no GPU needed): the exact string and options CuPy uses."""
    try:
        from cupy_backends.cuda.libs import nvrtc

        nvrtc.getVersion()
    except Exception as e:  # no cupy, or no libnvrtc on this machine
        pytest.skip(f"NVRTC not available: {e}")
    from videomix_dali.mix.apply_cupy import CUPY_OPTIONS, NVRTC_OPTIONS

    for arch in ("80", "90"):
        prog = nvrtc.createProgram(kernel_source(), "videomix.cu", [], [])
        opts = [*NVRTC_OPTIONS, *CUPY_OPTIONS, f"-arch=compute_{arch}"]
        try:
            nvrtc.compileProgram(prog, opts)
        except Exception:
            pytest.fail(nvrtc.getProgramLog(prog))
        ptx = nvrtc.getPTX(prog)
        ptx = ptx.decode() if isinstance(ptx, bytes) else ptx
        nvrtc.destroyProgram(prog)
        assert set(re.findall(r"\.visible \.entry (\w+)\(", ptx)) == set(KERNEL_NAMES)
        assert ".ftz" not in ptx and "fma.rn.f32" not in ptx


# --------------------------------------------------------------------------- GPU


def _gpu_count():
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount()
    except Exception:
        return 0


requires_gpu = pytest.mark.skipif(_gpu_count() == 0, reason="no CUDA device")


@pytest.mark.gpu
@requires_gpu
@pytest.mark.parametrize("dtype", [np.uint8, np.float16, np.float32, np.float64])
def test_gpu_paste_bit_identical(dtype):
    import cupy as cp

    rng = np.random.default_rng(4)
    for p in PARAMS:
        if dtype == np.uint8:
            x = rng.integers(0, 256, p.shape).astype(np.uint8)
        else:
            x = (rng.normal(size=p.shape) * 100).astype(dtype)
        got = apply_mix(cp.asarray(x), p)
        assert isinstance(got, cp.ndarray) and got.dtype == dtype
        want = apply_mix(x, p)
        np.testing.assert_array_equal(cp.asnumpy(got).view(np.uint8), want.view(np.uint8))


@pytest.mark.gpu
@requires_gpu
def test_gpu_mixup_keeps_subnormals():
    """CuPy compiles with -ftz=true; the kernels must still keep float32 subnormals."""
    import cupy as cp

    rng = np.random.default_rng(6)
    tiny = np.float32(np.finfo(np.float32).smallest_normal)
    for shape in [(4, 3, 2, 5, 6), (4, 7, 5)]:
        x = (rng.uniform(-4, 4, shape) * tiny).astype(np.float32)  # mostly subnormal
        p = VideoMix("mixup", seed=1, per_sample=True).sample(shape)
        got = cp.asnumpy(apply_mix(cp.asarray(x), p))
        want = apply_mix(x, p)
        assert np.count_nonzero(want) > want.size // 2
        np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


@pytest.mark.gpu
@requires_gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_gpu_fused_bit_identical(dtype):
    import cupy as cp

    for p, frames, mean, std in _fused_cases(seed=5):
        gframes = [cp.asarray(f) for f in frames]  # separate allocations
        got = mix_normalize_batch(gframes, p, mean, std, dtype=dtype)
        assert isinstance(got, cp.ndarray) and got.dtype == dtype
        want = mix_normalize_batch(frames, p, mean, std, dtype=dtype)
        np.testing.assert_array_equal(cp.asnumpy(got).view(np.uint8), want.view(np.uint8))


@pytest.mark.gpu
@requires_gpu
def test_gpu_large_batch_and_views():
    import cupy as cp

    mix = VideoMix("spatial", seed=0, per_sample=True)
    p = mix.sample((8, 3, 8, 112, 112))
    rng = np.random.default_rng(6)
    frames = [rng.integers(0, 256, (8, 112, 112, 3), dtype=np.uint8) for _ in range(8)]
    big = cp.asarray(np.stack(frames))
    gframes = [big[i] for i in range(8)]  # views of one allocation
    out = cp.full((8, 3, 8, 112, 112), cp.nan, dtype=cp.float32)
    res = mix_normalize_batch(gframes, p, MEAN, STD, out=out)
    assert res is out
    want = mix_normalize_batch(frames, p, MEAN, STD)
    np.testing.assert_array_equal(cp.asnumpy(out), want)


@pytest.mark.gpu
@requires_gpu
def test_torch_cuda_in_out():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA")
    mix = VideoMix("spatial", num_classes=5, seed=0, per_sample=True)
    x = torch.randn(4, 3, 4, 16, 16, device="cuda", dtype=torch.float16)
    y = torch.tensor([0, 1, 2, 4], device="cuda")
    p = mix.sample(tuple(x.shape))
    xo, ys = mix.apply(x, y, p)
    assert xo.is_cuda and xo.dtype == torch.float16 and xo.shape == x.shape
    assert ys.is_cuda and ys.dtype == torch.float32 and ys.shape == (4, 5)
    want_x, want_y = mix.apply(x.cpu(), y.cpu(), p)
    assert torch.equal(xo.cpu(), want_x) and torch.equal(ys.cpu(), want_y)
    # fused path writing into torch-owned memory
    frames = [
        torch.randint(0, 256, (4, 16, 16, 3), dtype=torch.uint8, device="cuda") for _ in range(4)
    ]
    import cupy as cp

    out = torch.empty((4, 3, 4, 16, 16), device="cuda", dtype=torch.float32)
    ptr = out.data_ptr()
    res = mix_normalize_batch([cp.from_dlpack(f) for f in frames], p, MEAN, STD, out=out)
    assert res is out and out.data_ptr() == ptr
    want = mix_normalize_batch([f.cpu().numpy() for f in frames], p, MEAN, STD)
    np.testing.assert_array_equal(out.cpu().numpy(), want)
