"""Index.search against the evaluator's ranking, FAISS export equality, the Python API round trip, the CLI
(`hashbench encode / search / export-faiss`) and the input checks of a trained model's encode."""
import faiss
import h5py
import numpy as np
import pytest
from PIL import Image

import hashbench
from hashbench import inputs
from hashbench.cli import main as cli
from hashbench.errors import HashbenchError
from hashbench.evaluation import evaluate_aqd
from hashbench.methods import DatasetInfo, TrainSet, get_method
from hashbench.pipeline import load_index, read_codes, save_model, train_set, write_codes
from hashbench.search import Index, pack_for_faiss, to_faiss

TINY_GPQ = {"iterations": 30, "labeled_batch": 20, "unlabeled_batch": 20, "encode_batch_size": 64}


# ------------------------------------------------------------------------------------------------- the reference
def stable_hamming(q, db):
    """Per query: database order by Hamming distance, ties by position; and the distances."""
    d = (np.asarray(q, np.int64)[:, None, :] != np.asarray(db, np.int64)[None, :, :]).sum(-1)
    return np.argsort(d, axis=1, kind="stable"), d


def stable_aqd(qf, assign, cb):
    table = (qf.astype(np.float64)[:, None, None, :] * cb.astype(np.float64)[None]).sum(-1).astype(np.float32)
    s = table[:, 0, assign[:, 0]]
    for m in range(1, cb.shape[0]):
        s = s + table[:, m, assign[:, m]]
    return np.argsort(-s, axis=1, kind="stable"), s


def untied(dist_row, k):
    """Positions r < k whose distance differs from both neighbours in the full sorted row: ids must agree there."""
    d = np.asarray(dist_row)
    return [r for r in range(k) if (r == 0 or d[r] != d[r - 1]) and (r + 1 == len(d) or d[r] != d[r + 1])]


def binary_case(rng, nq=9, n=3000, bits=24):
    centres = rng.choice([-1, 1], size=(12, bits))
    db = centres[rng.integers(0, 12, n)] * np.where(rng.random((n, bits)) < 0.1, -1, 1)
    q = centres[rng.integers(0, 12, nq)] * np.where(rng.random((nq, bits)) < 0.1, -1, 1)
    return q.astype(np.int8), db.astype(np.int8)


def quantized_case(rng, nq=7, n=2000, m=3, k=16, d=6):
    cb = rng.integers(-3, 4, size=(m, k, d)).astype(np.float32)     # small integers: every sum is exact in float32
    assign = rng.integers(0, k, size=(n, m)).astype(np.uint8)
    qf = rng.integers(-2, 3, size=(nq, d)).astype(np.float32)
    return qf, assign, cb


# -------------------------------------------------------------------------------------------- Index vs evaluator
@pytest.mark.parametrize("bits", [24, 64, 100])
def test_index_search_is_the_stable_hamming_ranking(bits):
    rng = np.random.default_rng(bits)
    q, db = binary_case(rng, bits=bits)
    ids = rng.permutation(10 * len(db))[:len(db)]
    order, d = stable_hamming(q, db)
    for k in (1, 17, 500, len(db), len(db) + 5):
        hits = Index(db, ids).search(q, k)
        kk = min(k, len(db))
        assert np.array_equal(hits.ids, ids[order[:, :kk]])
        assert np.array_equal(hits.distances, np.take_along_axis(d, order[:, :kk], 1))
    assert np.array_equal(Index(db).search(q[0], 5).ids[0], order[0, :5])  # one 1-D query; ids = positions
    packed = Index.from_packed(pack_for_faiss(db), bits, ids).search(q, 30)
    assert np.array_equal(packed.ids, ids[order[:, :30]])


def test_index_search_is_the_stable_aqd_ranking():
    rng = np.random.default_rng(1)
    qf, assign, cb = quantized_case(rng)
    order, s = stable_aqd(qf, assign, cb)
    hits = Index(assign, np.arange(len(assign)) + 100, codebooks=cb).search(qf, 40)
    assert np.array_equal(hits.ids, order[:, :40] + 100)
    assert np.array_equal(hits.distances, np.take_along_axis(s, order[:, :40], 1))


