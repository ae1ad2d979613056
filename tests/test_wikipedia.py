"""Wikipedia (Rasiwasia et al. 2010) on a miniature release served on 127.0.0.1: lists, images, XML articles, the
bag of words (vocabulary from the training articles only), the LDA option, the recorded md5 and the size cap."""
import dataclasses
import io

import numpy as np
import pytest
import scipy.io
from helpers import jpeg, make_zip, md5

from hashbench.data import open_dataset
from hashbench.datasets import REGISTRY, dataset_block, prepare_dataset
from hashbench.errors import HashbenchError
from hashbench.splits import make_split

# the miniature release has 9 pairs, not the real 2,173 / 693: the converter says so in a warning
pytestmark = pytest.mark.filterwarnings("ignore:wikipedia. .'train'. 6, 'test'. 3. pairs:UserWarning")

TRAIN = [("t1", "i1", 1, "Painting and sculpture in the gallery: painting &amp; sculpture."),
         ("t2", "i2", 1, "The gallery shows painting of the river & the painting school."),   # a bare & (not XML)
         ("t3", "i3", 2, "Cells and genes: biology of cells, genes and proteins."),
         ("t4", "i4", 2, "Proteins fold; cells divide; genes mutate."),
         ("t5", "i5", 9, "Football and tennis are a sport; football is popular."),
         ("t6", "i6", 9, "Tennis players and football teams.")]
TEST = [("t7", "i7", 1, "Sculpture and painting, baroque gallery."),
        ("t8", "i8", 2, "Genes and cells and zebrafish."),                  # zebrafish: only in a query article
        ("t9", "i9", 9, "Football tennis football.")]
CATS = ["art", "biology", "geography", "history", "literature", "media", "music", "royalty", "sport", "warfare"]


def _release(path, features=True):
    rng = np.random.default_rng(0)
    entries = [("wikipedia_dataset/categories.list", "\n".join(CATS) + "\n")]
    for fname, rows in (("trainset_txt_img_cat.list", TRAIN), ("testset_txt_img_cat.list", TEST)):
        entries.append((f"wikipedia_dataset/{fname}", "".join(f"{t}\t{i}\t{c}\n" for t, i, c, _ in rows)))
        for t, i, c, text in rows:
            entries.append((f"wikipedia_dataset/texts/{t}.xml",
                            f'<?xml version="1.0"?>\n<document><title>{t}</title>\n<text>{text}</text></document>\n'))
            entries.append((f"wikipedia_dataset/images/{CATS[c - 1]}/{i}.jpg", jpeg(rng, 10, 14)))
    lda = {"T_tr": rng.random((len(TRAIN), 10)), "T_te": rng.random((len(TEST), 10))}
    if features:
        buf = io.BytesIO()
        scipy.io.savemat(buf, {**lda, "I_tr": rng.random((len(TRAIN), 128)), "I_te": rng.random((len(TEST), 128))})
        entries.append(("wikipedia_dataset/raw_features.mat", buf.getvalue()))
    make_zip(path, entries)
    return lda


def _serve(monkeypatch, base, **changes):
    spec = REGISTRY["wikipedia"]
    sources = tuple(dataclasses.replace(s, url=f"{base}/{s.name}", **changes) if s.url else s for s in spec.sources)
    monkeypatch.setattr(type(spec), "sources", sources)
    assert sources[0].md5 is None                               # no checksum is published


