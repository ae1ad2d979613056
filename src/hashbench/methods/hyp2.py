"""HyP² (Xu et al., "HyP² Loss: Beyond Hypersphere Metric Space for Multi-label Image Retrieval", ACM MM 2022),
as in the official repo JerryXu0129/HyP2-Loss: backbone -> Linear(feature_dim, bits) with raw outputs (no tanh),
trained with the HyP² loss (``losses.hyp2``: one learnable proxy per class, a positive and a margin-negative
proxy term, and a penalty on pairs of multi-label images that share no label); SGD with momentum 0.9 and weight
decay 5e-4, the proxies in their own parameter group with their own lr, the lr halved every 10 epochs; batches of
100 shuffled images; codes = sign of the outputs.

The margin zeta comes from the official code table for (bits, ceil(log2 C)) (``zeta: null``), e.g. 0 at 32 bits
for 10 classes, 0 at 48 bits for NUS-WIDE-21, 1/3 at 12 bits for MIRFlickr-38; bit lengths the table lacks need an
explicit ``zeta``. The paper's retrieval depth R depends on the dataset (MIRFlickr 1,000, NUS-WIDE 5,000, VOC2007
5,011, VOC2012 5,717, the official ``retrieve``) and zero-hit queries count AP 0, as the official ``test`` does.
Under ``evaluate.protocol: paper`` R comes from the dataset's paper preset (presets/hyp2-<dataset>.yaml, which the
evaluate stage reads whether or not the run names it); the class-level ``preset`` below (R = 5,000) applies only
where no HyP² preset exists: the embedded sets and real sets the paper did not use.

Deviations from the official code, all deliberate:
- the backbone is a param: ``alexnet`` (ImageNet fc7, the paper's AlexNet rows), ``inception_v3`` (the official
  default "googlenet": torchvision's Inception-v3 with Google's weights, ``input_size: 448`` for the VOC rows, the loss
  on its main output in train mode; its auxiliary head, which gets no gradient officially, is dropped) or
  ``smallcnn`` trained from scratch (the default on the embedded 56x56 digit scenes, input average-pooled 2x2 by
  ``downsample`` as WSDHQ and DJSRH do, so 40 epochs fit a few minutes on 2 CPU cores);
- lr 0.01 for the backbone and the hash layer (the official AlexNet value; its Inception value is 0.02), proxy
  lr 0.02 as the official ``--rate``; 40 epochs instead of 100 on the embedded set, lr halved every 10 either way;
- augmentation: ``augment: auto`` is the official resize + horizontal flips (``paper``) on real sets, and on the
  embedded digit sets random shifts of up to ``augment_shift`` pixels (after the pooling) without flips (mirrored
  digits are different glyphs);
- the last epoch's model is kept, seeded (the official code evaluates on the query set every 5 epochs and saves
  and reports the best);
- the proxies are drawn from the run's seed (the official code always seeds them with 0);
- sign(0) is +1 here (the official ``np.sign`` leaves a 0 that matches both bit values);
- a last batch of a single image is merged into the previous one (BatchNorm needs two images in train mode).
"""
from __future__ import annotations

import torch
from torch import nn

from ..config import Param
from ..errors import HashbenchError
from ..losses.hyp2 import HyP2Loss, zeta_for
from ..networks import Backbone
from ..training import Optim, backbone_params, sgd_params
from .base import LabelHashing, TrainSet


class HyP2(LabelHashing):
    name = "hyp2"
    needs = frozenset({"labels"})
    preset = {"topk": 5000, "zero": "count"}
    schema = {
        **backbone_params(downsample=2),
        "epochs": Param(40, int, ge=1),
        "batch_size": Param(100, int, ge=2),
        **sgd_params(0.01),
        "proxy_lr": Param(0.02, float, gt=0),
        "lr_step_epochs": Param(10, int, ge=1),
        "lr_gamma": Param(0.5, float, gt=0, le=1),
        "beta": Param(0.5, float, ge=0),
        "zeta": Param(None, float, ge=-1, le=1, nullable=True),
    }

    def __init__(self, bits, seed, params, info):
        super().__init__(bits, seed, params, info)
        p = self.params
        self.zeta = p["zeta"] if p["zeta"] is not None else zeta_for(bits, info.n_classes)
        self.backbone = Backbone(p["backbone"], info.image_shape, p["pretrained"], p["input_size"], p["downsample"])
        self.net = nn.Sequential(self.backbone, nn.Linear(self.backbone.feature_dim, bits))
        self.loss_fn = HyP2Loss(info.n_classes, bits, self.zeta, p["beta"], seed)
        self.image_transforms = self.transforms(self.backbone.spec)

    def setup(self, train: TrainSet, ctx) -> None:
        if train.labels is None or train.labels.shape[1] != self.info.n_classes:
            raise HashbenchError(f"hyp2: training labels must be multi-hot with {self.info.n_classes} classes")

    def modules(self):
        return {"net": self.net, "loss": self.loss_fn}

    def optimizers(self):
        p = self.params
        optimizer = torch.optim.SGD([{"params": self.net.parameters(), "lr": p["lr"]},
                                     {"params": self.loss_fn.parameters(), "lr": p["proxy_lr"]}],
                                    momentum=p["momentum"], weight_decay=p["weight_decay"])
        return [Optim(optimizer, torch.optim.lr_scheduler.StepLR(optimizer, p["lr_step_epochs"], p["lr_gamma"]))]