def test_index_l2_search_is_the_stable_adc_ranking():
    rng = np.random.default_rng(2)
    qf, assign, cb = quantized_case(rng)       # small integers: every distance is exact, ties are real ties
    recon = cb[0][assign[:, 0]] + cb[1][assign[:, 1]] + cb[2][assign[:, 2]]
    sq = ((qf[:, None, :].astype(np.float64) - recon[None]) ** 2).sum(-1)
    order = np.argsort(sq, axis=1, kind="stable")
    index = Index(assign, np.arange(len(assign)) + 100, codebooks=cb)
    hits = index.search(qf, 40, score="l2")
    assert np.array_equal(hits.ids, order[:, :40] + 100)
    assert np.array_equal(hits.distances, np.take_along_axis(sq, order[:, :40], 1).astype(np.float32))
    assert not np.array_equal(hits.ids, index.search(qf, 40).ids)   # another ranking than the inner product
    with pytest.raises(HashbenchError, match="score='l2' applies to quantized codes"):
        Index(binary_case(rng)[1]).search(binary_case(rng)[0], 3, score="l2")
    with pytest.raises(HashbenchError, match="score='cosine' is not allowed; use one of inner, l2"):
        index.search(qf, 3, score="cosine")


def test_index_refuses_bad_queries_and_k():
    rng = np.random.default_rng(2)
    q, db = binary_case(rng)
    index = Index(db)
    for bad, needle in ((q[:, :5], "24-bit"), (q[:0], "empty batch"), (np.zeros((2, 3, 24)), "24-bit")):
        with pytest.raises(HashbenchError, match=needle) as e:
            index.search(bad, 3)
        assert "\n" not in str(e.value)
    with pytest.raises(HashbenchError, match="k=0"):
        index.search(q, 0)
    with pytest.raises(HashbenchError, match="ids"):
        Index(db, np.arange(3))


# ------------------------------------------------------------------------------------------------ FAISS equality
def test_faiss_binary_flat_equals_the_evaluator_ranking():
    rng = np.random.default_rng(3)
    for bits in (24, 64, 70):
        q, db = binary_case(rng, bits=bits)
        ids = np.arange(len(db)) * 7 + 3
        index = Index(db, ids)
        k = 60
        fd, fi = to_faiss(index, "flat").search(pack_for_faiss(q), k)
        ours = index.search(q, k)
        order, d = stable_hamming(q, db)
        assert np.array_equal(fd, ours.distances)                    # the same distances, rank by rank
        for row in range(len(q)):
            full = np.take_along_axis(d[row], order[row], 0)
            keep = untied(full, k)
            assert np.array_equal(fi[row, keep], ours.ids[row, keep])  # and the same ids where nothing ties
            whole = full[:k] < full[k]                                   # tie groups that lie inside the top k
            assert set(fi[row, whole]) == set(ours.ids[row, whole])


def test_faiss_quantized_flat_equals_the_evaluator_ranking(tmp_path):
    rng = np.random.default_rng(4)
    for m, kw in ((3, 16), (2, 256)):
        qf, assign, cb = quantized_case(rng, m=m, k=kw)
        ids = np.arange(len(assign)) + 10_000
        index = Index(assign, ids, codebooks=cb)
        exported = to_faiss(index)
        faiss.write_index(exported, str(tmp_path / "q.faiss"))
        fd, fi = faiss.read_index(str(tmp_path / "q.faiss")).search(qf, 50)
        ours = index.search(qf, 50)
        order, s = stable_aqd(qf, assign, cb)
        assert np.array_equal(fd, ours.distances)
        compared = 0
        for row in range(len(qf)):
            keep = untied(np.take_along_axis(s[row], order[row], 0), 50)
            assert np.array_equal(fi[row, keep], ours.ids[row, keep])
            compared += len(keep)
        assert compared >= 5


