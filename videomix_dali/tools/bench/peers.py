"""The loaders people use today, rebuilt on this project's clips: a map-style Dataset that
decodes a ``Clip``'s frames with PyAV, torchcodec or decord and applies torch transforms."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def _decode_window(container: Any, first: int, last: int) -> Iterator[tuple[int, Any]]:
    """(frame index, ``av.VideoFrame``) of ``container``'s first video stream, from the
    keyframe at or before frame ``first`` through frame ``last`` (or the end of the file).

    Seeks to ``first``'s timestamp (``backward=True``: the keyframe at or before it) and numbers
    frames by timestamp and the stream's average rate, as PyTorchVideo's PyAV decoder does;
    one decoder thread (the process pool or the DataLoader workers use the cores).
    """
    stream = container.streams.video[0]
    stream.codec_context.thread_count = 1
    rate, tb, t0 = stream.average_rate, stream.time_base, stream.start_time or 0
    if first > 0:
        container.seek(t0 + round(first / rate / tb), stream=stream, backward=True)
    for frame in container.decode(stream):
        index = round((frame.pts - t0) * tb * rate)
        yield index, frame
        if index >= last:
            return


def decode_pyav(path: str | Path, frames: Sequence[int]) -> np.ndarray:
    """Frames ``frames`` (indices in presentation order) of ``path`` as (T, H, W, 3) uint8 RGB.

    Seeks to the keyframe at or before the first wanted frame, decodes up to the last one and
    converts only the wanted ones; past the end the last frame repeats.
    """
    import av

    wanted = {int(i) for i in frames}
    got: dict[int, np.ndarray] = {}
    with av.open(str(path)) as container:
        frame = None
        for i, frame in _decode_window(container, min(wanted), max(wanted)):
            if i in wanted:
                got[i] = frame.to_ndarray(format="rgb24")
        if frame is None:
            raise RuntimeError(f"{path}: no video frame decoded")
        if len(got) < len(wanted):  # the file ends early: repeat its last frame
            tail = frame.to_ndarray(format="rgb24")
            got.update({i: tail for i in wanted if i not in got})
    return np.stack([got[int(i)] for i in frames])


def decode_only(jobs: Sequence[tuple[str, int, int]]) -> list[int]:
    """The decode-only limit's work for ``jobs`` of (path, first frame, last frame): decode
    each window as :func:`decode_pyav` does, without colour conversion; frames decoded per job.
    """
    import av

    counts = []
    for path, first, last in jobs:
        with av.open(path) as container:
            counts.append(sum(1 for _ in _decode_window(container, first, last)))
    return counts


def decode_torchcodec(device: str) -> Callable[[str | Path, Sequence[int]], Any]:
    """A decoder like :func:`decode_pyav` using torchcodec on ``device`` ("cpu" or "cuda")."""
    from torchcodec.decoders import VideoDecoder

    def decode(path, frames):
        decoder = VideoDecoder(str(path), device=device)
        n = len(decoder)
        idx = [min(int(i), n - 1) for i in frames]
        return decoder.get_frames_at(idx).data  # (T, C, H, W) uint8 torch

    return decode


def decode_decord(path: str | Path, frames: Sequence[int]) -> np.ndarray:
    import decord

    reader = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)
    idx = [min(int(i), len(reader) - 1) for i in frames]
    return reader.get_batch(idx).asnumpy()  # (T, H, W, C) uint8


def clip_transform(frames: Any, clip: Any, crop_size: int, mean: Any, std: Any) -> Any:
    """Torch transforms of the common baseline: (T, H, W, C) uint8 NumPy or (T, C, H, W) uint8
    torch frames -> (C, T, crop, crop) float32, normalised (0..255 mean / std).

    The window is the clip's ROI rounded to whole pixels (x reversed = flip), resized with
    ``interpolate(mode="bilinear")`` (no antialiasing, like the pipeline) when it is not already
    ``crop_size``.
    """
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(frames).permute(0, 3, 1, 2) if isinstance(frames, np.ndarray) else frames
    (y0, x0), (y1, x1) = clip.roi_start.tolist(), clip.roi_end.tolist()
    flip = x1 < x0
    x0, x1 = min(x0, x1), max(x0, x1)
    top, left = int(round(y0)), int(round(x0))
    bottom, right = max(int(round(y1)), top + 1), max(int(round(x1)), left + 1)
    x = x[:, :, top:bottom, left:right].float()
    if x.shape[-2:] != (crop_size, crop_size):
        x = F.interpolate(
            x, size=(crop_size, crop_size), mode="bilinear", antialias=False, align_corners=False
        )
    if flip:
        x = x.flip(-1)
    mean_t = torch.as_tensor(mean, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
    std_t = torch.as_tensor(std, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
    x = (x - mean_t) / std_t
    return x.permute(1, 0, 2, 3).contiguous()


class PeerClipDataset:
    """Map-style Dataset whose index is a ``Clip`` of the loader's own sampler: decodes
    ``entries[clip.item].path`` at ``clip.frames`` with ``decoder`` and applies
    :func:`clip_transform`. Returns (video (C, T, crop, crop) float32, label int)."""

    def __init__(
        self,
        paths: Sequence[str],
        labels: Sequence[int],
        decoder: Callable[[str | Path, Sequence[int]], Any],
        crop_size: int,
        mean: Sequence[float],
        std: Sequence[float],
    ) -> None:
        self.paths = list(paths)
        self.labels = list(labels)
        self.decoder = decoder
        self.crop_size = crop_size
        self.mean = list(mean)
        self.std = list(std)

    @classmethod
    def from_loader(cls, loader: Any, decoder: Callable | None = None) -> PeerClipDataset:
        r = loader.recipe
        return cls(
            [str(e.path) for e in loader.entries],
            [int(e.label) for e in loader.entries],
            decode_pyav if decoder is None else decoder,
            r.crop_size,
            r.mean,
            r.std,
        )

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, clip: Any) -> tuple[Any, int]:
        frames = self.decoder(self.paths[clip.item], clip.frames.tolist())
        video = clip_transform(frames, clip, self.crop_size, self.mean, self.std)
        return video, self.labels[clip.item]


class SamplerBatches:
    """``batch_sampler`` for torch's DataLoader: the ``ClipSampler``'s batches, epoch after
    epoch, forever (each index is a ``Clip``)."""

    def __init__(self, sampler: Any) -> None:
        self.sampler = sampler

    def __iter__(self) -> Iterator[list[Any]]:
        epoch = 0
        while True:
            for step in range(self.sampler.num_batches):
                yield self.sampler.batch(epoch, step)
            epoch += 1
