"""``voc2012``: PASCAL VOC 2012 trainval as multi-label retrieval (HyP²): val (5,823) = query side, train (5,717) =
database/train side; labels as ``voc2007`` (difficult objects included unless ``difficult: false``, which gives the
labels of DeepHash-pytorch's ``voc2012`` lists)."""
from __future__ import annotations

from .base import Source
from .voc2007 import HOST, Voc2007


class Voc2012(Voc2007):
    name = "voc2012"
    title = "PASCAL VOC 2012"
    page = f"{HOST}/voc2012/"
    license = "PASCAL VOC 2012: Flickr images, see the VOC terms"
    sources = (Source("VOCtrainval_11-May-2012.tar", f"{HOST}/voc2012/VOCtrainval_11-May-2012.tar",
                      "6cd6e144f989b92b3379bac3b3de84fd", 1999639040, where=HOST),)
    sides = ("train", "val")
    list_where = {"deephash": "swuxyj/DeepHash-pytorch data/voc2012/ (with difficult: false)"}
