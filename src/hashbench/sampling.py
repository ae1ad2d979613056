"""Class-balanced batches: P classes x Q images per class, drawn afresh for every batch."""
from __future__ import annotations

import numpy as np


def class_balanced_batch(labels: np.ndarray, classes_per_batch: int, per_class: int,
                         rng: np.random.Generator) -> np.ndarray:
    """Indices of one batch: `classes_per_batch` distinct classes (all if fewer), `per_class` images holding each
    class, drawn without replacement inside a class (with replacement only when a class has fewer images), shuffled.
    Multi-label items may be drawn for two classes; they then appear twice, as in per-class sampling elsewhere."""
    present = np.flatnonzero(labels.sum(0) > 0)
    classes = rng.choice(present, size=min(classes_per_batch, len(present)), replace=False)
    picks = []
    for c in np.sort(classes):
        members = np.flatnonzero(labels[:, c])
        picks.append(rng.choice(members, size=per_class, replace=len(members) < per_class))
    batch = np.concatenate(picks)
    rng.shuffle(batch)
    return batch
