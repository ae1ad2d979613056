"""Each paper's image transforms, built from torchvision.transforms.v2, chosen by a method's `augment` param.

- ``paper``: the official code's train and test transforms (below);
- ``shift``: random translations of up to ``augment_shift`` pixels, zero-padded after normalisation, and no flips
  (on digits a mirrored glyph is another digit); the test transform does not move the image;
- ``paper_test``: the official test transform for training too (no random step): DJSRH's Wiki recipe, which trains
  on Resize(256) + CenterCrop(224); refused where the test view is several crops (WSDHQ);
- ``none``: the plain resize of ``shift`` / ``none`` for training and testing alike;
- ``auto`` (every method's default): ``shift`` on the embedded digit sets, ``paper`` on every other set.

A pipeline starts from the stored image: a uint8 array row (C, H, W), or an image file decoded at its original
size (a PIL image). Geometry (resize, crop, flip) runs on those uint8 pixels; then float in [0, 1], grey repeated
to 3 channels for ImageNet networks, the network's normalisation, and last the operations on normalised values:
zero-padded translations (``shift``, GPQ's padded crops) and smallcnn's input pooling (`InputSpec.pool`).

The papers' recipes (S = the network's input size: ``input_size`` for ImageNet networks, the dataset's own size
for networks trained from scratch):

- DJSRH (zzs1994/DJSRH): train flip, Resize(256) of the shorter side, RandomCrop(224); test Resize(256),
  CenterCrop(224);
- DNNH (zhongzhh8/Image-Retrieval): train Resize((256, 256)), RandomCrop(224), flip; test Resize((256, 256)),
  CenterCrop(224) (its CIFAR-10 mean/std are not used: the ImageNet networks get their own normalisation);
- WSDHQ (gimpong/AAAI21-WSDHQ): train Resize((256, 256)), random 227 crop, flip; test 10 crops of 227 at the
  official offsets (0, 0), (28, 28), (28, 0), (0, 28), (14, 14), each also flipped, stacked (10, C, S, S): the method
  averages its features over them;
- HyP² (JerryXu0129/HyP2-Loss): train Resize((S, S)), flip; test Resize((S, S)); S = 224, 448 for Inception-v3;
- GPQ (youngkyunJang/GPQ): train normalise, pad 4 pixels with zeros, random S crop, flip; test normalise;
- DPSH (jiangqy/DPSH-pytorch): Resize(256) of the shorter side, CenterCrop(224) for training and test alike (no
  augmentation);
- HashNet (thuml/HashNet pytorch/src/pre_process.py) and CSQ (the same file, resize 255): train Resize((256, 256)),
  RandomResizedCrop(224), flip; test Resize((256, 256)), the centre crop of 224 (test.py's single view);
- DSH (lhmRyan/deep-supervised-hashing-DSH, Caffe `mirror: true` on CIFAR-10 at its own size): train Resize((S, S)),
  flip; test Resize((S, S)) (HyP²'s recipe);
- DQN (thulab/DeepHash, the AlexNet layers WSDHQ inherits): WSDHQ's 227 crops of 256 with flips, 10 test crops.

The 256 of the crop recipes scales with S (256/224, 256/227). Random draws use torch's global generator, which the
loaders seed per item (``hashbench.training.loaders``), so a run is the same for any number of workers.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from .errors import HashbenchError
from .networks import InputSpec

AUGMENTS = ("auto", "paper", "paper_test", "shift", "none")
DIGIT_SETS = frozenset({"mnist5k", "mnist5k-tags"})  # datasets whose images are digits: flips make other glyphs


def resolve(augment: str, dataset: str) -> str:
    """The augmentation that runs: `auto` is `shift` on the digit sets and `paper` elsewhere."""
    if augment not in AUGMENTS:
        raise HashbenchError(f"augment: {augment!r} is not allowed; use one of {', '.join(AUGMENTS)}")
    if augment == "auto":
        return "shift" if dataset in DIGIT_SETS else "paper"
    return augment


class RepeatChannels(torch.nn.Module):
    """Grey (1, H, W) -> (3, H, W) for networks that take colour; other images pass unchanged."""

    def forward(self, x):
        return x.repeat_interleave(3, dim=-3) if x.shape[-3] == 1 else x


class AvgPool(torch.nn.Module):
    """Average pooling of an image (C, H, W) or of stacked views (V, C, H, W) by `k` (smallcnn's input pooling)."""

    def __init__(self, k: int):
        super().__init__()
        self.k = k

    def forward(self, x):
        pooled = F.avg_pool2d(x.reshape(-1, *x.shape[-3:]), self.k)
        return pooled.reshape(*x.shape[:-2], *pooled.shape[-2:])

    def extra_repr(self):
        return f"k={self.k}"


class TenCrop(torch.nn.Module):
    """WSDHQ's test views: crops of `size` at offsets (0, 0), (d, d), (d, 0), (0, d), (d/2, d/2) with d = the
    margin - 1 (28 for 227 of 256, as the official net_val.py), each also flipped: (10, C, h, w)."""

    def __init__(self, size: tuple[int, int]):
        super().__init__()
        self.size = size

    def forward(self, img):
        x = TF.to_image(img)
        h, w = self.size
        dy, dx = max(x.shape[-2] - h - 1, 0), max(x.shape[-1] - w - 1, 0)
        crops = [TF.crop(x, top, left, h, w) for top, left in ((0, 0), (dy, dx), (dy, 0), (0, dx), (dy // 2, dx // 2))]
        return torch.stack(crops + [TF.horizontal_flip(c) for c in crops], dim=-4)  # (10, C, h, w) or (N, 10, ...)

    def extra_repr(self):
        return f"size={list(self.size)}"


def _scaled(hw: tuple[int, int], ratio: float) -> tuple[int, int]:
    return round(hw[0] * ratio), round(hw[1] * ratio)


def _djsrh(hw, train):
    big = _scaled(hw, 256 / 224)[0]  # torchvision Resize(int): the shorter side, aspect kept
    if train:
        return [v2.RandomHorizontalFlip(), v2.Resize(big), v2.RandomCrop(hw)], []
    return [v2.Resize(big), v2.CenterCrop(hw)], []


def _dnnh(hw, train):
    big = _scaled(hw, 256 / 224)
    if train:
        return [v2.Resize(big), v2.RandomCrop(hw), v2.RandomHorizontalFlip()], []
    return [v2.Resize(big), v2.CenterCrop(hw)], []


def _wsdhq(hw, train):
    big = _scaled(hw, 256 / 227)
    if train:
        return [v2.Resize(big), v2.RandomCrop(hw), v2.RandomHorizontalFlip()], []
    return [v2.Resize(big), TenCrop(hw)], []


def _hyp2(hw, train):
    return [v2.Resize(hw)] + ([v2.RandomHorizontalFlip()] if train else []), []


def _gpq(hw, train):
    return [v2.Resize(hw)], ([v2.RandomCrop(hw, padding=4), v2.RandomHorizontalFlip()] if train else [])


def _dpsh(hw, train):
    return [v2.Resize(_scaled(hw, 256 / 224)[0]), v2.CenterCrop(hw)], []


def _resized_crop(ratio):
    """HashNet's / CSQ's pre_process: square resize by `ratio`, random resized crops and flips; test centre crop."""
    def recipe(hw, train):
        big = _scaled(hw, ratio)
        if train:
            return [v2.Resize(big), v2.RandomResizedCrop(hw), v2.RandomHorizontalFlip()], []
        return [v2.Resize(big), v2.CenterCrop(hw)], []
    return recipe


# method -> its official code's transforms: (geometry on uint8 pixels, operations on normalised values)
PAPER = {"djsrh": _djsrh, "dnnh": _dnnh, "wsdhq": _wsdhq, "hyp2": _hyp2, "gpq": _gpq, "dpsh": _dpsh,
         "hashnet": _resized_crop(256 / 224), "csq": _resized_crop(255 / 224), "dsh": _hyp2, "dqn": _wsdhq}


def build(recipe: str, augment: str, spec: InputSpec, image_shape: tuple, train: bool, shift: int = 0,
          pool_first: bool = True) -> v2.Compose:
    """The transform of `recipe` (a method name) for `augment` (resolved: paper, paper_test, shift or none), for a
    network that takes `spec`, on images stored at `image_shape` (H, W, C). `pool_first`: with ``shift`` the
    translation is in pooled pixels (WSDHQ, HyP²), else in stored pixels before the pooling (DJSRH)."""
    hw = (spec.size, spec.size) if spec.size else tuple(image_shape[:2])
    pool = [AvgPool(spec.pool)] if spec.pool > 1 else []
    if augment in ("paper", "paper_test"):
        if recipe not in PAPER:
            raise HashbenchError(f"augment: {augment!r} is not allowed for {recipe}; use shift or none")
        geometry, post = PAPER[recipe](hw, train and augment == "paper")
        if augment == "paper_test" and any(isinstance(t, TenCrop) for t in geometry):
            raise HashbenchError(f"augment: 'paper_test' is not allowed for {recipe}: its test view is several "
                                 f"crops; use paper, shift or none")
        post = post + pool
    else:
        geometry, post = [v2.Resize(hw)], pool
        if augment == "shift" and train and shift > 0:
            pooled = (hw[0] // spec.pool, hw[1] // spec.pool) if pool_first else hw
            move = [v2.RandomCrop(pooled, padding=shift)]
            post = pool + move if pool_first else move + pool
    colour = [RepeatChannels()] if spec.channels == 3 and image_shape[-1] == 1 else []
    return v2.Compose([*geometry, v2.ToImage(), v2.ToDtype(torch.float32, scale=True), *colour,
                       v2.Normalize(list(spec.mean), list(spec.std)), *post])


def pixels(image_shape: tuple) -> v2.Compose:
    """The stored pixels as uint8 (C, H, W) at the dataset's size (image files resized as `Dataset.images` does)."""
    return v2.Compose([v2.Resize(tuple(image_shape[:2])), v2.ToImage()])


def flat_pixels(x: torch.Tensor) -> torch.Tensor:
    """uint8 (N, C, H, W) -> float32 (N, H * W * C) in [0, 1], flattened in the stored (H, W, C) order."""
    return x.permute(0, 2, 3, 1).flatten(1).float() / 255.0


RANDOM = (v2.RandomCrop, v2.RandomHorizontalFlip)  # the only steps that draw random numbers


def split_random(transform: v2.Compose) -> tuple:
    """(the steps before the first random one, the rest or None): the first part gives the same result on a batch
    of equal-sized images (N, C, H, W) as on each image, so loaders run it once per batch."""
    steps = transform.transforms
    first = next((i for i, t in enumerate(steps) if isinstance(t, RANDOM)), len(steps))
    return (v2.Compose(steps[:first]) if first else v2.Identity(),
            v2.Compose(steps[first:]) if first < len(steps) else None)


def describe(transform: v2.Compose) -> list[str]:
    """One line per step, for models/model.json."""
    return [" ".join(repr(t).split()) for t in transform.transforms]
