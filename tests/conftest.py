"""Shared fixtures: the embedded datasets generated once per test session into a temporary folder."""
import pytest
import torch

from hashbench.data import open_dataset
from hashbench.embedded import EMBEDDED, make_dataset
from hashbench.methods import TrainSet
from hashbench.splits import make_split

torch.set_num_threads(2)


def _made(tmp_path_factory, name):
    folder = tmp_path_factory.mktemp(name)
    make_dataset(name, EMBEDDED[name], folder)
    dataset = open_dataset(folder)
    return dataset, make_split(dataset, EMBEDDED[name]["split"], EMBEDDED[name]["seed"])


@pytest.fixture(scope="session")
def mnist5k(tmp_path_factory):
    """(Dataset, split) of the single-label embedded set."""
    return _made(tmp_path_factory, "mnist5k")


@pytest.fixture(scope="session")
def mnist5k_tags(tmp_path_factory):
    """(Dataset, split) of the multi-label embedded set with tags and text."""
    return _made(tmp_path_factory, "mnist5k-tags")


class LabelFreeTrainSet(TrainSet):
    """A TrainSet whose labels raise on any read: fit() of a method that must not see labels is run on it."""

    @property
    def labels(self):
        raise AssertionError("fit read the labels")

    @labels.setter
    def labels(self, value):
        pass