def test_faiss_approximate_exports_find_exact_copies():
    rng = np.random.default_rng(5)
    _, db = binary_case(rng, n=2000, bits=32)
    ids = np.arange(len(db)) + 1
    index = Index(db, ids)
    exact = index.search(db[:20], 10)
    fd, fi = to_faiss(index, "ivf", nlist=16, nprobe=16).search(pack_for_faiss(db[:20]), 10)
    assert np.array_equal(fd, exact.distances) and set(fi.ravel()) <= set(ids)   # every list probed: exact
    fd, fi = to_faiss(index, "hnsw", hnsw_m=16).search(pack_for_faiss(db[:20]), 10)
    assert (fd[:, 0] == 0).mean() >= 0.9 and set(fi.ravel()) <= set(ids)       # approximate: most find themselves
    with pytest.raises(HashbenchError, match="kind: 'ivf' is for binary codes"):
        to_faiss(Index(np.zeros((5, 2), np.uint8), codebooks=np.zeros((2, 4, 3))), "ivf")
    with pytest.raises(HashbenchError, match="kind: 'lsh'"):
        to_faiss(index, "lsh")


# ------------------------------------------------------------------------------------------------- codes files
def test_codes_file_ids_and_names_round_trip_and_old_files_still_load(tmp_path):
    method = get_method("lsh")(16, 0, {}, DatasetInfo("x", (4, 4, 1), 2, frozenset({"image"})))
    method.fit(TrainSet(images=np.zeros((3, 4, 4, 1), np.uint8)))
    codes = np.where(np.random.default_rng(0).random((5, 16)) < 0.5, 1, -1).astype(np.int8)
    write_codes(tmp_path / "c.h5", method, {"database/image": codes, "query/image": codes[:2]},
                {"database": (np.array([9, 4, 7, 1, 0]), ["a.png", "b.png", "c/d.png", "é.png", "f.png"]),
                 "query": (np.array([2, 3]), None)})
    attrs, arrays = read_codes(tmp_path / "c.h5")
    assert arrays["database/names"].tolist() == ["a.png", "b.png", "c/d.png", "é.png", "f.png"]
    assert arrays["query/ids"].tolist() == [2, 3] and "query/names" not in arrays
    index = load_index(tmp_path / "c.h5")
    assert index.search(codes[2], 1).ids[0, 0] == 7 and index.name(7) == "c/d.png"
    with h5py.File(tmp_path / "old.h5", "w") as f:           # written before ids were stored
        f.attrs.update(method="lsh", bits=16, quantized=False)
        f.create_dataset("database/image", data=codes)
    assert load_index(tmp_path / "old.h5").ids.tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(HashbenchError, match="has no text database codes; it has image"):
        load_index(tmp_path / "c.h5", "text")


# ------------------------------------------------------------------------------------------ trained models: API
@pytest.fixture(scope="module")
def trained(mnist5k, tmp_path_factory):
    """A binary (lsh: fits the train mean) and a tiny quantized (gpq: 30 iterations) model trained on part of
    mnist5k and saved; the first 60 database images as the database."""
    dataset, split = mnist5k
    info_args = dict(name=dataset.name, image_shape=tuple(dataset.image_shape), n_classes=dataset.n_classes,
                     modalities=frozenset(dataset.modalities))
    folders = {}
    for name, params in (("lsh", {}), ("gpq", TINY_GPQ)):
        method = get_method(name)(32, 0, params, DatasetInfo(**info_args))
        sub = {"train": split["train"][:200], "unlabeled": split["unlabeled"][:200]}
        method.fit(train_set(type(method), dataset, sub))
        folders[name] = tmp_path_factory.mktemp(name)
        save_model(method, folders[name])
    return folders, dataset.images(split["database"][:60])


