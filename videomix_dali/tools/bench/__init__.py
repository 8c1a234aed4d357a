"""``videomix-dali bench``: loader throughput against the loaders people use today, side by side.

What is measured and how: the command's help, :mod:`videomix_dali.tools.bench.cli`.
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
