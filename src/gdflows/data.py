r"""Real data sets that need no network at run time, with fixed splits and standardisation.

:func:`load` returns a :class:`Dataset` of float64 arrays:

* ``"digits"`` — the 1,797 8×8 handwritten digits bundled with scikit-learn
  (``sklearn.datasets.load_digits``): 64 features, 10 classes. Shuffled once with a fixed
  permutation (``seed``), then the first ``n_train`` examples train and the next ``n_test`` test.
* ``"mnist1d"`` — MNIST-1D (Greydanus 2020), *generated* by the PyPI package ``mnist1d`` with
  ``make_dataset`` and its default arguments (5,000 signals of length 40, seed 42, its own
  4,000/1,000 split). Its download path (``get_dataset``) is never used. ``make_dataset`` seeds
  numpy's global generator; the global state is restored afterwards.
* ``"cifar10"`` — CIFAR-10 from a local directory ``root`` holding the standard
  python-pickle batches (``data_batch_1`` … ``data_batch_5``, ``test_batch``; each a pickled
  dict with ``b"data"``, a ``(N, 3072)`` uint8 array in channel-major order, and ``b"labels"``).
  Only the batches needed for ``n_train``/``n_test`` are read. Nothing is downloaded.

Features are standardised with the *training* mean and standard deviation (per feature; a
feature that is constant on the training set is only centred). Targets come both as integer
labels and as one-hot vectors (the regression targets of a mean-squared-error loss).
Every call with the same arguments returns the same arrays.

:func:`gaussian_mixture_ring` generates the 2-D mixture of Gaussians on a circle of the GAN toys from an
explicit PRNG key.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import NamedTuple

import numpy as np

from gdflows._checks import check_integer

NAMES = ("digits", "mnist1d", "cifar10")
CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_TEST = "test_batch"
CIFAR_BATCH = 10_000  # examples per standard batch file


class Dataset(NamedTuple):
    """A classification data set split into train and test, ready for full-batch training."""

    name: str
    x_train: np.ndarray  # (n_train, *input_shape) standardised features
    y_train: np.ndarray  # (n_train, classes) one-hot targets (float64)
    labels_train: np.ndarray  # (n_train,) integer labels
    x_test: np.ndarray  # (n_test, *input_shape), standardised with the training statistics
    y_test: np.ndarray  # (n_test, classes)
    labels_test: np.ndarray  # (n_test,)
    classes: int  # number of classes

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one example (e.g. ``(64,)``, or ``(8, 8, 1)`` unflattened)."""
        return tuple(self.x_train.shape[1:])


def _check_count(name: str, value, available: int) -> int:
    """``n_train`` (at least 1: standardisation and training need data) or ``n_test`` (0 gives an empty split)."""
    value = check_integer(name, value, minimum=1 if name == "n_train" else 0, example=f"{name}=100")
    if value > available:
        raise ValueError(f"{name}={value} is more than the {available} examples available; pass {name}<={available}.")
    return int(value)


def _digits(n_train, n_test, seed):
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x, labels = bunch.data.astype(np.float64), bunch.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(labels))
    x, labels = x[order], labels[order]
    n_train = _check_count("n_train", 1000 if n_train is None else n_train, len(labels))
    n_test = _check_count("n_test", len(labels) - n_train if n_test is None else n_test, len(labels) - n_train)
    images = x.reshape(-1, 8, 8, 1)
    stop = n_train + n_test
    return images[:n_train], labels[:n_train], images[n_train:stop], labels[n_train:stop]


def _mnist1d(n_train, n_test):
    from mnist1d.data import get_dataset_args, make_dataset

    saved = np.random.get_state()  # noqa: NPY002  (make_dataset seeds the global generator)
    try:
        generated = make_dataset(get_dataset_args())
    finally:
        np.random.set_state(saved)  # noqa: NPY002
    x, labels = np.asarray(generated["x"], np.float64), np.asarray(generated["y"], np.int64)
    x_test, labels_test = np.asarray(generated["x_test"], np.float64), np.asarray(generated["y_test"], np.int64)
    n_train = _check_count("n_train", len(labels) if n_train is None else n_train, len(labels))
    n_test = _check_count("n_test", len(labels_test) if n_test is None else n_test, len(labels_test))
    return x[:n_train, :, None], labels[:n_train], x_test[:n_test, :, None], labels_test[:n_test]


