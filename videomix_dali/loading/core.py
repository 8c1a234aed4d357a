"""What both loaders share: where a loader stands (epoch, step), its live loop, its state, and
the checks of the arguments they share."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..checks import checked_int
from ..runtime import rank_and_world_size
from ..sampling import EpochSampler

#: Most batches DALI may prepare ahead: it prepares all of them before it returns the first,
#: and holds each in memory (2 to 4 hide the decode time's jitter).
MAX_PREFETCH = 16


def resolve_shards(shard_id: int | None, num_shards: int | None) -> tuple[int, int]:
    """(shard_id, num_shards): both given, or both None for ``torch.distributed``'s rank and
    world size (0 and 1 without a process group); ValueError otherwise."""
    if shard_id is None and num_shards is None:
        return rank_and_world_size()
    if shard_id is None or num_shards is None:
        raise ValueError("shard_id and num_shards must be given together")
    if num_shards < 1 or not 0 <= shard_id < num_shards:
        raise ValueError(f"shard_id={shard_id} must be in [0, num_shards={num_shards})")
    return shard_id, num_shards


def checked_prefetch(prefetch: Any) -> int:
    """``prefetch`` as an int in [1, MAX_PREFETCH]; ValueError naming it otherwise."""
    checked_int("prefetch", prefetch, 1)
    if prefetch > MAX_PREFETCH:
        raise ValueError(
            f"prefetch={prefetch} must be <= {MAX_PREFETCH}: DALI prepares every prefetched "
            "batch before it returns the first one and holds each in memory"
        )
    return int(prefetch)


class LoaderPosition:
    """Where a loader over a seeded sampler stands: the next batch to be yielded.

    ``epoch``, ``step`` and ``seed`` fix every later batch, so saving them resumes exactly;
    :meth:`positions` is the endless (epoch, step) stream a host source feeds its pipeline
    from. Subclasses define ``__len__`` (batches per epoch), build their pipeline anew where
    ``_pipe`` is None, and run their loops through :meth:`_new_loop` / :meth:`_check_loop`:
    one loop is live at a time.
    """

    epoch: int
    step: int
    seed: int
    sampler: EpochSampler
    _pipe: Any
    _loop: int = 0  # id of the live loop: a new iter() or load_state_dict() ends the others

    def __len__(self) -> int:
        raise NotImplementedError

    def positions(self) -> Iterator[tuple[int, int]]:
        """(epoch, step) of every batch from the current position on, epoch after epoch."""
        epoch, step = self.epoch, self.step
        while True:
            yield epoch, step
            step += 1
            if step == len(self):
                epoch, step = epoch + 1, 0

    def _new_loop(self) -> int:
        """Start a loop (``iter()``): the loops started before it end."""
        self._loop += 1
        return self._loop

    def _check_loop(self, loop: int) -> None:
        """RuntimeError where ``loop`` is no longer the live one."""
        if loop != self._loop:
            raise RuntimeError(
                "this iterator over the loader was ended by a later iter() or load_state_dict(); "
                "iterate the loader again (one loop at a time continues from its position)"
            )

    def _depends_on(self) -> dict[str, Any]:
        """What a position means something only with: the seed and the sampler's layout."""
        s = self.sampler
        return {
            "seed": self.seed,
            "batch_size": s.batch_size,
            "num_shards": s.num_shards,
            "num_items": s.num_items,
        }

    def state_dict(self) -> dict[str, Any]:
        """Position of the consumer (the next batch to be yielded) and what it depends on."""
        return {"epoch": self.epoch, "step": self.step, **self._depends_on()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state``: the next batches equal those of an uninterrupted run.

        ValueError where ``state`` was saved by a loader of another seed, batch size, shard
        count or index; a loop running over this loader ends (see :meth:`_check_loop`).
        """
        for key, value in self._depends_on().items():
            if key not in state:
                raise ValueError(f"the state has no {key!r} (an older layout?): cannot resume")
            if state[key] != value:
                raise ValueError(
                    f"the state was saved with {key}={state[key]!r} but this loader has "
                    f"{key}={value!r}: its position would point at other clips"
                )
        if not 0 <= state["step"] < len(self):
            raise ValueError(f"state step {state['step']} outside 0..{len(self) - 1}")
        self.epoch, self.step = state["epoch"], state["step"]
        self._pipe = None
        self._new_loop()
