"""PK batches: P identities x K images each (Sect. 5.2.2: P = 8, K = 4).

An epoch covers every training image about once: each identity's images are shuffled and cut into
chunks of K (an identity with fewer than K images, or a short last chunk, is filled by drawing its
images again), and batches take one chunk from each of P distinct identities until fewer than P
identities have chunks left. Under DDP every rank builds the same batch sequence from the same seed
and takes every world_size-th batch, so ranks never need to talk about sampling.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterator, Sequence

import torch


class PKBatchSampler(torch.utils.data.Sampler[list[int]]):
    def __init__(
        self,
        pids: Sequence[int],
        ids_per_batch: int,
        images_per_id: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ):
        self.by_pid: dict[int, list[int]] = defaultdict(list)
        for index, pid in enumerate(pids):
            self.by_pid[int(pid)].append(index)
        self.pid_list = sorted(self.by_pid)  # sorted: the same order in every process
        if len(self.pid_list) < ids_per_batch:
            raise ValueError(
                f"a PK batch needs P = {ids_per_batch} identities but the training set has "
                f"{len(self.pid_list)}; lower train.ids_per_batch or use more data"
            )
        self.P, self.K = ids_per_batch, images_per_id
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.epoch = 0
        self._cache: tuple[int, list[list[int]]] | None = None

    def set_epoch(self, epoch: int) -> None:
        """Each epoch draws its own batches, reproducibly from (seed, epoch)."""
        self.epoch = epoch

    def _all_batches(self) -> list[list[int]]:
        if self._cache is not None and self._cache[0] == self.epoch:
            return self._cache[1]
        rng = random.Random(self.seed * 100_003 + self.epoch)
        chunks: dict[int, list[list[int]]] = {}
        for pid in self.pid_list:
            order = rng.sample(self.by_pid[pid], len(self.by_pid[pid]))
            order += rng.choices(self.by_pid[pid], k=-len(order) % self.K)
            chunks[pid] = [order[i : i + self.K] for i in range(0, len(order), self.K)]
        ready = list(self.pid_list)  # identities with chunks left
        batches = []
        while len(ready) >= self.P:
            slots = sorted(rng.sample(range(len(ready)), self.P), reverse=True)
            batches.append([i for s in slots for i in chunks[ready[s]].pop()])
            for s in slots:  # descending, so swap-removal never moves a slot still to visit
                if not chunks[ready[s]]:
                    ready[s] = ready[-1]
                    ready.pop()
        self._cache = (self.epoch, batches)
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        batches = self._all_batches()
        usable = len(batches) - len(batches) % self.world_size  # equal step count on every rank
        yield from batches[self.rank : usable : self.world_size]

    def __len__(self) -> int:
        return len(self._all_batches()) // self.world_size
