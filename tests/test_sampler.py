"""PK batches: P distinct identities x K images, reproducible, and split across DDP ranks."""

from collections import Counter

import pytest

from vscr_core.data.sampler import PKBatchSampler


def _pids():
    # identities with 1 to 9 images, in a scrambled order
    return [pid for pid in range(12) for _ in range(1 + pid % 9)][::-1]


def test_batches_hold_p_identities_with_k_images_each():
    pids = _pids()
    sampler = PKBatchSampler(pids, ids_per_batch=4, images_per_id=3, seed=1)
    batches = list(sampler)
    assert len(batches) == len(sampler) > 0
    for batch in batches:
        counts = Counter(pids[i] for i in batch)
        assert len(batch) == 12 and len(counts) == 4 and set(counts.values()) == {3}


def test_an_epoch_covers_every_image_and_is_reproducible():
    pids = _pids()
    sampler = PKBatchSampler(pids, ids_per_batch=2, images_per_id=2, seed=3)
    seen = {i for batch in sampler for i in batch}
    assert len(seen) >= 0.8 * len(pids)
    again = PKBatchSampler(pids, ids_per_batch=2, images_per_id=2, seed=3)
    assert list(again) == list(sampler)
    sampler.set_epoch(1)
    assert list(sampler) != list(again)


def test_ranks_take_disjoint_batches_of_the_same_sequence():
    pids = _pids()
    whole = list(PKBatchSampler(pids, 2, 2, seed=5))
    parts = [list(PKBatchSampler(pids, 2, 2, seed=5, rank=r, world_size=2)) for r in range(2)]
    assert len(parts[0]) == len(parts[1]) == len(whole) // 2
    assert parts[0] == whole[0 : 2 * len(parts[0]) : 2] and parts[1] == whole[1::2][: len(parts[1])]


def test_too_few_identities_is_refused():
    with pytest.raises(ValueError, match="P = 8 identities but the training set has 3"):
        PKBatchSampler([0, 0, 1, 1, 2, 2], ids_per_batch=8, images_per_id=2)
