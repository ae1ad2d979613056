"""Image backbones: a compact CNN trained from scratch (the default on the embedded sets), GPQ's F, and torchvision's
AlexNet, VGG-16, ResNet-18, ResNet-50 and Inception-v3 with ImageNet weights.

A backbone maps a normalised float batch (N, C, h, w) to features (N, feature_dim); what it expects as input (size,
channels, normalisation, input pooling) is its `InputSpec`, from which ``hashbench.transforms`` builds the paper's
transforms. ImageNet weights are the files of torchvision's weights API, verified by their full sha256 and read
without unpickling (``hashbench.weights``); when they cannot be downloaded the error names the file and the folder.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .errors import HashbenchError
from .weights import load_state_dict

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
BACKBONES = ("smallcnn", "gpqnet", "alexnet", "resnet18", "resnet50", "vgg16", "inception_v3")
HALF = ((0.5,), (0.5,))  # [0, 1] -> [-1, 1]: the from-scratch networks on grey or colour images
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
    (the official code initialises it from `ImageNet_pretrained.mat`, part of its external download, for which there
    is no loader here): 3x3 convolutions, each followed by BatchNorm and ReLU, Xavier-initialised, [64, 64] -> pool
    -> [128, 128] -> pool -> [256, 256, 256] -> pool, whose global average is one 256-d branch; then [512, 512, 512] without pooling, averaged into 512-d; the two are
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


@dataclass(frozen=True)
class InputSpec:
    """What a network takes: images resized to `size` (None: the dataset's own size), `channels` channels (grey
    images are repeated into 3 for ImageNet networks), normalised by `mean` / `std` (one value or one per channel),
    then average-pooled by `pool`."""

    size: int | None
    channels: int
    mean: tuple
    std: tuple
    pool: int = 1


# name -> torchvision's weights enum (its IMAGENET1K_V1 member is the file used)
_TORCHVISION = {"alexnet": "AlexNet_Weights", "vgg16": "VGG16_Weights", "resnet18": "ResNet18_Weights",
                "resnet50": "ResNet50_Weights", "inception_v3": "Inception_V3_Weights"}


def _torchvision_model(name: str, pretrained: bool):
    """The ImageNet network without its 1000-way classifier, and its feature width."""
    import torchvision.models as tvm

    weights = getattr(tvm, _TORCHVISION[name]).IMAGENET1K_V1
    if name == "inception_v3":
        # As torchvision (and HyP²'s `inception_v3(pretrained=True)`): Google's weights expect `transform_input`.
        # The auxiliary head gets no gradient from the loss (HyP² uses output [0]), so it is dropped after loading.
        model = tvm.inception_v3(weights=None, aux_logits=True, transform_input=pretrained, init_weights=not pretrained)
    else:
        model = getattr(tvm, name)(weights=None)
    if pretrained:
        model.load_state_dict(load_state_dict(weights.url))
    if name == "inception_v3":
        model.aux_logits, model.AuxLogits = False, None
    if name in ("resnet18", "resnet50", "inception_v3"):
        feature_dim = model.fc.in_features
        model.fc = nn.Identity()
    else:  # keep fc6/fc7 (+ReLU, dropout), drop the 1000-way classifier: fc7 features as in DJSRH and HyP²
        feature_dim = model.classifier[-1].in_features
        model.classifier = nn.Sequential(*list(model.classifier.children())[:-1])
    return model, feature_dim


# the smallest input each torchvision network's layers accept (others: the schema's 32)
MIN_INPUT = {"alexnet": 63, "inception_v3": 75}


class Backbone(nn.Module):
    """A feature extractor and the input it expects (`spec`)."""

    def __init__(self, name: str, image_shape: tuple, pretrained: bool = True, input_size: int = 224,
                 downsample: int = 1):
        super().__init__()
        if name not in BACKBONES:
            raise HashbenchError(f"backbone: {name!r} is not allowed; use one of {', '.join(BACKBONES)}")
        self.name = name
        channels = image_shape[-1]
        if name in ("smallcnn", "gpqnet"):  # trained from scratch at the dataset's resolution
            self.net = SmallCNN(channels) if name == "smallcnn" else GPQNet(channels)
            self.feature_dim = self.net.feature_dim
            mean, std = (CIFAR_MEAN, CIFAR_STD) if name == "gpqnet" and channels == 3 else HALF
            # average pooling of smallcnn's input only (the embedded 56x56 scenes -> 28x28)
            self.spec = InputSpec(None, channels, mean, std, downsample if name == "smallcnn" else 1)
        else:
            smallest = MIN_INPUT.get(name, 32)
            if input_size < smallest:
                usual = "HyP²'s is 448" if name == "inception_v3" else "the papers use 224 or 227"
                raise HashbenchError(f"input_size: {input_size} is not allowed for {name}; use an integer >= "
                                     f"{smallest} ({usual})")
            self.net, self.feature_dim = _torchvision_model(name, pretrained)
            self.spec = InputSpec(input_size, 3, IMAGENET_MEAN, IMAGENET_STD)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
