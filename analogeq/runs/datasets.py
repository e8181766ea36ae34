"""Small image-classification datasets for training hybrid networks.

:func:`load_dataset` returns a frozen :class:`Dataset` with pixels scaled to
``[0, 1]``, images shaped ``(N, 1, H, W)`` (or ``(N, H*W)`` with
``flatten=True``) and integer labels ``(N,)``.

Known datasets:

``digits``
    scikit-learn's bundled 8x8 digits (1797 images, values 0..16 divided by
    16; no download).  Fixed stratified split:
    ``train_test_split(x, y, test_size=0.2, stratify=y, random_state=0)``,
    giving 1437 training and 360 test images.
``fashion-mnist``
    Zalando's Fashion-MNIST (28x28, 60000/10000).  Read from ``data_dir`` or,
    by default, ``/usr/share/datasets/fashion-mnist`` where the Debian package
    ``dataset-fashion-mnist`` installs it.
``mnist``
    LeCun's MNIST (28x28, 60000/10000); needs ``data_dir``.

The IDX datasets are read from the four standard files
``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte`` (each plain or
gzipped ``.gz``; the ``train-images.idx3-ubyte`` spelling is accepted too),
found in the directory itself or in one level of its subdirectories (the first
directory, in sorted order, that holds all four).  Pixels are divided by 255.
"""

from __future__ import annotations

import gzip
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DatasetNotFoundError, IDXFormatError

__all__ = [
    "DEFAULT_FASHION_MNIST_DIR",
    "IDX_FILES",
    "KNOWN_DATASETS",
    "Dataset",
    "DatasetNotFoundError",
    "IDXFormatError",
    "find_idx_files",
    "load_dataset",
    "read_idx",
    "stratified_head",
]

#: Canonical dataset names accepted by :func:`load_dataset`.
KNOWN_DATASETS: tuple[str, ...] = ("digits", "fashion-mnist", "mnist")

#: Where the Debian package ``dataset-fashion-mnist`` installs the gzipped IDX files.
DEFAULT_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")

#: Role -> standard IDX base name.
IDX_FILES: dict[str, str] = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

_ALIASES = {"fashion_mnist": "fashion-mnist", "fashionmnist": "fashion-mnist"}

# IDX type code -> big-endian NumPy dtype.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_HOWTO = {
    "fashion-mnist": (
        "Get it with `sudo apt-get install dataset-fashion-mnist` (Debian/Ubuntu, about 30 MB, "
        f"installs into {DEFAULT_FASHION_MNIST_DIR}), or download the four IDX files "
        "(train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, "
        "t10k-labels-idx1-ubyte.gz) from https://github.com/zalandoresearch/fashion-mnist "
        "into a directory DIR and pass data_dir=DIR (command line: --data-dir DIR)."
    ),
    "mnist": (
        "Download the four MNIST IDX files (train-images-idx3-ubyte.gz, "
        "train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz) "
        "from the MNIST web page or a mirror into a directory DIR and pass data_dir=DIR "
        "(command line: --data-dir DIR)."
    ),
}


