"""PCAH: PCA hashing, the sign of the leading `bits` principal components (the baseline of Wang, Kumar & Chang,
CVPR 2010, and Gong & Lazebnik's ITQ paper), on pixels or a pretrained backbone's features.

Features are centred by the train mean and projected onto scikit-learn's exact PCA of the train split; bit k is
the sign of component k (0 -> +1). Deterministic: the seed changes nothing. Deviation: none.
"""
from __future__ import annotations

from .shallow import LinearHashing, pca


class PCAH(LinearHashing):
    name = "pcah"
    needs = frozenset()

    def fit(self, train):
        mean, components = pca(self.inputs(train.images, "image"), self.bits, self.name)
        self.set_projection("image", mean, components)
        return [{"epoch": 0, "loss": 0.0}]
