"""HyP² (Xu et al., "HyP² Loss: Beyond Hypersphere Metric Space for Multi-label Image Retrieval", ACM MM 2022),
as in the official repo JerryXu0129/HyP2-Loss: backbone -> Linear(feature_dim, bits) with raw outputs (no tanh),
trained with the HyP² loss (``losses.hyp2``: one learnable proxy per class, a positive and a margin-negative
proxy term, and a penalty on pairs of multi-label images that share no label); SGD with momentum 0.9 and weight
decay 5e-4, the proxies in their own parameter group with their own lr, the lr halved every 10 epochs; batches of
100 shuffled images; codes = sign of the outputs.

The margin zeta comes from the official code table for (bits, ceil(log2 C)) (``zeta: null``), e.g. 0 at 32 bits
for 10 classes, 0 at 48 bits for NUS-WIDE-21, 1/3 at 12 bits for MIRFlickr-38; bit lengths the table lacks need an
explicit ``zeta``. The paper's retrieval depth R depends on the dataset (MIRFlickr 1,000, NUS-WIDE 5,000, VOC2007
5,011, VOC2012 5,717); the preset is mAP@5000 with zero-hit queries counted as AP 0, as the official ``test`` does.

Deviations from the official code, all deliberate:
- the backbone is a param: ``alexnet`` (ImageNet fc7, the paper's AlexNet rows) or ``smallcnn`` trained from scratch
  (the default on the embedded 56x56 digit scenes, input average-pooled 2x2 by ``downsample`` as WSDHQ and DJSRH
  do, so 40 epochs fit a few minutes on 2 CPU cores); the official default is ImageNet Inception-v3 at 448x448,
  which torchvision offers but this project does not wire (no 448 inputs on 2 CPU cores);
- lr 0.01 for the backbone and the hash layer (the official AlexNet value; its Inception value is 0.02), proxy
  lr 0.02 as the official ``--rate``; 40 epochs instead of 100 on the embedded set, lr halved every 10 either way;
- augmentation: random shifts of up to ``augment_shift`` pixels (after the pooling) instead of resize + horizontal
  flips (mirrored digits are different glyphs);
- the last epoch's model is kept, seeded (the official code evaluates on the query set every 5 epochs and saves
  and reports the best);
- the proxies are drawn from the run's seed (the official code always seeds them with 0);
- sign(0) is +1 here (the official ``np.sign`` leaves a 0 that matches both bit values);
- a last batch of a single image is merged into the previous one (BatchNorm needs two images in train mode).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..config import Param
from ..errors import HashbenchError
from ..losses.hyp2 import HyP2Loss, zeta_for
from ..networks import BACKBONES, Backbone, random_shift
from .base import Method, TrainSet, check_role, device, forward_batches, sign_codes


class HyP2(Method):
    name = "hyp2"
    needs = frozenset({"labels"})
    preset = {"topk": 5000, "zero": "count"}
    schema = {
        "backbone": Param("smallcnn", str, choices=BACKBONES),
        "pretrained": Param(True, bool),
        "input_size": Param(224, int, ge=32),
        "downsample": Param(2, int, ge=1),  # smallcnn only: average-pool the input by this factor
        "epochs": Param(40, int, ge=1),
        "batch_size": Param(100, int, ge=2),
        "lr": Param(0.01, float, gt=0),
        "proxy_lr": Param(0.02, float, gt=0),
        "momentum": Param(0.9, float, ge=0, le=1),
        "weight_decay": Param(5e-4, float, ge=0),
        "lr_step_epochs": Param(10, int, ge=1),
        "lr_gamma": Param(0.5, float, gt=0, le=1),
        "beta": Param(0.5, float, ge=0),
        "zeta": Param(None, float, ge=-1, le=1, nullable=True),
        "augment_shift": Param(2, int, ge=0),
        "encode_batch_size": Param(256, int, ge=1),
    }

    def __init__(self, bits, seed, params, info):
        super().__init__(bits, seed, params, info)
        p = self.params
        self.zeta = p["zeta"] if p["zeta"] is not None else zeta_for(bits, info.n_classes)
        self.device = device()
        self.backbone = Backbone(p["backbone"], info.image_shape, p["pretrained"], p["input_size"], p["downsample"])
        self.net = nn.Sequential(self.backbone, nn.Linear(self.backbone.feature_dim, bits)).to(self.device)

    def fit(self, train: TrainSet) -> list[dict]:
        p = self.params
        if train.labels is None or train.labels.shape[1] != self.info.n_classes:
            raise HashbenchError(f"hyp2: training labels must be multi-hot with {self.info.n_classes} classes")
        rng = np.random.default_rng(self.seed)
        gen = torch.Generator().manual_seed(self.seed)
        loss_fn = HyP2Loss(self.info.n_classes, self.bits, self.zeta, p["beta"], self.seed).to(self.device)
        optimizer = torch.optim.SGD([{"params": self.net.parameters(), "lr": p["lr"]},
                                     {"params": loss_fn.parameters(), "lr": p["proxy_lr"]}],
                                    momentum=p["momentum"], weight_decay=p["weight_decay"])
        schedule = torch.optim.lr_scheduler.StepLR(optimizer, p["lr_step_epochs"], p["lr_gamma"])
        labels = torch.from_numpy(train.labels.astype(np.float32))
        n, size = len(train), p["batch_size"]
        starts = list(range(0, n, size))
        if len(starts) > 1 and n - starts[-1] == 1:
            starts.pop()  # a lone last image joins the previous batch
        history = []
        self.net.train()
        for epoch in (bar := tqdm(range(p["epochs"]), desc="hyp2 epochs", unit="epoch")):
            order = rng.permutation(n)
            total = 0.0
            for b, start in enumerate(starts):
                idx = order[start:starts[b + 1] if b + 1 < len(starts) else n]
                x = random_shift(self.backbone.prepare(train.images[idx]), p["augment_shift"], gen)
                loss = loss_fn(self.net(x.to(self.device)), labels[idx].to(self.device))
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total += loss.item()
            history.append({"epoch": epoch, "loss": total / len(starts), "lr": optimizer.param_groups[0]["lr"]})
            schedule.step()
            bar.set_postfix(loss=f"{total / len(starts):.4f}")
        return history

    def encode(self, data, modality="image", role="database"):
        check_role(modality, role, self.modalities)
        self.net.eval()
        return sign_codes(forward_batches(lambda x: self.net(self.backbone.prepare(x).to(self.device)), data,
                                          self.params["encode_batch_size"], self.bits, f"encode {role}"))
