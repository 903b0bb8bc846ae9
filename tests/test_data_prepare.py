"""`tflkit data NAME --prepare`: an archive is MD5-checked, unpacked only when every member stays inside, and lands
whole or not at all; offline, one line within seconds."""

from __future__ import annotations

import io
import tarfile
import time
import zipfile

import pytest

from tflkit.core.download import file_digest
from tflkit.core.errors import DatasetError, UsageError
from tflkit.data.prepare import Archive, prepare


def _tar(path, members: dict[str, bytes], link: str | None = None):
    with tarfile.open(path, "w:gz") as t:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
        if link:
            info = tarfile.TarInfo(link)
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            t.addfile(info)
    return path


def _archive(path, folder="cifar-10-batches-py"):
    return Archive(f"https://example.invalid/{path.name}", file_digest(path, "md5"), folder)


def test_a_checked_archive_unpacks_whole_and_a_second_prepare_does_nothing(tmp_path):
    src = _tar(tmp_path / "c.tar.gz", {"cifar-10-batches-py/data_batch_1": b"x" * 10, "cifar-10-batches-py/meta": b"m"})
    into, lines = tmp_path / "data", []
    target = prepare("cifar10", into, source=src, archive=_archive(src), log=lines.append)
    assert target == into / "cifar-10-batches-py" and (target / "data_batch_1").read_bytes() == b"x" * 10
    assert [p.name for p in into.iterdir()] == ["cifar-10-batches-py"]  # no temporary folder left
    assert prepare("cifar10", into, source=src, archive=_archive(src), log=lines.append) == target
    assert lines[-1] == f"prepared already: {target}"


def test_a_wrong_checksum_a_link_or_an_escaping_member_is_refused(tmp_path):
    src = _tar(tmp_path / "c.tar.gz", {"cifar-10-batches-py/meta": b"m"})
    wrong = Archive("https://example.invalid/c.tar.gz", "0" * 32, "cifar-10-batches-py")
    with pytest.raises(DatasetError, match="MD5 .* expected 0{32}"):
        prepare("cifar10", tmp_path / "a", source=src, archive=wrong)
    linked = _tar(tmp_path / "l.tar.gz", {"cifar-10-batches-py/meta": b"m"}, link="cifar-10-batches-py/passwd")
    with pytest.raises(DatasetError, match="is a link, a device or outside the folder"):
        prepare("cifar10", tmp_path / "b", source=linked, archive=_archive(linked))
    escaping = tmp_path / "z.zip"
    with zipfile.ZipFile(escaping, "w") as z:
        z.writestr("../../evil.txt", b"x")
    with pytest.raises(DatasetError, match="would land outside the folder"):
        prepare("cifar10", tmp_path / "c", source=escaping, archive=_archive(escaping))
    assert not (tmp_path / "c" / "cifar-10-batches-py").exists() and not (tmp_path.parent / "evil.txt").exists()
    other = _tar(tmp_path / "o.tar.gz", {"something-else/meta": b"m"})
    with pytest.raises(DatasetError, match="has no cifar-10-batches-py/ folder inside"):
        prepare("cifar10", tmp_path / "d", source=other, archive=_archive(other))


def test_offline_download_fails_within_seconds_naming_the_file(tmp_path):
    from tflkit.core.download import host_reachable

    if host_reachable("www.cs.toronto.edu"):
        pytest.skip("a network exists here: the download would run")
    start = time.monotonic()
    with pytest.raises(UsageError, match="fetch https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz .* --from"):
        prepare("cifar100", tmp_path)
    assert time.monotonic() - start < 15
