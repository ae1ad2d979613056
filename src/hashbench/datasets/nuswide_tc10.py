"""``nuswide-tc10``: DCMH's NUS-WIDE TC-10 release, as DJSRH uses it: ``nus-wide-tc10-lall.mat`` (``LAll``, 186,577
x 10 labels), ``nus-wide-tc10-yall.mat`` (``YAll``, the 1,000-d tag bag of words; HDF5, transposed on load) and
``nus-wide-tc10-iall.mat`` (``IAll``, 224 x 224 RGB images, read in blocks of rows). No checksum is published: the
md5 of each placed file is recorded. The columns are named by their counts (the ten most frequent NUS-WIDE concepts
have distinct counts; DCMH does not publish the column order).

Split (``djsrh``): 200 queries and 500 training pairs per label (2,000 / 5,000), database = the other pairs.
"""
from __future__ import annotations

import numpy as np

from .base import Source
from .mirflickr25k_dcmh import WHERE, Mirflickr25kDcmh

# concept -> images carrying it in NUS-WIDE (the same counts within TC-10, which keeps every image with one of them)
TC10_COUNTS = {"sky": 74190, "clouds": 54087, "person": 51577, "water": 35264, "animal": 33887, "grass": 22561,
               "buildings": 17835, "window": 15051, "plants": 14345, "lake": 13392}


class NusWideTc10(Mirflickr25kDcmh):
    name = "nuswide-tc10"
    title = "NUS-WIDE TC-10, DCMH's .mat release"
    license = "NUS-WIDE: research use; DCMH's processed release"
    prefix = "nus-wide-tc10"
    expected = (186577, 10, 1000)
    sources = tuple(Source(f"nus-wide-tc10-{v}.mat", max_bytes=(40 << 30) if v == "iall" else (4 << 30), where=WHERE)
                    for v in ("lall", "yall", "iall"))
    split_default = {"protocol": "djsrh", "query_per_class": 200, "train_per_class": 500, "first_class_factor": 1,
                     "n_train": 5000}

    def class_names(self, labels: np.ndarray) -> tuple[list[str], str]:
        by_count = {count: name for name, count in TC10_COUNTS.items()}
        counts = labels.sum(axis=0).astype(int).tolist()
        if sorted(counts) == sorted(by_count):
            return [by_count[c] for c in counts], "named by their NUS-WIDE counts"
        return [f"label_{j}" for j in range(labels.shape[1])], "unnamed: the column counts are not NUS-WIDE's TC-10"
