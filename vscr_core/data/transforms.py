"""Images as tensors: decoding, resizing, the training augmentation, and bad files.

ImageDataset(samples)[i] -> (image (3, H, W) float, ImageNet-normalised; pid; camid; view; i)

Training augmentation (the usual ReID recipe, Sect. 5.2.2): random horizontal flip, which swaps
the left and right view labels; zero-pad by 1/16 of the size and crop back at a random place;
optional random erasing (Zhong et al. 2020; the paper uses it off UAV-VeID). Randomness comes
from torch's generator, so DataLoader worker seeding makes it reproducible.

Unreadable or truncated files: at train time the image is replaced by a readable image of the
same identity (the next one in sample order; another identity's only if it has none), with a
warning naming the file, and counted in `num_bad`; at eval time a DataError names the file.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
from PIL import Image

from ._io import DataError
from .types import Sample, flip_view

IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)


def load_image(path: str, size: tuple[int, int]) -> torch.Tensor:
    """Decode, resize to size = (H, W): uint8 tensor (3, H, W). OSError if unreadable."""
    with Image.open(path) as im:
        im = im.convert("RGB").resize((size[1], size[0]), Image.BILINEAR)
        return torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1)


def random_erasing(img: torch.Tensor, p: float = 0.5, area=(0.02, 0.4), ratio=(0.3, 3.3)):
    """Erase one random rectangle of a normalised (3, H, W) image with noise (Zhong et al.)."""
    if torch.rand(()) >= p:
        return img
    _, h, w = img.shape
    for _ in range(10):
        a = h * w * float(torch.empty(()).uniform_(*area))
        r = math.exp(float(torch.empty(()).uniform_(math.log(ratio[0]), math.log(ratio[1]))))
        eh, ew = round(math.sqrt(a * r)), round(math.sqrt(a / r))
        if 0 < eh < h and 0 < ew < w:
            y = int(torch.randint(0, h - eh + 1, ()))
            x = int(torch.randint(0, w - ew + 1, ()))
            img = img.clone()
            img[:, y:y + eh, x:x + ew] = torch.randn(3, eh, ew)
            return img
    return img


class ImageDataset(torch.utils.data.Dataset):
    def __init__(self, samples: list[Sample], image_size: tuple[int, int] = (224, 224),
                 train: bool = False, num_views: int = 0, random_erasing: bool = False,
                 cache: bool = False):
        self.samples = list(samples)
        self.size = tuple(image_size)  # (H, W)
        self.train = train
        self.num_views = num_views  # encoding of the view labels, for flipping; 0: none
        self.erase = random_erasing
        self.cache: dict[int, torch.Tensor] | None = {} if cache else None
        self.bad: set[int] = set()  # indices found unreadable (train mode)
        self.num_bad = 0
        self._same_id: dict[int, list[int]] = {}
        for i, s in enumerate(self.samples):
            self._same_id.setdefault(s.pid, []).append(i)

    def __len__(self) -> int:
        return len(self.samples)

    def _decoded(self, i: int) -> torch.Tensor:
        if self.cache is not None and i in self.cache:
            return self.cache[i]
        img = load_image(self.samples[i].path, self.size)  # (3, H, W) uint8
        if self.cache is not None:
            self.cache[i] = img
        return img

    def _readable(self, i: int) -> tuple[int, torch.Tensor]:
        """(index, image) of i or, if i cannot be read in train mode, of a substitute."""
        order = self._same_id[self.samples[i].pid]
        start = order.index(i)
        candidates = order[start:] + order[:start] + list(range(i, len(self))) + list(range(i))
        for j in candidates:
            if j in self.bad:
                continue
            try:
                return j, self._decoded(j)
            except (OSError, ValueError) as err:  # missing, truncated or not an image
                if not self.train:
                    raise DataError(f"{self.samples[j].path}: cannot read image ({err}); "
                                    "expected a readable image file") from err
                self.bad.add(j)
                self.num_bad += 1
                warnings.warn(f"skipping unreadable image {self.samples[j].path} ({err}); "
                              f"{self.num_bad} skipped so far", stacklevel=2)
        raise DataError("no readable image in the data set")

    def __getitem__(self, i: int):
        j, img = self._readable(i)
        s = self.samples[j]
        view = s.view
        img = img.float().div_(255)
        if self.train:
            if torch.rand(()) < 0.5:  # a mirrored car is still a car, left and right swapped
                img = img.flip(-1)
                view = flip_view(view, self.num_views) if self.num_views else view
            h, w = self.size
            pad = max(1, min(h, w) // 16)
            img = torch.nn.functional.pad(img, (pad, pad, pad, pad))
            y, x = (int(v) for v in torch.randint(0, 2 * pad + 1, (2,)))
            img = img[:, y:y + h, x:x + w]
        img = (img - IMAGENET_MEAN) / IMAGENET_STD
        if self.train and self.erase:
            img = random_erasing(img)
        return img, s.pid, s.camid, view, j