def test_wikipedia_release(server, tmp_path, monkeypatch):
    base, www, paths = server
    lda = _release(www / "wikipedia_dataset.zip")
    _serve(monkeypatch, base)
    block = {"image_size": 32, "min_df": 2}
    man = prepare_dataset("wikipedia", block, tmp_path / "raw", download_root=tmp_path / "dl",
                          manual_root=tmp_path / "manual", progress=False)
    assert man["n_items"] == 9 and man["class_names"] == CATS and man["single_label"]
    assert set(man["modalities"]) == {"image", "text"} and man["image_shape"] == [32, 32, 3]
    record = man["sources"]["wikipedia_dataset.zip"]
    assert record == {"bytes": (www / "wikipedia_dataset.zip").stat().st_size, "checked": "none published",
                      "md5": md5((www / "wikipedia_dataset.zip").read_bytes())}
    with open_dataset(tmp_path / "raw") as ds:
        vocab = ds.text_vocab()
        # words of 3+ letters in >= 2 training articles, stop words out; by training document frequency then name
        assert vocab == ["cells", "football", "gallery", "genes", "painting", "proteins", "tennis"]
        text = ds.text()
        assert text[0].tolist() == [0, 0, 1, 0, 1, 0, 0] and text[7].tolist() == [1, 0, 0, 1, 0, 0, 0]
        assert ds.labels().argmax(1).tolist() == [0, 0, 1, 1, 8, 8, 0, 1, 8]
        assert ds.image_paths()[:2] == ["art/i1.jpg", "art/i2.jpg"] and ds.images([8]).shape == (1, 32, 32, 3)
        assert ds.partition().tolist() == [0] * 6 + [1] * 3
        p = dataset_block("wikipedia", block)
        split = make_split(ds, p["split"], 0)
    assert split["query"].tolist() == [6, 7, 8] and split["train"].tolist() == split["database"].tolist() == list(
        range(6))
    prepare_dataset("wikipedia", {**block, "text": "lda"}, tmp_path / "lda", download_root=tmp_path / "dl",
                    manual_root=tmp_path / "manual", progress=False)
    with open_dataset(tmp_path / "lda") as ds:
        np.testing.assert_allclose(ds.text(), np.vstack([lda["T_tr"], lda["T_te"]]).astype(np.float32))
        assert ds.text_vocab() is None
    assert paths == ["/wikipedia_dataset.zip"]                  # downloaded once, then the cached copy


def test_wikipedia_lda_from_a_placed_feature_file_and_the_cap(tmp_path, monkeypatch):
    manual = tmp_path / "manual" / "wikipedia"
    manual.mkdir(parents=True)
    lda = _release(manual / "wikipedia_dataset.zip", features=False)
    _serve(monkeypatch, "http://127.0.0.1:9")
    kwargs = {"download_root": tmp_path / "dl", "manual_root": tmp_path / "manual", "progress": False}
    with pytest.raises(HashbenchError, match=r"^wikipedia\.text: lda needs raw_features\.mat \(in "
                                             r"wikipedia_dataset\.zip or placed in data/manual/wikipedia/\)"):
        prepare_dataset("wikipedia", {"text": "lda"}, tmp_path / "raw", **kwargs)
    scipy.io.savemat(manual / "raw_features.mat", lda)
    prepare_dataset("wikipedia", {"text": "lda", "image_size": 32}, tmp_path / "raw", **kwargs)
    with open_dataset(tmp_path / "raw") as ds:
        np.testing.assert_allclose(ds.text(), np.vstack([lda["T_tr"], lda["T_te"]]).astype(np.float32))
        assert ds.manifest["sources"]["raw_features.mat"]["checked"] == "none published"
    _serve(monkeypatch, "http://127.0.0.1:9", max_bytes=1000)
    with pytest.raises(HashbenchError, match=r"wikipedia_dataset\.zip: \d+ bytes, over the 1000-byte cap for "
                                             r"wikipedia_dataset\.zip"):
        prepare_dataset("wikipedia", {}, tmp_path / "raw2", **kwargs)
    assert not (tmp_path / "raw2").exists()


def test_wikipedia_bad_lists_are_one_line(tmp_path):
    spec = REGISTRY["wikipedia"]
    make_zip(tmp_path / "w.zip", [("trainset_txt_img_cat.list", "t1\ti1\t11\n"), ("testset_txt_img_cat.list", "")])
    with pytest.raises(HashbenchError, match=r"trainset_txt_img_cat\.list line 1: 't1\\ti1\\t11' is not '<text id> "
                                             r"<image id> <category 1\.\.10>'"):
        spec.convert({"wikipedia_dataset.zip": tmp_path / "w.zip"}, spec.validate({}), tmp_path / "raw")
    make_zip(tmp_path / "w.zip", [("trainset_txt_img_cat.list", "t1\ti1\t1\n"), ("testset_txt_img_cat.list", "")])
    with pytest.raises(HashbenchError, match=r"w\.zip: t1\.xml not found; use the official wikipedia_dataset\.zip"):
        spec.convert({"wikipedia_dataset.zip": tmp_path / "w.zip"}, spec.validate({}), tmp_path / "raw")
