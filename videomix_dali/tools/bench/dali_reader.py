"""The ``dali-reader`` peer: what NVIDIA's DALI video examples teach.

``fn.experimental.readers.video`` reads the files from disk (it builds a frame index and seeks
to keyframes), then ``fn.random_resized_crop`` and ``fn.crop_mirror_normalize`` (random flip,
the recipe's mean/std, NCTHW float32), handed to torch by ``DALIGenericIterator``. The reader
draws its own clips (every ``sequence_length`` x ``stride`` window of each file, shuffled in a
buffer of ``initial_fill`` sequences), not the ``ClipSampler``'s; mixing happens in the
training loop.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def dali_reader_batches(loader: Any, cfg: dict[str, Any]) -> Iterator[tuple[Any, Any]]:
    """Endless (video (N, C, T, crop, crop) float32, label (N,) int64) batches over the files
    of ``loader`` (a ``VideoLoader``) with its recipe's clip and crop settings; ``cfg`` gives
    the device, threads and seed of the bench."""
    from nvidia.dali import fn, pipeline_def, types
    from nvidia.dali.plugin.base_iterator import LastBatchPolicy
    from nvidia.dali.plugin.pytorch import DALIGenericIterator

    r = loader.recipe
    gpu = cfg["device"] == "gpu"
    device = "gpu" if gpu else "cpu"

    @pipeline_def(
        batch_size=r.batch_size,
        num_threads=cfg["threads"],
        device_id=0 if gpu else None,
        seed=cfg["seed"],
    )
    def reader_pipeline():
        video, label = fn.experimental.readers.video(
            device=device,
            filenames=[str(e.path) for e in loader.entries],
            labels=[int(e.label) for e in loader.entries],
            sequence_length=r.num_frames,
            stride=r.stride,
            random_shuffle=True,
            initial_fill=2 * r.batch_size,
            name="Reader",
        )
        video = fn.random_resized_crop(
            video,
            device=device,
            size=[r.crop_size, r.crop_size],
            random_area=list(r.scale),
            random_aspect_ratio=list(r.ratio),
            antialias=False,  # as the pipeline resizes
        )
        video = fn.crop_mirror_normalize(
            video,
            device=device,
            dtype=types.FLOAT,
            output_layout="CFHW",
            mean=list(r.mean),
            std=list(r.std),
            mirror=fn.random.coin_flip() if r.flip else 0,
        )
        return video, label

    pipe = reader_pipeline()
    pipe.build()
    batches = DALIGenericIterator(
        pipe,
        ["video", "label"],
        reader_name="Reader",
        last_batch_policy=LastBatchPolicy.DROP,
        auto_reset=True,
    )
    while True:
        for (out,) in batches:
            yield out["video"], out["label"].view(-1).long()