def _cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    expected = (
        "a python pickle of a dict with b'data' (an (N, 3072) uint8 array, channel-major 32x32x3 images) "
        "and b'labels' (N integers in 0..9), as in the 'CIFAR-10 python version' archive"
    )
    if not path.is_file():
        raise FileNotFoundError(
            f"CIFAR-10 batch file {path} not found; expected the directory {path.parent} to hold "
            f"{', '.join(CIFAR_TRAIN)} and {CIFAR_TEST}, each {expected}."
        )
    try:
        with path.open("rb") as handle:
            batch = pickle.load(handle, encoding="bytes")
        data = np.asarray(batch[b"data"])
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
        raw_labels = np.asarray(batch[b"labels"])
    except Exception as error:
        raise ValueError(
            f"CIFAR-10 batch file {path} is malformed ({type(error).__name__}: {error}); expected {expected}."
        ) from None
    if data.dtype == np.bool_ or not np.issubdtype(data.dtype, np.integer):
        raise ValueError(
            f"CIFAR-10 batch file {path}: b'data' has dtype {data.dtype}, not uint8 pixels; expected {expected}."
        )
    if data.size and (data.min() < 0 or data.max() > 255):
        raise ValueError(
            f"CIFAR-10 batch file {path}: b'data' has values in {data.min()}..{data.max()}, outside the pixel range "
            f"0..255; expected {expected}."
        )
    if raw_labels.size and (raw_labels.dtype == np.bool_ or not np.issubdtype(raw_labels.dtype, np.integer)):
        raise ValueError(
            f"CIFAR-10 batch file {path}: b'labels' has dtype {raw_labels.dtype}, not integers; expected {expected}."
        )
    if data.ndim != 2 or data.shape[1] != 3072 or data.shape[0] != labels.shape[0] or labels.ndim != 1:
        raise ValueError(
            f"CIFAR-10 batch file {path} is malformed: b'data' has shape {data.shape} and b'labels' "
            f"shape {labels.shape}; expected {expected}."
        )
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(
            f"CIFAR-10 batch file {path}: b'labels' has values in {labels.min()}..{labels.max()}, outside 0..9; "
            f"expected {expected}."
        )
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).astype(np.float64) / 255.0
    return images, labels


def _cifar10(root, n_train, n_test):
    if root is None:
        raise ValueError(
            "load('cifar10') reads the standard python-pickle batches from a local directory; pass "
            "root='/path/to/cifar-10-batches-py' (nothing is downloaded)."
        )
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(
            f"CIFAR-10 directory {root} does not exist; expected a directory holding "
            f"{', '.join(CIFAR_TRAIN)} and {CIFAR_TEST} (the 'CIFAR-10 python version' archive, unpacked)."
        )
    n_train = 5000 if n_train is None else n_train
    n_test = 1000 if n_test is None else n_test
    n_train = _check_count("n_train", n_train, CIFAR_BATCH * len(CIFAR_TRAIN))
    n_test = _check_count("n_test", n_test, CIFAR_BATCH)
    xs, ys = [], []
    for name in CIFAR_TRAIN:
        if sum(len(y) for y in ys) >= n_train:
            break
        x, y = _cifar_batch(root / name)
        xs.append(x)
        ys.append(y)
    x_train = np.concatenate(xs)[:n_train] if xs else np.zeros((0, 32, 32, 3))
    labels_train = np.concatenate(ys)[:n_train] if ys else np.zeros(0, np.int64)
    if len(labels_train) < n_train:
        raise ValueError(
            f"the CIFAR-10 batches in {root} hold {len(labels_train)} training examples, fewer than n_train={n_train}."
        )
    if n_test:
        x_test, labels_test = _cifar_batch(root / CIFAR_TEST)
        if len(labels_test) < n_test:
            raise ValueError(f"{root / CIFAR_TEST} holds {len(labels_test)} examples, fewer than n_test={n_test}.")
        x_test, labels_test = x_test[:n_test], labels_test[:n_test]
    else:
        x_test, labels_test = np.zeros((0, 32, 32, 3)), np.zeros(0, np.int64)
    return x_train, labels_train, x_test, labels_test


