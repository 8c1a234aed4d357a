"""``videomix-dali bench``: loader throughput against the loaders people use today, side by side.

The data: by default the Kinetics-like bench corpus (``videomix-dali bench-data``: 340x256,
30 fps, 300 frames, a keyframe every 150), made under ``--bench-root`` if absent; ``--data demo``
reads the tiny demo clips instead (a second, separate table), ``--data PATH`` any folder or index.

Every loader is fed the same files, the same clips (frame indices, crop window, flip: all taken
from this project's seeded ``ClipSampler``; ``dali-reader`` draws its own), the same
normalisation and the same mixing, and is measured the same way: a warm-up, then a fixed
duration of batches pulled by a consumer that does nothing else. The rows run in ``--rounds``
interleaved rounds (every row once per round), so that a change in the machine's load hits all
of them. Reported per row: clips/s, its ratio to the ``pyav`` row and its share of the
decode-only limit, decoded frames/s (clips x T), batch time p50/p95, CPU utilisation of the
process tree (this process plus its children, e.g. DataLoader workers, read from ``/proc``),
peak RSS of the process tree (sampled from ``/proc`` by a thread) and, on a GPU, the peak
device memory in use.

Rows (``--loaders``):

* ``decode-limit``: the decode-only limit (CPU only), a process per core decoding with PyAV
  only the frames each clip needs (seek to the keyframe at or before it, decode to its last
  frame, no colour conversion, no batch); what any CPU loader can at best reach here;
* ``pyav``: the common baseline written well, a torch ``DataLoader`` (``num_workers`` = cores)
  whose Dataset seeks to the keyframe at or before the clip, decodes to its last frame with
  PyAV and applies torch transforms (crop the same window, resize with
  ``interpolate(bilinear)`` without antialiasing as every row does, flip, normalise, NCTHW);
  the batch is mixed in the training loop by :func:`timm_style_mix`, a small timm-style
  function written here;
* ``torchcodec`` (CPU), ``torchcodec-cuda`` and ``decord`` (``pip install
  'videomix-dali[bench]'``): the same Dataset with another decoder, each only where the
  package imports (otherwise listed as skipped, with the reason);
* ``dali-reader``: what NVIDIA's DALI examples teach, ``fn.experimental.readers.video`` +
  ``fn.random_resized_crop`` + ``fn.crop_mirror_normalize``, mixed in the training loop;
* ``videomix-dali``: this project's DALI pipeline (``VideoLoader``), mixing off and on (inside
  the pipeline); with ``--clips-per-video K``, also ``videomix-dali k=K views`` and ``... k=K
  windows``: K clips from each decoded video (``clips_per_video``), the summary giving their
  clips/s over ours' with one.

``--positions`` times a window at frame 0 against one in the last frames of each video
(through index sub-ranges): with keyframe-aligned input a clip's cost should follow the clip,
not its position in the file.

``--op`` times the mixing op alone against a plain copy of the same bytes (the memory-bound lower
bound) on the CPU, and with CuPy on the GPU where there is one.

The command line: ``videomix-dali bench`` and ``python -m videomix_dali.tools.bench``.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..argtypes import positive_int, seconds
from .model import ModelFactory
from .op import run_op_bench
from .run import run_bench
from .streams import LOADERS

#: the default ``--model-factory``: the training app's models, importable when the command runs
#: from the repository root. Named as a string and imported only on demand, so the library
#: has no import of the app and works without it (``tiny3d`` only).
APP_MODEL_FACTORY = "train.models:build_model"


def load_model_factory(spec: str) -> ModelFactory | None:
    """The ``MODULE:FUNCTION`` factory ``spec``; None where ``MODULE`` is not importable."""
    module, _, name = spec.partition(":")
    if not module or not name:
        raise ValueError(f"--model-factory {spec!r} must be MODULE:FUNCTION")
    try:
        factory = getattr(importlib.import_module(module), name)
    except ImportError:
        return None
    except AttributeError:
        raise ValueError(f"--model-factory {spec!r}: {module} has no {name}") from None
    return factory


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data",
        default="bench",
        help="'bench' (the Kinetics-like corpus, default), 'demo' (the tiny demo clips) or a "
        "folder / index file",
    )
    p.add_argument("--bench-root", default="data/bench", help="where the bench corpus lives")
    p.add_argument("--demo-root", default="data/demo", help="where the demo dataset lives")
    p.add_argument("--recipe", default="demo")
    p.add_argument("--device", default="cpu", choices=["cpu", "gpu"])
    p.add_argument("--batch-size", type=positive_int, help="default: the recipe's")
    p.add_argument("--frames", type=positive_int, help="frames per clip T (recipe's)")
    p.add_argument("--stride", type=positive_int, help="frame stride tau (recipe's)")
    p.add_argument("--crop", type=positive_int, help="output size (recipe's crop_size)")
    p.add_argument("--mix", default="spatial", help="mode of the mixed rows ('none': no rows)")
    p.add_argument("--duration", type=seconds, default=20.0, help="measured seconds per row")
    p.add_argument("--warmup", type=seconds, default=5.0, help="warm-up seconds per row+round")
    p.add_argument(
        "--rounds", type=positive_int, default=3, help="interleaved rounds sharing --duration"
    )
    p.add_argument(
        "--loaders",
        default=",".join(LOADERS),
        help=f"comma-separated subset of {','.join(LOADERS)} (default: all)",
    )
    p.add_argument("--workers", type=positive_int, help="DataLoader workers (default: cores)")
    p.add_argument("--threads", type=positive_int, help="DALI threads (default: cores)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", help="GPU only: also time training steps (tiny3d, slowonly50, ...)")
    p.add_argument(
        "--model-factory",
        default=APP_MODEL_FACTORY,
        help="MODULE:FUNCTION(name, num_classes) building --model (default: the training app's)",
    )
    p.add_argument("--json", dest="json_path", help="write the report as JSON here")
    p.add_argument("--plot", dest="plot_path", help="write a PNG bar chart here")
    p.add_argument("--op", action="store_true", help="micro-benchmark the mix op instead")
    p.add_argument(
        "--positions",
        action="store_true",
        help="instead: decode time of a window at frame 0 vs one in the last frames of each "
        "video (the corpus' 10-s and 30-s videos, or --data)",
    )
    p.add_argument("--op-repeats", type=positive_int, default=20)
    p.add_argument(
        "--clips-per-video",
        type=positive_int,
        default=1,
        help="K > 1: also rows of ours taking K clips per decoded video (views, windows)",
    )


def cmd_bench(args: argparse.Namespace) -> dict[str, Any]:
    if args.positions:
        import tempfile

        from ...recipes import load_recipe
        from .machine import cpu_cores
        from .position import run_positions

        r = load_recipe(args.recipe).replace(
            num_frames=args.frames, stride=args.stride, crop_size=args.crop
        )
        with tempfile.TemporaryDirectory(prefix="videomix-positions-") as work:
            return run_positions(
                args.data,
                bench_root=args.bench_root,
                work=Path(work),
                num_frames=r.num_frames,
                stride=r.stride,
                crop=r.crop_size,
                rounds=args.rounds,
                threads=args.threads or cpu_cores(),
                json_path=args.json_path,
            )
    if args.op:
        from ...recipes import load_recipe

        r = load_recipe(args.recipe).replace(
            batch_size=args.batch_size, num_frames=args.frames, crop_size=args.crop
        )
        shape = (r.batch_size, 3, r.num_frames, r.crop_size, r.crop_size)
        return run_op_bench(
            shape,
            mode=args.mix if args.mix != "none" else "spatial",
            repeats=args.op_repeats,
            seed=args.seed,
            mean=r.mean,
            std=r.std,
            gpu=True if args.device == "gpu" else None,
            json_path=args.json_path,
        )
    return run_bench(
        args.data,
        recipe=args.recipe,
        device=args.device,
        batch_size=args.batch_size,
        frames=args.frames,
        stride=args.stride,
        crop=args.crop,
        mix=args.mix,
        duration=args.duration,
        warmup=args.warmup,
        rounds=args.rounds,
        loaders=args.loaders,
        workers=args.workers,
        threads=args.threads,
        seed=args.seed,
        model=args.model,
        model_factory=(
            load_model_factory(args.model_factory) if args.model not in (None, "tiny3d") else None
        ),
        json_path=args.json_path,
        plot_path=args.plot_path,
        demo_root=args.demo_root,
        bench_root=args.bench_root,
        clips_per_video=args.clips_per_video,
    )


def add_bench_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``bench`` to an argparse ``subparsers`` object (its ``func`` runs the bench)."""
    p = subparsers.add_parser(
        "bench",
        help="loader throughput vs PyAV/decord/torchcodec/DALI-reader peers and the decode-only "
        "limit (or --op: the mix op)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_arguments(p)
    p.set_defaults(func=cmd_bench)
    return p


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m videomix_dali.tools.bench", description=__doc__
    )
    _add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        cmd_bench(args)
    except ValueError as exc:
        raise SystemExit(f"videomix-dali bench: error: {exc}") from exc
