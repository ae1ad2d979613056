"""Image backbones: a compact CNN trained from scratch (the default on the embedded sets) and torchvision's
AlexNet, ResNet-18 and VGG-16 with ImageNet weights.

A backbone takes uint8 images (N, H, W, C) through `prepare` (to float, resize, normalise) and returns features
(N, feature_dim). ImageNet weights are the files of torchvision's weights API, verified by their full sha256 and read
without unpickling (``hashbench.weights``); when they cannot be downloaded the error names the file and the folder.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .errors import HashbenchError
from .weights import load_state_dict

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
BACKBONES = ("smallcnn", "gpqnet", "alexnet", "resnet18", "vgg16")
CIFAR_MEAN = (125.642 / 255, 123.738 / 255, 114.46 / 255)  # GPQ's per-channel statistics (RGB)
CIFAR_STD = (63.01 / 255, 62.157 / 255, 66.94 / 255)


class SmallCNN(nn.Module):
    """Three conv blocks + global average pooling + one hidden layer: enough for 28x28 / 56x56 digit scenes, and
    small enough to train on 2 CPU cores (HyP²'s epoch over 2,000 scenes pooled to 28x28: 2.3 s, one thread)."""

    def __init__(self, in_channels: int, feature_dim: int = 256):
        super().__init__()

        def block(cin, cout):
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
                                 nn.MaxPool2d(2))

        self.features = nn.Sequential(block(in_channels, 32), block(32, 64), block(64, 128))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(128, feature_dim), nn.ReLU())
        self.feature_dim = feature_dim

    def forward(self, x):
        return self.head(F.adaptive_avg_pool2d(self.features(x), 1))


class GPQNet(nn.Module):
    """GPQ's feature extractor F for 32x32 inputs (youngkyunJang/GPQ, utils/GPQ_network.py), trained from scratch
    (its ImageNet-initialised weights come from a .mat file that is not public): 3x3 convolutions, each followed by
    BatchNorm and ReLU, Xavier-initialised, [64, 64] -> pool -> [128, 128] -> pool -> [256, 256, 256] -> pool, whose
    global average is one 256-d branch; then [512, 512, 512] without pooling, averaged into 512-d; the two are
    concatenated (768-d). GPQ's Linear layer to the quantizer's D is the method's head, not part of F."""

    def __init__(self, in_channels: int):
        super().__init__()

        def convs(cin, widths):
            layers = []
            for cout in widths:
                conv = nn.Conv2d(cin, cout, 3, padding=1)
                nn.init.xavier_uniform_(conv.weight)
                nn.init.zeros_(conv.bias)
                layers += [conv, nn.BatchNorm2d(cout), nn.ReLU()]
                cin = cout
            return layers

        self.low = nn.Sequential(*convs(in_channels, [64, 64]), nn.MaxPool2d(2), *convs(64, [128, 128]),
                                 nn.MaxPool2d(2), *convs(128, [256, 256, 256]), nn.MaxPool2d(2))
        self.high = nn.Sequential(*convs(256, [512, 512, 512]))
        self.feature_dim = 768

    def forward(self, x):
        low = self.low(x)
        return torch.cat([low.mean(dim=(2, 3)), self.high(low).mean(dim=(2, 3))], dim=1)


def _torchvision_model(name: str, pretrained: bool):
    import torchvision.models as tvm

    weights = {"alexnet": tvm.AlexNet_Weights.IMAGENET1K_V1, "resnet18": tvm.ResNet18_Weights.IMAGENET1K_V1,
               "vgg16": tvm.VGG16_Weights.IMAGENET1K_V1}[name]
    model = getattr(tvm, name)(weights=None)
    if pretrained:
        model.load_state_dict(load_state_dict(weights.url))
    if name == "resnet18":
        feature_dim = model.fc.in_features
        model.fc = nn.Identity()
    else:  # keep fc6/fc7 (+ReLU, dropout), drop the 1000-way classifier: fc7 features as in DJSRH / WSDHQ
        feature_dim = model.classifier[-1].in_features
        model.classifier = nn.Sequential(*list(model.classifier.children())[:-1])
    return model, feature_dim


class Backbone(nn.Module):
    """Feature extractor plus the preprocessing its weights expect."""

    def __init__(self, name: str, image_shape: tuple, pretrained: bool = True, input_size: int = 224,
                 downsample: int = 1):
        super().__init__()
        if name not in BACKBONES:
            raise HashbenchError(f"backbone: {name!r} is not allowed; use one of {', '.join(BACKBONES)}")
        self.name = name
        self.in_channels = image_shape[-1]
        self.downsample = downsample if name == "smallcnn" else 1  # average pooling of smallcnn's input only
        if name in ("smallcnn", "gpqnet"):  # trained from scratch at native resolution
            self.net = SmallCNN(self.in_channels) if name == "smallcnn" else GPQNet(self.in_channels)
            self.feature_dim = self.net.feature_dim
            self.input_size = None
            rgb_stats = name == "gpqnet" and self.in_channels == 3
            self.register_buffer("mean", torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1) if rgb_stats
                                 else torch.full((1, self.in_channels, 1, 1), 0.5))
            self.register_buffer("std", torch.tensor(CIFAR_STD).view(1, 3, 1, 1) if rgb_stats
                                 else torch.full((1, self.in_channels, 1, 1), 0.5))
        else:
            self.net, self.feature_dim = _torchvision_model(name, pretrained)
            self.input_size = input_size
            self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
            self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def prepare(self, images: np.ndarray) -> torch.Tensor:
        """uint8 (N, H, W, C) -> normalised float (N, 3 or C, h, w) on the backbone's device (average-pooled by
        `downsample` for smallcnn)."""
        x = torch.from_numpy(np.ascontiguousarray(images)).to(self.mean.device)
        x = x.permute(0, 3, 1, 2).float().div_(255.0)
        if self.input_size is not None:
            if x.shape[1] == 1:  # grayscale into an ImageNet network
                x = x.expand(-1, 3, -1, -1)
            if x.shape[-1] != self.input_size or x.shape[-2] != self.input_size:
                x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)
        x = (x - self.mean) / self.std
        return F.avg_pool2d(x, self.downsample) if self.downsample > 1 else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def random_shift(x: torch.Tensor, pad: int, generator: torch.Generator) -> torch.Tensor:
    """Random translation by up to `pad` pixels (zero padding): the crop augmentation for small images."""
    if pad <= 0:
        return x
    n, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    rows = (dy.view(n, 1) + torch.arange(h).view(1, h))  # (n, h)
    cols = (dx.view(n, 1) + torch.arange(w).view(1, w))  # (n, w)
    batch = torch.arange(n).view(n, 1, 1)
    return padded.permute(0, 2, 3, 1)[batch, rows.view(n, h, 1), cols.view(n, 1, w)].permute(0, 3, 1, 2)