@pytest.mark.slow
@pytest.mark.parametrize("name", ["lsh", "gpq"])
def test_api_round_trip_finds_the_query_image(trained, name):
    folders, images = trained
    model = hashbench.load_model(folders[name])
    db = model.encode(images)
    index = hashbench.Index(db, np.arange(len(images)) + 500, codebooks=model.codebooks() if model.quantized else None)
    big = [np.asarray(Image.fromarray(im[:, :, 0]).resize((56, 56), Image.BILINEAR)) for im in images[:5]]
    assert np.array_equal(model.encode(big), model.encode(inputs.images(big, (28, 28, 1))))  # any size is resized
    queries = model.encode(images, role="query")
    hits = index.search(queries, len(images))
    ranks = np.array([int(np.flatnonzero(hits.ids[i] == 500 + i)[0]) for i in range(len(images))])
    if model.quantized:
        # the evaluator's ranking; a 30-iteration model puts most images among their own top 10 (the trained
        # default model is checked after `dvc repro`, README "Using a trained model")
        order = evaluate_aqd(queries, db, model.codebooks(), np.eye(60), np.eye(60), topk=10, per_query=True)
        assert np.array_equal(np.array(order["ap"]) > 0, ranks < 10) and np.median(ranks) < 10
    else:   # distance 0, ahead of every item at a larger distance
        for i, rank in enumerate(ranks):
            assert hits.distances[i, rank] == 0 and (hits.distances[i, :rank] == 0).all()


# ------------------------------------------------------------------------------------------ trained models: CLI
def write_pngs(folder, images):
    folder.mkdir()
    for i, im in enumerate(images):
        Image.fromarray(im[:, :, 0]).save(folder / f"img{i:03d}.png")
    Image.fromarray(np.kron(images[3][:, :, 0], np.ones((2, 2), np.uint8))).save(folder / "big.png")  # 56 x 56


