"""HashNet (Cao, Long, Wang & Yu, "HashNet: Deep Learning to Hash by Continuation", ICCV 2017), as in the official
PyTorch code thuml/HashNet (pytorch/src/train.py, network.py, loss.py): backbone -> Linear(feature_dim, bits)
(weights N(0, 0.01), bias 0) = z, h = tanh(beta z) with the continuation beta = (1 + 0.005 t)^0.5 refreshed every
200 training forwards (``losses.hashnet.continuation_scale``); each step draws one batch from each of two shuffled
loaders of the train set, passes both through the network together and takes the weighted pairwise cross-entropy of
``losses.hashnet`` between the two halves (alpha = 10 / bits); SGD (Nesterov, momentum 0.9, weight decay 5e-4, lr
3e-4, the hash layer at 10 x lr), the lr halved every 2,000 of 10,000 iterations, batches of 36 + 36; codes =
sign(z) (= sign(h)).

The pair weights: ``positive_weight: null`` is the paper's balance (similar and dissimilar pairs weigh as much in
total); a number c is the official ``class_num`` (1 on COCO, 5 on NUS-WIDE, 100 on ImageNet), similar pairs
weighing c times a dissimilar one.

Deviations from the official code, all deliberate:
- the backbone is a param: ``resnet50`` (the official README's command), ``alexnet`` (the paper's network) with
  ImageNet weights, or ``smallcnn`` trained from scratch (the default on the embedded 28x28 digit sets, where an
  ImageNet network is a poor fit and too slow on 2 CPU cores);
- on the embedded sets: 1,500 iterations with the lr halved every 300 (the official 10,000 / 2,000 scaled), lr
  0.003 for the backbone trained from scratch (10 x the official 3e-4, which fine-tunes a pretrained network; not
  tuned: at 0.003 the training loss falls from 1.39 to 0.80 over the 1,500 iterations), and the paper's pair balance
  (``positive_weight: null``; the official runs set ``class_num`` per dataset);
- augmentation: ``augment: auto`` is the official Resize((256, 256)) + random resized 224 crops + flips for training
  and the centre 224 crop for testing (``paper``) on real sets, and on the embedded digit sets random shifts of up
  to ``augment_shift`` pixels without flips (mirrored digits are different glyphs);
- log(1 + e^x) is exact (the official loss switches to x beyond x = 15, a difference below 3.1e-7 per pair);
- the two loaders are seeded permutations cycled independently; the last iteration's model is kept.
"""
from __future__ import annotations

import torch
from torch import nn

from ..config import Param
from ..losses.hashnet import HashNetLoss, continuation_scale
from ..networks import Backbone
from ..training import Cycled, Field, Optim, Plan, Stream, backbone_params, sgd_params
from .base import LabelHashing, TrainSet


class HashNet(LabelHashing):
    name = "hashnet"
    needs = frozenset({"labels"})
    preset = {"topk": 5000, "zero": "skip"}  # the official test.py: mAP@R (NUS-WIDE / COCO 5000), no-hit queries left out
    schema = {
        **backbone_params(),
        "iterations": Param(1500, int, ge=1),
        "batch_size": Param(36, int, ge=2),
        **sgd_params(0.003),
        "nesterov": Param(True, bool),
        "hash_lr_mult": Param(10.0, float, gt=0),
        "lr_step": Param(300, int, ge=1),
        "lr_gamma": Param(0.5, float, gt=0, le=1),
        "alpha": Param(None, float, gt=0, nullable=True),
        "positive_weight": Param(None, float, gt=0, nullable=True),
        "continuation_gamma": Param(0.005, float, ge=0),
        "continuation_power": Param(0.5, float, ge=0),
        "continuation_step": Param(200, int, ge=1),
    }

    def __init__(self, bits, seed, params, info):
        super().__init__(bits, seed, params, info)
        p = self.params
        self.backbone = Backbone(p["backbone"], info.image_shape, p["pretrained"], p["input_size"], p["downsample"])
        self.hash_layer = nn.Linear(self.backbone.feature_dim, bits)
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            self.hash_layer.weight.copy_(torch.randn(self.hash_layer.weight.shape, generator=gen) * 0.01)
            self.hash_layer.bias.zero_()
        self.net = nn.Sequential(self.backbone, self.hash_layer)
        self.alpha = p["alpha"] if p["alpha"] is not None else 10.0 / bits
        self.pairs = HashNetLoss(self.alpha, p["positive_weight"])
        self.image_transforms = self.transforms(self.backbone.spec)

    def plan(self, train: TrainSet) -> Plan:
        p = self.params
        fields = {"image": Field(train.images, self.image_transforms[0]), "label": Field(train.labels)}
        streams = {name: Stream(fields, Cycled(len(train), p["batch_size"])) for name in ("first", "second")}
        return Plan(streams, iterations=p["iterations"])

    def optimizers(self):
        p = self.params
        optimizer = torch.optim.SGD([{"params": self.backbone.parameters(), "lr": p["lr"]},
                                     {"params": self.hash_layer.parameters(), "lr": p["lr"] * p["hash_lr_mult"]}],
                                    momentum=p["momentum"], weight_decay=p["weight_decay"], nesterov=p["nesterov"])
        return [Optim(optimizer, torch.optim.lr_scheduler.StepLR(optimizer, p["lr_step"], p["lr_gamma"]),
                      every="step")]

    def training_step(self, batch, ctx):
        p, first, second = self.params, batch["first"], batch["second"]
        with ctx.autocast():
            z = self.net(torch.cat([first["image"], second["image"]]))
        beta = continuation_scale(ctx.step + 1, p["continuation_gamma"], p["continuation_power"],
                                  p["continuation_step"])
        h = torch.tanh(beta * z.float())
        n = len(first["image"])
        loss = self.pairs(h[:n], first["label"].float(), h[n:], second["label"].float())
        return loss, {"beta": beta}

    def on_epoch_end(self, epoch, ctx) -> dict:
        return {"iteration": ctx.step + 1}
