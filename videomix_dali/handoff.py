"""DALI -> PyTorch without a copy (DLPack), safe for as long as torch uses the memory."""

from __future__ import annotations

import weakref
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from nvidia.dali.backend import TensorListCPU, TensorListGPU

# (event, owner) of GPU batches whose torch tensor is gone: ``owner`` (the DALI tensor that
# backs the memory) is dropped once ``event`` -- recorded on the consumer's stream when the
# tensor died -- has completed, i.e. once every kernel torch queued on the memory is done.
_retired: deque[tuple[Any, Any]] = deque()


def to_torch(batch: TensorListCPU | TensorListGPU) -> torch.Tensor:
    """Wrap a dense DALI batch as one torch tensor sharing its memory (CPU or CUDA).

    The pipeline runs with the dynamic executor, whose outputs stay valid for as long as a
    reference to them is held. The DLPack export makes torch's current stream wait for
    DALI's work; for the way back, a CUDA batch's memory returns to DALI only after the
    tensor (and every view of it) is gone *and* the work torch queued on it has finished,
    so DALI never overwrites a buffer a slow consumer kernel is still reading.
    """
    tensor = batch.as_tensor()
    out = torch.from_dlpack(tensor)
    if out.is_cuda:
        release_finished()
        device = out.device.index
        keep_until_consumed(out, tensor, lambda: _record_event(device))
    return out


def keep_until_consumed(t: torch.Tensor, owner: Any, record_event: Callable[[], Any]) -> None:
    """Hold ``owner`` (what backs ``t``'s memory) until ``t`` is gone and its work is done.

    When the last reference to ``t`` dies (a view keeps its base alive), ``record_event()``
    is called on the spot and must return an object with ``query() -> bool``; ``owner`` is
    released by the first :func:`release_finished` after that event has completed.
    """
    weakref.finalize(t, _retire, owner, record_event).atexit = False


def release_finished() -> int:
    """Drop the owners whose consumer work has finished; return how many are still held."""
    while _retired and _retired[0][0].query():
        _retired.popleft()
    return len(_retired)


def _retire(owner: Any, record_event: Callable[[], Any]) -> None:
    _retired.append((record_event(), owner))


def _record_event(device: int) -> torch.cuda.Event:
    event = torch.cuda.Event()
    event.record(torch.cuda.current_stream(device))
    return event
