"""Shared fixtures: the embedded datasets generated once per test session into a temporary folder, and miniature
copies of real archives."""
import functools
import http.server
import io
import threading
import zipfile

import numpy as np
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


def _image_text_pairs(n=80, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, 2))
    images = np.clip(128 + 40 * (z @ rng.standard_normal((2, 6))) + 10 * rng.standard_normal((n, 6)), 0, 255)
    texts = np.maximum(0, z @ rng.standard_normal((2, 4)) + 0.3 * rng.standard_normal((n, 4))).astype(np.float32)
    return images.astype(np.uint8).reshape(n, 2, 3, 1), texts


@pytest.fixture
def image_text_pairs():
    """pairs(n=80, seed=0) -> images (n, 2, 3, 1) uint8 and 4-word texts (n, 4) float32 sharing a 2-d latent
    signal plus noise: a tiny cross-modal train set."""
    return _image_text_pairs


class LabelFreeTrainSet(TrainSet):
    """A TrainSet whose labels raise on any read: fit() of a method that must not see labels is run on it."""

    @property
    def labels(self):
        raise AssertionError("fit read the labels")

    @labels.setter
    def labels(self, value):
        pass


MIR_CONCEPTS = {"animals": lambda i: i % 5 == 2, "baby": lambda i: i % 4 == 1, "baby_r1": lambda i: i % 8 == 1,
                "sky": lambda i: i % 3 == 0}
MIR_TAGS = {"animals": "dog", "baby": "kid", "sky": "blue"}


@pytest.fixture
def mirflickr_archives():
    """build(folder, n) writes a miniature mirflickr25k.zip (JPEGs of different sizes whose colour follows the
    labels, per-image tags from the labels plus a camera word, doc/common_tags.txt) and
    mirflickr25k_annotations_v080.zip (concept i is in image i's labels when MIR_CONCEPTS[concept](i))."""
    from PIL import Image

    def build(folder, n=12):
        rng = np.random.default_rng(3)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            for i in range(1, n + 1):
                on = [c for c, rule in MIR_CONCEPTS.items() if rule(i)]
                pixels = np.full((10 + i % 9, 14, 3), 60 * len(on), np.uint8)
                pixels[:, :, 0] += 50 * ("sky" in on)
                img = io.BytesIO()
                Image.fromarray(pixels + rng.integers(0, 20, pixels.shape, dtype=np.uint8)).save(img, "JPEG")
                zf.writestr(f"mirflickr/im{i}.jpg", img.getvalue())
                if i % 6 != 4:  # some images have no tags file
                    words = [MIR_TAGS[c] for c in on if c in MIR_TAGS] + ["nikon" if i % 2 else "canon"]
                    zf.writestr(f"mirflickr/meta/tags/tags{i}.txt", "\n".join(words + words[:1]) + "\n")
            zf.writestr("mirflickr/doc/common_tags.txt", "blue 40\ndog 30\nkid 20\nnikon 20\n")
        (folder / "mirflickr25k.zip").write_bytes(buf.getvalue())
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("README.txt", "annotations\n")
            for name, rule in MIR_CONCEPTS.items():
                ids = "".join(f"{i}\n" for i in range(1, n + 1) if rule(i))
                zf.writestr(f"mirflickr25k_annotations_v080/{name}.txt", ids)
        (folder / "mirflickr25k_annotations_v080.zip").write_bytes(buf.getvalue())

    return build


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep test output quiet
        pass

    def do_GET(self):  # noqa: N802
        self.server.paths.append(self.path)
        super().do_GET()


@pytest.fixture
def server(tmp_path, monkeypatch):
    """Serve tmp_path/www on 127.0.0.1 (ephemeral port) from a thread; yields (base_url, www, requested paths)."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    www = tmp_path / "www"
    www.mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, directory=str(www)))
    httpd.paths = []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", www, httpd.paths
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
    assert len(httpd.paths) <= 10  # bounded request count per test

