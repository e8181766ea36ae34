"""analogeq.runs.datasets: digits split, IDX reader on synthetic files, error messages."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from analogeq import DatasetNotFoundError, IDXFormatError, load_dataset
from analogeq.runs.datasets import IDX_FILES, Dataset, find_idx_files, read_idx, stratified_head


def write_idx(path: Path, arr: np.ndarray, code: int = 0x08, magic: bytes | None = None) -> Path:
    """Write ``arr`` as an IDX file (gzipped if the name ends in .gz)."""
    dt = {0x08: ">u1", 0x0B: ">i2", 0x0D: ">f4"}[code]
    header = magic if magic is not None else bytes([0, 0, code, arr.ndim])
    data = header + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.astype(dt).tobytes()
    if path.name.endswith(".gz"):
        data = gzip.compress(data)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def make_idx_set(directory: Path, rng: np.random.Generator, gz: bool, n_train=30, n_test=12):
    """Write a tiny 4-file IDX dataset of 5x4 images; return the raw arrays."""
    suffix = ".gz" if gz else ""
    raw = {
        "train_images": rng.integers(0, 256, (n_train, 5, 4), dtype=np.uint8),
        "train_labels": (np.arange(n_train) % 10).astype(np.uint8),
        "test_images": rng.integers(0, 256, (n_test, 5, 4), dtype=np.uint8),
        "test_labels": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    raw["train_images"][0, 0, 0], raw["train_images"][0, 0, 1] = 0, 255
    for role, base in IDX_FILES.items():
        write_idx(directory / (base + suffix), raw[role])
    return raw


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_dataset("digits")


def test_digits_shapes_and_ranges(digits):
    assert digits.name == "digits" and digits.num_classes == 10 and digits.image_shape == (8, 8)
    assert digits.x_train.shape == (1437, 1, 8, 8) and digits.x_test.shape == (360, 1, 8, 8)
    assert digits.y_train.shape == (1437,) and digits.y_train.dtype == np.int64
    assert digits.x_train.dtype == np.float64
    for x in (digits.x_train, digits.x_test):
        assert x.min() == 0.0 and x.max() == 1.0
    np.testing.assert_array_equal(np.unique(digits.x_train * 16), np.arange(17.0))
    assert digits.num_features == 64


def test_digits_split_is_deterministic_and_stratified(digits):
    again = load_dataset("DIGITS", flatten=True, dtype=np.float32)
    assert again.x_train.shape == (1437, 64) and again.x_train.dtype == np.float32
    np.testing.assert_array_equal(again.x_train, digits.x_train.reshape(-1, 64).astype(np.float32))
    np.testing.assert_array_equal(again.y_test, digits.y_test)
    tr = np.bincount(digits.y_train, minlength=10) / digits.y_train.size
    te = np.bincount(digits.y_test, minlength=10) / digits.y_test.size
    np.testing.assert_allclose(tr, te, atol=0.01)
    # no example appears in both splits
    train_rows = {r.tobytes() for r in digits.x_train.reshape(-1, 64)}
    overlap = sum(r.tobytes() in train_rows for r in digits.x_test.reshape(-1, 64))
    assert overlap <= 2  # the raw digits data contain a few exact duplicates


def test_digits_limits_are_stratified():
    ds = load_dataset("digits", limit_train=100, limit_test=50)
    assert ds.x_train.shape[0] == 100 and ds.x_test.shape[0] == 50
    assert np.bincount(ds.y_train, minlength=10).min() >= 9
    full = load_dataset("digits")
    idx = stratified_head(full.y_train, 100)
    np.testing.assert_array_equal(ds.x_train, full.x_train[idx])


def test_stratified_head():
    y = np.array([0, 0, 0, 0, 1, 1, 0, 0, 1, 1])
    np.testing.assert_array_equal(stratified_head(y, 5), [0, 1, 2, 4, 5])
    np.testing.assert_array_equal(stratified_head(y, 50), np.arange(10))
    with pytest.raises(ValueError, match=">= 1"):
        stratified_head(y, 0)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_dataset_round_trip(tmp_path, gz):
    raw = make_idx_set(tmp_path, np.random.default_rng(0), gz)
    ds = load_dataset("mnist", tmp_path)
    assert ds.name == "mnist" and ds.image_shape == (5, 4)
    assert ds.x_train.shape == (30, 1, 5, 4) and ds.x_test.shape == (12, 1, 5, 4)
    np.testing.assert_array_equal(ds.x_train * 255, raw["train_images"][:, None])
    np.testing.assert_array_equal(ds.x_test[:, 0] * 255, raw["test_images"])
    np.testing.assert_array_equal(ds.y_train, raw["train_labels"])
    np.testing.assert_array_equal(ds.y_test, raw["test_labels"])
    assert ds.x_train.min() == 0.0 and ds.x_train.max() == 1.0
    flat = load_dataset("fashion-mnist", str(tmp_path), flatten=True, limit_train=10)
    assert flat.x_train.shape == (10, 20) and flat.name == "fashion-mnist"
    np.testing.assert_array_equal(np.sort(flat.y_train), np.arange(10))


def test_idx_files_in_subdirectory(tmp_path):
    (tmp_path / "unrelated").mkdir()
    (tmp_path / "unrelated" / "train-images-idx3-ubyte").write_bytes(b"")  # incomplete set
    raw = make_idx_set(tmp_path / "raw", np.random.default_rng(1), gz=True)
    files = find_idx_files(tmp_path)
    assert files["train_images"] == tmp_path / "raw" / "train-images-idx3-ubyte.gz"
    ds = load_dataset("fashion_mnist", tmp_path)
    np.testing.assert_array_equal(ds.x_test[:, 0] * 255, raw["test_images"])


def test_read_idx_other_types(tmp_path):
    a = np.arange(-6, 6, dtype=np.int16).reshape(3, 4)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "a.idx", a, code=0x0B)), a)
    f = np.linspace(-1, 1, 7, dtype=np.float32)
    out = read_idx(write_idx(tmp_path / "f.idx.gz", f, code=0x0D))
    assert out.dtype == np.float32 and out.dtype.isnative
    np.testing.assert_array_equal(out, f)


def test_bad_magic_number(tmp_path):
    arr = np.zeros((2, 3, 3), dtype=np.uint8)
    bad = write_idx(tmp_path / "bad", arr, magic=b"\x01\x00\x08\x03")
    with pytest.raises(IDXFormatError, match="bad IDX magic number 0x01000803"):
        read_idx(bad)
    with pytest.raises(IDXFormatError, match="magic"):
        read_idx(write_idx(tmp_path / "bad2", arr, magic=b"\x00\x00\x07\x03"))


def test_size_mismatch_and_label_errors(tmp_path):
    p = write_idx(tmp_path / "t", np.zeros((2, 3, 3), dtype=np.uint8))
    p.write_bytes(p.read_bytes()[:-1])
    with pytest.raises(IDXFormatError, match="17 data bytes"):
        read_idx(p)
    (tmp_path / "g.gz").write_bytes(b"not gzip")
    with pytest.raises(IDXFormatError, match="cannot read"):
        read_idx(tmp_path / "g.gz")
    d = tmp_path / "set"
    make_idx_set(d, np.random.default_rng(2), gz=False)
    write_idx(d / "t10k-labels-idx1-ubyte", np.zeros(5, dtype=np.uint8))
    with pytest.raises(IDXFormatError, match="12 images .* but 5 labels"):
        load_dataset("mnist", d)


def test_missing_dataset_messages(tmp_path):
    with pytest.raises(DatasetNotFoundError) as exc:
        load_dataset("fashion-mnist", tmp_path / "nowhere")
    msg = str(exc.value)
    assert "apt-get install dataset-fashion-mnist" in msg
    assert "--data-dir DIR" in msg and "train-images-idx3-ubyte" in msg
    assert isinstance(exc.value, FileNotFoundError)
    with pytest.raises(DatasetNotFoundError, match="--data-dir DIR") as exc:
        load_dataset("mnist")
    assert "t10k-labels-idx1-ubyte" in str(exc.value)
    make_idx_set(tmp_path, np.random.default_rng(3), gz=False)
    (tmp_path / "t10k-images-idx3-ubyte").unlink()
    with pytest.raises(DatasetNotFoundError, match="all four IDX files"):
        load_dataset("mnist", tmp_path)


def test_unknown_name():
    with pytest.raises(ValueError, match="digits, fashion-mnist, mnist"):
        load_dataset("cifar10")


def test_dataset_is_frozen(digits):
    with pytest.raises(AttributeError):
        digits.name = "x"  # type: ignore[misc]


def _train_epoch(net, opt, ds, rng, batch=64):
    from digital import softmax_cross_entropy

    perm = rng.permutation(ds.y_train.size)
    for i in range(0, perm.size, batch):
        b = perm[i : i + batch]
        _, dlogits = softmax_cross_entropy(net.forward(ds.x_train[b]), ds.y_train[b])
        net.backward(dlogits)
        opt.step(net.parameters(), net.gradients())


def _make_net(seed):
    from digital import BatchNorm, Conv2d, Flatten, Linear, MaxPool2d, ReLU, Sequential

    rng = np.random.default_rng(seed)
    return Sequential(
        Conv2d(1, 8, 3, padding=1, rng=rng),
        BatchNorm(8),
        ReLU(),
        MaxPool2d(2),
        Flatten(),
        Linear(8 * 4 * 4, 10, rng=rng),
    )


def test_digits_trains_and_resumes_exactly(digits):
    """Integration: the digital stack learns digits; checkpoint/resume is bit-exact."""
    from digital import SGD, Adam, CosineLR, accuracy

    net = _make_net(0)
    opt = Adam(lr=CosineLR(3e-3, 5 * 23))
    rng = np.random.default_rng(1)
    for _ in range(4):
        _train_epoch(net, opt, digits, rng)
    assert accuracy(net.forward(digits.x_test, train=False), digits.y_test) > 0.85

    small = load_dataset("digits", limit_train=256)
    net_a, opt_a = _make_net(2), SGD(0.05, momentum=0.9, nesterov=True)
    _train_epoch(net_a, opt_a, small, np.random.default_rng(3))
    ckpt_net, ckpt_opt = net_a.state_dict(), opt_a.state_dict()
    _train_epoch(net_a, opt_a, small, np.random.default_rng(4))

    net_b, opt_b = _make_net(5), SGD(0.05, momentum=0.9, nesterov=True)
    net_b.load_state_dict(ckpt_net)
    opt_b.load_state_dict(ckpt_opt)
    _train_epoch(net_b, opt_b, small, np.random.default_rng(4))
    for (name, a), b in zip(net_a.state_dict().items(), net_b.state_dict().values(), strict=True):
        np.testing.assert_array_equal(a, b, err_msg=name)


def test_baselines_train_digital_reference_models(tmp_path):
    """`analogeq baselines` on the bundled digits: both digital models beat 90% (the
    dataset is easy; scikit-learn's own examples reach ~95%), and the table is written."""
    from analogeq.cli import main

    out = tmp_path / "baselines.md"
    assert main(["baselines", "--dataset", "digits", "--out", str(out)]) == 0
    rows = [r for r in out.read_text().splitlines() if r.startswith("| ") and "%" in r]
    assert len(rows) == 2
    for r in rows:
        acc = float(r.split("|")[2].strip().rstrip("%"))
        assert 90.0 < acc <= 100.0, r
