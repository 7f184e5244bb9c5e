"""ImageDataset: tensors, normalisation, flip with view swap, erasing, cache and bad files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import write_image
from PIL import Image

from vscr_core.data import DataError, Sample
from vscr_core.data.transforms import IMAGENET_MEAN, IMAGENET_STD, ImageDataset

LEFT, RIGHT = 2, 3  # in VIEW_NAMES[4]


def two_tone(path, size=(32, 16)):
    """Left half red, right half blue: shows whether an image was mirrored."""
    a = np.zeros((size[1], size[0], 3), np.uint8)
    a[:, : size[0] // 2, 0] = 255
    a[:, size[0] // 2 :, 2] = 255
    Image.fromarray(a).save(path)  # PNG: exact colours
    return str(path)


def test_eval_tensor_is_normalised(tmp_path):
    write_image(tmp_path / "a.jpg", size=(30, 20))
    rgb = np.asarray(Image.open(tmp_path / "a.jpg").convert("RGB"), np.float32)[10, 15] / 255
    ds = ImageDataset([Sample(str(tmp_path / "a.jpg"), 3, 7, 1)], image_size=(24, 12))
    img, pid, camid, view, index = ds[0]
    assert img.shape == (3, 24, 12) and img.dtype == torch.float32
    assert (pid, camid, view, index) == (3, 7, 1, 0)
    expected = (torch.tensor(rgb).view(3, 1, 1) - IMAGENET_MEAN) / IMAGENET_STD
    assert torch.allclose(img[:, 12, 6], expected.flatten(), atol=0.05)


def test_train_flip_swaps_left_and_right(tmp_path):
    ds = ImageDataset([Sample(two_tone(tmp_path / "t.png"), 0, view=LEFT)], image_size=(16, 32),
                      train=True, num_views=4)
    torch.manual_seed(0)
    views = []
    for _ in range(40):
        img, _, _, view, _ = ds[0]
        red_on_left = img[0, 8, 4] > img[2, 8, 4]
        # the label follows the pixels: mirrored -> red on the right and the view is 'right'
        assert (view == LEFT) == bool(red_on_left)
        views.append(view)
    assert set(views) == {LEFT, RIGHT}
    # without view labels the flip leaves the unknown view alone
    plain = ImageDataset([Sample(two_tone(tmp_path / "u.png"), 0)], (16, 32), train=True)
    assert {plain[0][3] for _ in range(10)} == {-1}


def test_train_crop_jitter_and_erasing_change_pixels(tmp_path):
    write_image(tmp_path / "a.jpg", size=(40, 40))
    ds = ImageDataset([Sample(str(tmp_path / "a.jpg"), 0)], (32, 32), train=True,
                      random_erasing=True)
    torch.manual_seed(0)
    imgs = torch.stack([ds[0][0] for _ in range(20)])
    assert imgs.std(0).max() > 0.5  # padding shifts and erased patches differ between draws
    evalset = ImageDataset(ds.samples, (32, 32))
    assert torch.equal(evalset[0][0], evalset[0][0])  # eval is deterministic


def test_cache_keeps_decoded_images(tmp_path):
    write_image(tmp_path / "a.jpg")
    ds = ImageDataset([Sample(str(tmp_path / "a.jpg"), 0)], (8, 8), cache=True)
    first = ds[0][0]
    (tmp_path / "a.jpg").unlink()  # served from memory now
    assert torch.equal(ds[0][0], first) and ds.cache[0].dtype == torch.uint8


def test_unreadable_images(tmp_path):
    write_image(tmp_path / "good.jpg", 1, size=(64, 64))
    data = (tmp_path / "good.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])  # truncated
    (tmp_path / "text.jpg").write_text("not an image")
    samples = [Sample(str(tmp_path / "cut.jpg"), 5), Sample(str(tmp_path / "other.jpg"), 6),
               Sample(str(tmp_path / "good.jpg"), 5), Sample(str(tmp_path / "text.jpg"), 6)]
    write_image(tmp_path / "other.jpg", 2)
    train = ImageDataset(samples, (8, 8), train=True)
    with pytest.warns(UserWarning, match=r"cut.jpg .*1 skipped so far"):
        img, pid, _, _, index = train[0]
    assert pid == 5 and index == 2  # another image of the same identity
    with pytest.warns(UserWarning, match=r"text.jpg .*2 skipped so far"):
        assert train[3][1] == 6
    assert train.num_bad == 2 and train.bad == {0, 3}
    evalset = ImageDataset(samples, (8, 8))
    with pytest.raises(DataError, match=r"cut.jpg: cannot read image"):
        evalset[0]
    with pytest.raises(DataError, match=r"missing.jpg: cannot read image"):
        ImageDataset([Sample(str(tmp_path / "missing.jpg"), 0)], (8, 8))[0]


def test_dataloader_batches(tmp_path, smoke_synth):
    from vscr_core.data import load_dataset

    ds = load_dataset("uav_veid", smoke_synth)
    loader = torch.utils.data.DataLoader(
        ImageDataset(ds.train[:16], (64, 64), train=True, num_views=4), batch_size=8)
    img, pid, camid, view, index = next(iter(loader))
    assert img.shape == (8, 3, 64, 64) and pid.shape == view.shape == (8,)
    assert (view >= 0).all() and (view < 4).all()
