"""``videomix-dali bench``: loader throughput against the loaders people use today, side by side.

Every loader is fed the same files, the same clips (frame indices, crop window, flip: all taken
from this project's seeded ``ClipSampler``), the same normalisation and the same mixing, and is
measured the same way: a warm-up, then a fixed duration of batches pulled by a consumer that does
nothing else. Reported per loader: clips/s, decoded frames/s (clips x T), batch time p50/p95,
CPU utilisation of the process tree (this process plus its children, e.g. DataLoader workers,
read from ``/proc``), peak RSS of the process tree (sampled from ``/proc`` by a thread) and,
on a GPU, the peak device memory in use.

Loaders:

* ``videomix-dali``: this project's DALI pipeline (``VideoLoader``), mixing off and on;
* ``pyav``: the common baseline, a torch ``DataLoader`` (``num_workers`` = cores) whose Dataset
  decodes the clip's frames with PyAV and applies torch transforms (crop the same window, resize
  with ``interpolate(bilinear, antialias=True)``, flip, normalise, NCTHW); the batch is mixed in
  the training loop by :func:`timm_style_mix`, a small timm-style function written here;
* ``torchcodec`` (CPU), ``torchcodec-cuda`` and ``decord``: the same Dataset with another
  decoder, each only where the package imports (otherwise listed as skipped, with the reason).

``--op`` times the mixing op alone against a plain copy of the same bytes (the memory-bound lower
bound) on the CPU, and with CuPy on the GPU where there is one.
"""

from .cli import add_bench_parser, main
from .machine import machine_info
from .measure import RESULT_FIELDS
from .model import build_bench_model, time_model_steps, tiny3d_net
from .op import run_op_bench
from .peers import PeerClipDataset, clip_transform, decode_pyav
from .procstats import ProcessTreeMonitor, process_tree, tree_cpu_seconds
from .run import run_bench
from .streams import LOADERS
from .timm_mix import timm_style_mix

__all__ = [
    "LOADERS",
    "RESULT_FIELDS",
    "PeerClipDataset",
    "ProcessTreeMonitor",
    "add_bench_parser",
    "build_bench_model",
    "clip_transform",
    "decode_pyav",
    "machine_info",
    "main",
    "process_tree",
    "run_bench",
    "run_op_bench",
    "time_model_steps",
    "timm_style_mix",
    "tiny3d_net",
    "tree_cpu_seconds",
]
