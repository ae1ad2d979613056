"""Kept for callers of the old catalog (methods/base.py imports datasets_with): the dataset registry now lives in
hashbench.datasets, one module per dataset."""
from __future__ import annotations

from .datasets import check_dataset_name, dataset_block, datasets_with

__all__ = ["check_dataset_name", "dataset_block", "datasets_with"]