def load(
    name: str,
    *,
    n_train: int | None = None,
    n_test: int | None = None,
    flatten: bool = True,
    standardize: bool = True,
    seed: int = 0,
    root: str | Path | None = None,
) -> Dataset:
    r"""Load a classification data set available offline.

    Args:
      name: ``"digits"``, ``"mnist1d"`` or ``"cifar10"``.
      n_train, n_test: subset sizes (the first examples of the fixed split). Defaults: digits
        1,000 train and the remaining 797 test; mnist1d its full 4,000/1,000 split; cifar10
        5,000/1,000. ``n_train >= 1``; ``n_test = 0`` (or digits with ``n_train=1797``) gives an
        empty test split of shape ``(0, *input_shape)``.
      flatten: return each example as a vector (for an MLP); ``False`` keeps images as
        ``(height, width, channels)`` (digits ``(8, 8, 1)``, cifar10 ``(32, 32, 3)``) and signals
        as ``(length, 1)`` (mnist1d ``(40, 1)``), for a CNN.
      standardize: subtract the training mean and divide by the training standard deviation,
        per feature.
      seed: the permutation of the digits before the split (the other two have fixed orders).
      root: the directory of the CIFAR-10 python batches (cifar10 only).

    Returns:
      A :class:`Dataset`.

    Raises:
      ValueError: an unknown ``name`` (the message lists the valid ones), a subset larger than
        the data, or a malformed CIFAR-10 batch (the message names the file and the format).
      FileNotFoundError: a missing CIFAR-10 directory or batch file (named in the message).

    Example:
      >>> from gdflows.data import load
      >>> data = load("digits", n_train=1000)
      >>> data.x_train.shape, data.y_train.shape, data.x_test.shape
      ((1000, 64), (1000, 10), (797, 64))
      >>> load("digits", n_train=100, flatten=False).x_train.shape  # images for a CNN
      (100, 8, 8, 1)
    """
    if name not in NAMES:
        raise ValueError(f"unknown data set {name!r}; valid names: {', '.join(NAMES)}.")
    for flag, value in (("flatten", flatten), ("standardize", standardize)):
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{flag} must be True or False, got {flag}={value!r}.")
    seed = check_integer("seed", seed, example="seed=0")
    if root is not None and name != "cifar10":
        raise ValueError(f"root is only used by 'cifar10' (a local directory); {name!r} needs no files.")
    if name == "digits":
        x_train, labels_train, x_test, labels_test = _digits(n_train, n_test, seed)
    elif name == "mnist1d":
        x_train, labels_train, x_test, labels_test = _mnist1d(n_train, n_test)
    else:
        x_train, labels_train, x_test, labels_test = _cifar10(root, n_train, n_test)
    if standardize and len(x_train):
        mean = x_train.mean(axis=0)
        std = x_train.std(axis=0)
        std = np.where(std > 1e-12, std, 1.0)  # constant features (digit corners) are only centred
        x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    if flatten:  # explicit widths: an empty test split keeps its (0, features) shape
        width = int(np.prod(x_train.shape[1:]))
        x_train, x_test = x_train.reshape(len(x_train), width), x_test.reshape(len(x_test), width)
    eye = np.eye(10)
    return Dataset(
        name=name,
        x_train=np.ascontiguousarray(x_train, np.float64),
        y_train=eye[labels_train],
        labels_train=labels_train,
        x_test=np.ascontiguousarray(x_test, np.float64),
        y_test=eye[labels_test],
        labels_test=labels_test,
        classes=10,
    )


def gaussian_mixture_ring(
    key, n: int, *, modes: int = 8, radius: float = 2.0, std: float = 0.1
) -> tuple[np.ndarray, np.ndarray]:
    r"""``(x, centres)``: ``n`` points of a 2-D mixture of ``modes`` equal Gaussians on a circle (the GAN toy).

    Mode :math:`j` is centred at :math:`r(\cos 2\pi j/M, \sin 2\pi j/M)` with covariance
    :math:`\sigma^2 I`; each point picks its mode uniformly. Generated from the explicit JAX PRNG
    ``key`` (float64 draws), so the same key gives the same points; nothing is downloaded.

    Returns:
      ``x`` of shape ``(n, 2)`` (float64) and the mode centres, ``(modes, 2)``.

    Example:
      >>> import jax
      >>> x, centres = gaussian_mixture_ring(jax.random.key(0), 5)
      >>> x.shape, centres.shape, bool(abs(centres[2, 1] - 2.0) < 1e-12)
      ((5, 2), (8, 2), True)
    """
    import jax
    import jax.numpy as jnp

    n = check_integer("n", n, minimum=1, example="n=512")
    modes = check_integer("modes", modes, minimum=1, example="modes=8")
    angles = 2 * np.pi * np.arange(modes) / modes
    centres = radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    pick, noise = jax.random.split(key)
    which = np.asarray(jax.random.randint(pick, (n,), 0, modes))
    offsets = np.asarray(jax.random.normal(noise, (n, 2), dtype=jnp.float64)) * std
    return centres[which] + offsets, centres