@dataclass(frozen=True)
class Dataset:
    """A train/test split of an image-classification dataset.

    Attributes:
        name: Canonical dataset name.
        x_train: Training inputs in ``[0, 1]``, ``(N, 1, H, W)`` or ``(N, H*W)``.
        y_train: Training labels, int64 ``(N,)`` in ``[0, num_classes)``.
        x_test: Test inputs, same layout as ``x_train``.
        y_test: Test labels, int64.
        num_classes: Number of classes.
        image_shape: ``(H, W)`` of one image (also when flattened).
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    image_shape: tuple[int, int]

    @property
    def num_features(self) -> int:
        """``H * W`` (the input size of a first fully connected layer)."""
        return self.image_shape[0] * self.image_shape[1]

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, train={self.x_train.shape}, test={self.x_test.shape}, "
            f"num_classes={self.num_classes}, dtype={self.x_train.dtype})"
        )


# ---------------------------------------------------------------------------
# IDX reading
# ---------------------------------------------------------------------------


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (plain, or gzip-compressed if the name ends in ``.gz``).

    Format: two zero bytes, a type code byte (0x08 ubyte, 0x09 byte, 0x0B
    short, 0x0C int, 0x0D float, 0x0E double), a byte with the number of
    dimensions ``d``, ``d`` big-endian uint32 sizes, then the data (big-endian,
    C order).

    Args:
        path: File path.

    Returns:
        Array of the stored shape, in native byte order (e.g. ``uint8``).

    Raises:
        IDXFormatError: bad magic number or a data size that does not match the header.
    """
    path = Path(path)
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
        if isinstance(exc, FileNotFoundError):
            raise
        raise IDXFormatError(f"{path}: cannot read ({exc})") from exc
    if len(raw) < 4:
        raise IDXFormatError(f"{path}: too short for an IDX header ({len(raw)} bytes)")
    zero0, zero1, code, ndim = raw[:4]
    if zero0 != 0 or zero1 != 0 or code not in _IDX_DTYPES or ndim == 0:
        raise IDXFormatError(
            f"{path}: bad IDX magic number 0x{raw[:4].hex()} (expected 0x0000TTDD with type "
            "code TT in {08,09,0b,0c,0d,0e} and DD >= 1 dimensions)"
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise IDXFormatError(f"{path}: truncated header ({ndim} dimensions announced)")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = _IDX_DTYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    got = len(raw) - header
    if got != expected:
        raise IDXFormatError(
            f"{path}: header announces shape {shape} ({expected} data bytes) but the file has "
            f"{got} data bytes"
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


def _find_in(directory: Path) -> dict[str, Path] | None:
    found: dict[str, Path] = {}
    for role, base in IDX_FILES.items():
        dotted = base.replace("-idx", ".idx")
        for name in (base, base + ".gz", dotted, dotted + ".gz"):
            p = directory / name
            if p.is_file():
                found[role] = p
                break
        else:
            return None
    return found


def find_idx_files(directory: str | Path) -> dict[str, Path]:
    """Locate the four standard IDX files in ``directory`` or one of its subdirectories.

    Args:
        directory: Directory to search (itself first, then its immediate
            subdirectories in sorted order; the first holding all four wins).

    Returns:
        Mapping with keys ``train_images``, ``train_labels``, ``test_images``,
        ``test_labels`` (see :data:`IDX_FILES`) to file paths.

    Raises:
        DatasetNotFoundError: the directory does not exist or no candidate
            directory holds all four files.
    """
    directory = Path(directory).expanduser()
    if not directory.is_dir():
        raise DatasetNotFoundError(f"directory {directory} does not exist")
    candidates = [directory] + sorted(p for p in directory.iterdir() if p.is_dir())
    for cand in candidates:
        found = _find_in(cand)
        if found is not None:
            return found
    wanted = ", ".join(f"{b}[.gz]" for b in IDX_FILES.values())
    raise DatasetNotFoundError(
        f"no directory among {directory} and its subdirectories holds all four IDX files ({wanted})"
    )


def _load_idx_dataset(name: str, data_dir: Path) -> tuple[np.ndarray, ...]:
    files = find_idx_files(data_dir)
    arrays = {role: read_idx(path) for role, path in files.items()}
    for split in ("train", "test"):
        img, lab = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        ipath, lpath = files[f"{split}_images"], files[f"{split}_labels"]
        if img.ndim != 3 or img.dtype != np.uint8:
            raise IDXFormatError(
                f"{ipath}: expected uint8 images (N, H, W), got {img.dtype} {img.shape}"
            )
        if lab.ndim != 1 or lab.dtype != np.uint8:
            raise IDXFormatError(
                f"{lpath}: expected uint8 labels (N,), got {lab.dtype} {lab.shape}"
            )
        if img.shape[0] == 0:
            raise IDXFormatError(f"{ipath}: holds no images (0 samples)")
        if img.shape[0] != lab.shape[0]:
            raise IDXFormatError(
                f"{name} {split}: {img.shape[0]} images in {ipath.name} but {lab.shape[0]} "
                f"labels in {lpath.name}"
            )
    if arrays["train_images"].shape[1:] != arrays["test_images"].shape[1:]:
        raise IDXFormatError(f"{name}: train and test images have different sizes")
    return (
        arrays["train_images"],
        arrays["train_labels"],
        arrays["test_images"],
        arrays["test_labels"],
    )


# ---------------------------------------------------------------------------
# Public loader
# ---------------------------------------------------------------------------


def stratified_head(y: np.ndarray, n: int) -> np.ndarray:
    """Indices of a deterministic stratified "first-N" subset of labels ``y``.

    Every example gets the key ``rank_within_class / class_count``; the ``n``
    smallest keys are kept (ties by position), so each class contributes its
    earliest examples in proportion to its frequency.  No randomness.

    Args:
        y: Labels, shape ``(N,)``.
        n: Subset size, ``1 <= n``; ``n >= N`` returns all indices.

    Returns:
        Sorted int64 indices, shape ``(min(n, N),)``.
    """
    if n < 1:
        raise ValueError(f"subset size must be >= 1, got {n}")
    y = np.asarray(y)
    if n >= y.shape[0]:
        return np.arange(y.shape[0])
    _, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    order = np.argsort(inverse, kind="stable")
    rank = np.empty(y.shape[0], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank[order] = np.arange(y.shape[0]) - np.repeat(starts, counts)
    key = rank / counts[inverse]
    keep = np.argsort(key, kind="stable")[:n]
    return np.sort(keep)


def _canonical(name: str) -> str:
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in KNOWN_DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(KNOWN_DATASETS)}")
    return key


def load_dataset(
    name: str,
    data_dir: str | Path | None = None,
    *,
    flatten: bool = False,
    dtype: np.dtype | type = np.float64,
    limit_train: int | None = None,
    limit_test: int | None = None,
) -> Dataset:
    """Load a dataset by name (see the module docstring for the list).

    Args:
        name: ``"digits"``, ``"fashion-mnist"`` (alias ``"fashion_mnist"``) or ``"mnist"``.
        data_dir: Directory with the IDX files (ignored for ``digits``;
            ``fashion-mnist`` defaults to :data:`DEFAULT_FASHION_MNIST_DIR`;
            required for ``mnist``).
        flatten: Return inputs as ``(N, H*W)`` instead of ``(N, 1, H, W)``.
        dtype: Floating dtype of the inputs (labels are always int64).
        limit_train: Keep a stratified first-N subset of the training set
            (:func:`stratified_head`); ``None`` keeps all.
        limit_test: Likewise for the test set.

    Returns:
        A :class:`Dataset`.

    Raises:
        ValueError: unknown name, or a bad limit.
        DatasetNotFoundError: the files are missing (the message says how to get them).
        IDXFormatError: malformed IDX files.
    """
    key = _canonical(name)
    if key == "digits":
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        bunch = load_digits()
        images = bunch.images / 16.0  # (1797, 8, 8), values 0..16
        labels = bunch.target.astype(np.int64)
        xtr, xte, ytr, yte = train_test_split(
            images, labels, test_size=0.2, stratify=labels, random_state=0
        )
        num_classes = 10
    else:
        if data_dir is None:
            if key == "mnist":
                raise DatasetNotFoundError(f"MNIST needs a data directory. {_HOWTO['mnist']}")
            data_dir = DEFAULT_FASHION_MNIST_DIR
        try:
            raw = _load_idx_dataset(key, Path(data_dir))
        except DatasetNotFoundError as exc:
            raise DatasetNotFoundError(f"{key} not found: {exc}. {_HOWTO[key]}") from None
        xtr = raw[0] / 255.0
        ytr = raw[1].astype(np.int64)
        xte = raw[2] / 255.0
        yte = raw[3].astype(np.int64)
        num_classes = 10
        for split, lab in (("train", ytr), ("test", yte)):
            if lab.size and lab.max() >= num_classes:
                raise IDXFormatError(f"{key} {split} labels exceed {num_classes - 1}")

    if limit_train is not None:
        idx = stratified_head(ytr, limit_train)
        xtr, ytr = xtr[idx], ytr[idx]
    if limit_test is not None:
        idx = stratified_head(yte, limit_test)
        xte, yte = xte[idx], yte[idx]

    h, w = xtr.shape[1:]
    shape = (-1, h * w) if flatten else (-1, 1, h, w)
    return Dataset(
        name=key,
        x_train=np.ascontiguousarray(xtr.reshape(shape), dtype=dtype),
        y_train=np.ascontiguousarray(ytr),
        x_test=np.ascontiguousarray(xte.reshape(shape), dtype=dtype),
        y_test=np.ascontiguousarray(yte),
        num_classes=num_classes,
        image_shape=(int(h), int(w)),
    )
