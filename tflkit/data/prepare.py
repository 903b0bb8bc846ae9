"""`tflkit data NAME --prepare`: the official archive of CIFAR-10, CIFAR-100 or Tiny ImageNet, downloaded where a
network exists (or given with --from), checked against its published MD5 and unpacked where the loaders look
(--data-dir, else $TFLKIT_DATA, else ~/.cache/tflkit-data). The unpacking refuses members that would land outside
the folder, links and device files, and goes to a temporary folder renamed into place: an interrupted prepare
leaves nothing half-written behind."""

from __future__ import annotations

import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tflkit.core.download import fetch, file_digest
from tflkit.core.errors import DatasetError, UsageError


@dataclass(frozen=True)
class Archive:
    url: str
    md5: str  # as the dataset's authors (and torchvision) publish it
    folder: str  # what the archive unpacks to, and what the loader looks for

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


ARCHIVES = {
    "cifar10": Archive("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a",
                       "cifar-10-batches-py"),
    "cifar100": Archive("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
                        "eb9058c3a382ffc7106e4002c42a8d85", "cifar-100-python"),
    "tiny_imagenet": Archive("http://cs231n.stanford.edu/tiny-imagenet-200.zip", "90528d7ca1a48142e341f4ef8d21d0de",
                             "tiny-imagenet-200"),
}


def verify(path: Path, archive: Archive) -> None:
    got = file_digest(path, "md5")
    if got != archive.md5:
        raise DatasetError(f"{path}: MD5 {got}, expected {archive.md5} for {archive.filename} (a different or "
                           f"damaged file)")


def prepare(name: str, into: Path, source: Path | None = None, log=print, archive: Archive | None = None) -> Path:
    """The unpacked dataset folder in `into` (done already: nothing is fetched). `source`: a local archive instead
    of the download. `archive`: another archive description (tests)."""
    if archive is None:
        if name not in ARCHIVES:
            raise UsageError(f"--prepare knows {', '.join(ARCHIVES)}; {name} has no archive to fetch")
        archive = ARCHIVES[name]
    into = Path(into).expanduser()
    target = into / archive.folder
    if target.is_dir():
        log(f"prepared already: {target}")
        return target
    if source is None:
        offline = f"cannot download {name}; fetch {archive.url} where a network exists and pass --from FILE"
        source = fetch(archive.url, into / ".downloads" / archive.filename, lambda p: verify(p, archive), offline,
                       log=log)
    else:
        source = Path(source).expanduser()
        if not source.is_file():
            raise UsageError(f"--from: no such file: {source}")
        verify(source, archive)
    into.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=into, prefix=".unpacking-") as tmp:
        _unpack(source, Path(tmp))
        unpacked = Path(tmp) / archive.folder
        if not unpacked.is_dir():
            raise DatasetError(f"{source} has no {archive.folder}/ folder inside")
        unpacked.rename(target)
    log(f"prepared: {target}")
    return target


def _unpack(path: Path, into: Path) -> None:
    root = into.resolve()

    def inside(name: str) -> bool:
        return (root / name).resolve().is_relative_to(root)

    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            bad = next((n for n in z.namelist() if not inside(n)), None)
            if bad is not None:
                raise DatasetError(f"{path}: member {bad!r} would land outside the folder; refused")
            z.extractall(into)
        return
    try:
        with tarfile.open(path) as t:
            members = t.getmembers()
            bad = next((m for m in members if not (m.isfile() or m.isdir()) or not inside(m.name)), None)
            if bad is not None:
                raise DatasetError(f"{path}: member {bad.name!r} is a link, a device or outside the folder; refused")
            safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}  # Python's own check where it has one
            t.extractall(into, members=members, **safe)
    except tarfile.TarError as exc:
        raise DatasetError(f"{path}: not a readable tar or zip archive ({exc})") from None