@pytest.mark.slow
@pytest.mark.parametrize("name", ["lsh", "gpq"])
def test_cli_encode_search_export(trained, name, tmp_path, capsys):
    folders, images = trained
    write_pngs(tmp_path / "imgs", images[:40])
    codes = tmp_path / "codes.h5"
    assert cli(["encode", "--model", str(folders[name]), str(tmp_path / "imgs"), "-o", str(codes),
                "--batch-size", "16"]) == 0
    _, arrays = read_codes(codes)
    assert len(arrays["database/ids"]) == 41 and arrays["database/names"][0].endswith("big.png")
    capsys.readouterr()
    query = tmp_path / "imgs" / "img007.png"
    assert cli(["search", "--model", str(folders[name]), "--codes", str(codes), str(query), "-k", "10"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[1:]]
    assert len(rows) == 10 and [int(r[0]) for r in rows] == list(range(1, 11))
    names = [r[3] for r in rows]
    model = hashbench.load_model(folders[name])
    hits = load_index(codes).search(model.encode([query], role="query"), 10)   # the same through the API
    assert [int(r[1]) for r in rows] == hits.ids[0].tolist()
    if name == "lsh":       # the query file itself at distance 0, ahead of every item at a larger distance
        at = names.index(str(query))
        assert all(int(r[2]) == 0 for r in rows[:at + 1])
    else:                   # the asymmetric L2 distance finds the query file itself (README "Using a trained model")
        assert cli(["search", "--model", str(folders[name]), "--codes", str(codes), str(query), "--score", "l2"]) == 0
        rows = [line.split() for line in capsys.readouterr().out.splitlines()[1:]]
        l2 = load_index(codes).search(model.encode([query], role="query"), 10, score="l2")
        assert [int(r[1]) for r in rows] == l2.ids[0].tolist() and str(query) in [r[3] for r in rows]
    out = tmp_path / "index.faiss"
    assert cli(["export-faiss", "--codes", str(codes), "-o", str(out)]) == 0
    read = faiss.read_index(str(out)) if model.quantized else faiss.read_index_binary(str(out))
    assert read.ntotal == 41


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert cli(["search", "--model", str(tmp_path / "none"), "--codes", str(tmp_path / "c.h5"), "q.png"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "no trained model" in err
    assert cli(["encode", "--model", str(tmp_path), str(tmp_path / "nothing"), "-o", str(tmp_path / "c.h5")]) == 2
    assert cli(["search", "--model", str(tmp_path), "--codes", "c.h5"]) == 2
    assert "one of them" in capsys.readouterr().err
    assert cli(["export-faiss", "--codes", str(tmp_path / "missing.h5"), "-o", str(tmp_path / "x")]) == 2
    assert "no codes" in capsys.readouterr().err and not (tmp_path / "x").exists()


# --------------------------------------------------------------------------------------------------- input checks
def test_encode_input_checks_are_one_line(tmp_path):
    info = DatasetInfo("mnist5k-tags", (16, 16, 1), 3, frozenset({"image", "tags", "text"}), text_dim=6)
    lsh = get_method("lsh")(16, 0, {}, info)
    djsrh = get_method("djsrh")(16, 0, {}, info)
    cases = [(lsh, np.zeros((2, 16, 16, 3), np.uint8), "image", "3 channel.*expects 1"),
             (lsh, [np.zeros((9, 9, 3), np.uint8)], "image", r"images\[0\]: 3 channel"),
             (lsh, np.zeros((0, 16, 16, 1), np.uint8), "image", "empty batch"),
             (lsh, [], "image", "empty batch"),
             (lsh, np.zeros((2, 16, 16, 1), np.float32), "image", "uint8"),
             (djsrh, np.zeros((2, 5), np.float32), "text", "bags of 5 words given; this model expects 6"),
             (djsrh, np.zeros((0, 6), np.float32), "text", "empty batch")]
    for method, data, modality, needle in cases:
        with pytest.raises(HashbenchError, match=needle) as e:
            method.encode(data, modality)
        assert "\n" not in str(e.value)
    with pytest.raises(HashbenchError, match="/nonexistent.png: image missing or unreadable; give an image file"):
        lsh.encode(["/nonexistent.png"])
    Image.new("1", (8_000, 6_000)).save(tmp_path / "bomb.png")  # 48 M pixels in a few KB
    with pytest.raises(HashbenchError, match=r"bomb.png: image of 8000x6000 pixels is over the 40000000-pixel"):
        lsh.encode([tmp_path / "bomb.png"])


def test_bag_of_words_and_resizing():
    bag, unknown = inputs.bag_of_words("seven 7, zz seven", ["7", "seven", "x"])
    assert bag.tolist() == [[1.0, 2.0, 0.0]] and unknown == ["zz"]
    with pytest.raises(HashbenchError, match="none of 'zz'"):
        inputs.bag_of_words("zz", ["7"])
    rgb = np.random.default_rng(0).integers(0, 256, (30, 20, 3), dtype=np.uint8)
    out = inputs.images([rgb, Image.fromarray(rgb)], (10, 12, 3))
    want = np.asarray(Image.fromarray(rgb).resize((12, 10), Image.BILINEAR))
    assert out.shape == (2, 10, 12, 3) and np.array_equal(out[0], want) and np.array_equal(out[1], want)
    assert inputs.images([Image.fromarray(rgb)], (30, 20, 1)).shape == (1, 30, 20, 1)  # PIL: converted to gray


def test_cli_text_query_of_a_cross_modal_model(tmp_path, capsys):
    """--text: the words' bag over the model's saved vocabulary, encoded as a text query, against the image codes.
    (An untrained DJSRH: this checks the plumbing, not retrieval quality.)"""
    info = DatasetInfo("mnist5k-tags", (16, 16, 1), 3, frozenset({"image", "tags", "text"}), text_dim=4,
                       text_vocab=("seven", "7", "sieben", "dog"))
    save_model(get_method("djsrh")(16, 0, {}, info), tmp_path / "model")
    images = np.random.default_rng(0).integers(0, 256, (12, 16, 16, 1), dtype=np.uint8)
    write_pngs(tmp_path / "imgs", images)
    model = str(tmp_path / "model")
    assert cli(["encode", "--model", model, str(tmp_path / "imgs"), "-o", str(tmp_path / "c.h5")]) == 0
    capsys.readouterr()
    assert cli(["search", "--model", model, "--codes", str(tmp_path / "c.h5"), "--text", "seven, 7 zebra", "-k", "3"]) == 0
    out = capsys.readouterr()
    rows = [line.split() for line in out.out.splitlines()[1:]]
    text = hashbench.load_model(model).encode(np.array([[1.0, 1.0, 0.0, 0.0]]), "text", "query")
    assert [int(r[1]) for r in rows] == load_index(tmp_path / "c.h5").search(text, 3).ids[0].tolist()
    assert "left out: zebra" in out.err
    assert cli(["search", "--model", model, "--codes", str(tmp_path / "c.h5"), "--text", "zebra"]) == 2
    assert "none of 'zebra'" in capsys.readouterr().err
