"""Your own images: one sub-folder per class, read with Pillow (an optional dependency).

``PATH/<class>/**/<image>``: classes are the sub-folder names in sorted order (as in
torchvision's ``ImageFolder``), images are found recursively, hidden files and folders and
files that are not images are ignored. If ``PATH`` holds exactly the two folders ``train``
and ``test``, each laid out as above, they are the training and the test data.
A relative ``PATH`` is relative to the current directory, not to ``data_dir``.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DatasetError

__all__ = ["IMAGE_EXTENSIONS", "read_image_folder", "find_class_folders"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")

# Pillow modes with one band of grey values; everything else is read as RGB.
_GREY_MODES = {"1", "L", "LA", "I", "I;16", "I;16L", "I;16B", "F"}


def _import_pillow():
    try:
        from PIL import Image
    except ImportError as exc:
        raise DatasetError(
            "image-folder datasets need Pillow to read images; install it with "
            "'pip install pillow' (or 'pip install mogaqnn[images]')"
        ) from exc
    return Image


def find_class_folders(root: Path) -> list[Path]:
    """The class sub-folders of ``root`` in sorted order, hidden ones left out."""
    return sorted(
        (p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")),
        key=lambda p: p.name,
    )


def _image_files(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.rglob("*")
        if p.suffix.lower() in IMAGE_EXTENSIONS
        and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def _list_images(
    root: Path, class_names: Sequence[str] | None
) -> tuple[list[Path], list[int], list[str]]:
    """Files and labels under ``root``; given ``class_names`` mean a test folder of those."""
    folders = find_class_folders(root)
    if class_names is None:
        if len(folders) < 2:
            raise DatasetError(
                f"image folder {root} has {len(folders)} class sub-folder(s); put the images "
                "of each class (at least two) in a sub-folder named after the class"
            )
        class_names = [f.name for f in folders]
    else:
        unknown = sorted({f.name for f in folders} - set(class_names))
        if unknown:
            raise DatasetError(
                f"image folder {root} has classes {unknown} that the training folder lacks; "
                "give train/ and test/ the same class sub-folders"
            )
    files: list[Path] = []
    labels: list[int] = []
    for label, name in enumerate(class_names):
        if not (root / name).is_dir():
            continue  # only a test folder gets here: it may lack a class, train never does
        found = _image_files(root / name)
        if not found:
            raise DatasetError(
                f"class folder {root / name} holds no images ({', '.join(IMAGE_EXTENSIONS)}); "
                "add images to it or remove it"
            )
        files.extend(found)
        labels.extend([label] * len(found))
    if not files:
        raise DatasetError(f"image folder {root} holds no class sub-folders with images")
    return files, labels, list(class_names)


def _read_all(
    files: list[Path], image_size: int | None, channels: int | None, Image
) -> tuple[np.ndarray, int, int]:
    """Decode every file into one uint8 [N, C, H, W] array; returns it, its size and channels."""
    first = files[0]
    try:
        with Image.open(first) as im:
            first_size, first_mode = im.size, im.mode
    except (OSError, ValueError) as exc:
        raise DatasetError(f"cannot read image {first} ({exc}); replace or remove it") from exc
    if channels is None:
        channels = 1 if first_mode in _GREY_MODES else 3
    if image_size is None:
        if first_size[0] != first_size[1]:
            raise DatasetError(
                f"image {first} is {first_size[0]}x{first_size[1]}, not square; pass "
                "image_size (--image-size) to resize every image to a square"
            )
        image_size = first_size[0]
        expect: tuple[int, int] | None = first_size
    else:
        expect = None
    mode = "L" if channels == 1 else "RGB"

    def read(path: Path) -> np.ndarray:
        try:
            with Image.open(path) as im:
                if expect is not None and im.size != expect:
                    raise DatasetError(
                        f"image {path} is {im.size[0]}x{im.size[1]} but {first} is "
                        f"{expect[0]}x{expect[1]}; pass image_size (--image-size) to resize "
                        "all images to one size"
                    )
                im = im.convert(mode)
                if im.size != (image_size, image_size):
                    im = im.resize((image_size, image_size), Image.Resampling.BILINEAR)
                arr = np.asarray(im, dtype=np.uint8)
        except DatasetError:
            raise
        except (OSError, ValueError, SyntaxError) as exc:  # Pillow's errors for broken files
            raise DatasetError(f"cannot read image {path} ({exc}); replace or remove it") from exc
        return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)

    out = np.empty((len(files), channels, image_size, image_size), dtype=np.uint8)
    # Pillow releases the GIL while decoding, so threads overlap the per-file work.
    with ThreadPoolExecutor(max_workers=4) as pool:
        for i, arr in enumerate(pool.map(read, files)):
            out[i] = arr
    return out, image_size, channels


def read_image_folder(
    root: str | Path,
    *,
    image_size: int | None = None,
    channels: int | None = None,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray] | None, list[str]]:
    """Read ``root`` into ((x, y), (x_test, y_test) or None, class names).

    ``x`` is uint8 [N, C, S, S]. Without ``image_size`` every image must have the first
    image's size (square); without ``channels`` the first image's mode decides (grey: 1,
    anything else: 3).
    """
    if image_size is not None and (not isinstance(image_size, int) or image_size < 1):
        raise ConfigError(f"image_size must be a positive integer, got {image_size!r}")
    if channels is not None and channels not in (1, 3):
        raise ConfigError(f"channels must be 1 (grey) or 3 (RGB), got {channels!r}")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(
            f"image folder {root} does not exist; give imagefolder:PATH with PATH a folder "
            "holding one sub-folder of images per class"
        )
    Image = _import_pillow()
    top = {p.name for p in find_class_folders(root)}
    if top == {"train", "test"}:
        files, labels, names = _list_images(root / "train", None)
        test_files, test_labels, _ = _list_images(root / "test", names)
        x, image_size, channels = _read_all(files + test_files, image_size, channels, Image)
        n = len(files)
        y = np.asarray(labels + test_labels, dtype=np.int64)
        return (x[:n], y[:n]), (x[n:], y[n:]), names
    files, labels, names = _list_images(root, None)
    x, _, _ = _read_all(files, image_size, channels, Image)
    return (x, np.asarray(labels, dtype=np.int64)), None, names
