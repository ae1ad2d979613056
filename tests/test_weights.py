"""Pretrained weight files are verified by their full sha256 and read without unpickling code, downloaded or placed."""
import urllib.error

import pytest
import torch

from hashbench import networks, weights
from hashbench.errors import HashbenchError

RESNET18 = "resnet18-f37072fd.pth"
RESNET18_URL = f"https://download.pytorch.org/models/{RESNET18}"


class Payload:
    """Unpickling this runs code: it creates the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').close()",)


@pytest.fixture
def cache(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    folder = weights.cache_dir()
    folder.mkdir(parents=True)
    return folder


def test_crafted_weight_file_in_the_cache_is_refused_unread(cache, tmp_path):
    marker = tmp_path / "payload-ran"
    torch.save({"conv1.weight": Payload(marker)}, cache / RESNET18)
    with pytest.raises(HashbenchError) as err:
        networks.Backbone("resnet18", (28, 28, 1), pretrained=True)
    message = str(err.value)
    assert not marker.exists()
    assert message.startswith(f"{cache / RESNET18}: sha256 ") and "\n" not in message
    assert weights.SHA256[RESNET18][0] in message and weights.file_sha256(cache / RESNET18) in message


def test_a_file_with_the_right_hash_is_still_read_as_tensors_only(cache, tmp_path, monkeypatch):
    marker = tmp_path / "payload-ran"
    torch.save({"conv1.weight": Payload(marker)}, cache / RESNET18)
    monkeypatch.setitem(weights.SHA256, RESNET18, (weights.file_sha256(cache / RESNET18), 0))
    with pytest.raises(HashbenchError, match=r"not a plain weights file"):
        weights.load_state_dict(RESNET18_URL)
    assert not marker.exists()


def test_verified_state_dict_loads(cache, monkeypatch):
    state = {"w": torch.arange(6.0).view(2, 3)}
    torch.save(state, cache / RESNET18)
    monkeypatch.setitem(weights.SHA256, RESNET18, (weights.file_sha256(cache / RESNET18), 0))
    assert torch.equal(weights.load_state_dict(RESNET18_URL)["w"], state["w"])


def test_download_failure_names_file_and_folder(cache, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(HashbenchError) as err:
        networks.Backbone("resnet18", (28, 28, 1), pretrained=True)
    message = str(err.value)
    assert RESNET18 in message and str(cache) in message and "\n" not in message


def test_downloaded_file_with_a_wrong_hash_is_not_kept(cache, monkeypatch):
    def tampered(url, dst, hash_prefix=None, progress=True):
        with open(dst, "wb") as handle:
            handle.write(b"not the weights")

    monkeypatch.setattr(torch.hub, "download_url_to_file", tampered)
    with pytest.raises(HashbenchError, match=r"is not the official resnet18-f37072fd\.pth"):
        weights.load_state_dict(RESNET18_URL)
    assert list(cache.iterdir()) == []


def test_unknown_weight_file_is_refused(cache):
    with pytest.raises(HashbenchError, match=r"^weights other-12345678\.pth: no known sha256"):
        weights.load_state_dict("https://example.org/other-12345678.pth")


def test_every_known_hash_matches_its_file_name():
    for name, (sha, size) in weights.SHA256.items():
        assert len(sha) == 64 and size > 0
        assert name.rsplit("-", 1)[1].removesuffix(".pth") == sha[:8]
