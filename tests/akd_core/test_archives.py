"""Archive checks: hostile zips and tars are refused before anything is written."""

from __future__ import annotations

import io
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from akd_core.archives import (
    ArchiveLimits,
    UnsafeArchiveError,
    check_archive,
    read_members,
    safe_extract,
)
from akd_core.errors import DatasetError


def _zip(path: Path, members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression=method) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _tar_add(
    tf: tarfile.TarFile, name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE, link: str = ""
) -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    tf.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def _tar(path: Path, members: dict[str, bytes], mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as tf:
        for name, data in members.items():
            _tar_add(tf, name, data)
    return path


def _refused_and_clean(
    archive: Path, dest: Path, match: str, limits: ArchiveLimits | None = None
) -> None:
    """Extraction raises, and neither dest nor a partial folder exists afterwards."""
    with pytest.raises(DatasetError, match=match):
        safe_extract(archive, dest, limits)
    assert not dest.exists()
    leftovers = [p.name for p in dest.parent.iterdir() if p != archive]
    assert leftovers == [], leftovers
    assert not (dest.parent.parent / "evil").exists()


GOOD = {"cats/a.txt": b"meow", "dogs/sub/b.txt": b"woof" * 100, "top.txt": b""}


def test_zip_round_trip_extracts_every_file(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "good.zip", GOOD)
    out = safe_extract(archive, tmp_path / "out")
    for name, data in GOOD.items():
        assert (out / name).read_bytes() == data
    names = {m.name for m in check_archive(archive) if not m.is_dir}
    assert names == set(GOOD)


@pytest.mark.parametrize("mode", ["w", "w:gz", "w:bz2", "w:xz"])
def test_tar_round_trip_every_compression(tmp_path: Path, mode: str) -> None:
    archive = _tar(tmp_path / "good.tar", GOOD, mode)
    out = safe_extract(archive, tmp_path / "out")
    for name, data in GOOD.items():
        assert (out / name).read_bytes() == data


def test_zip_slip_is_refused(tmp_path: Path) -> None:
    (tmp_path / "work").mkdir()
    archive = _zip(tmp_path / "work" / "slip.zip", {"ok.txt": b"x", "../evil": b"pwned"})
    _refused_and_clean(archive, tmp_path / "work" / "out", r"'\.\./evil'.*'\.\.'")
    with pytest.raises(UnsafeArchiveError):
        check_archive(archive)


def test_tar_slip_is_refused(tmp_path: Path) -> None:
    (tmp_path / "work").mkdir()
    archive = _tar(tmp_path / "work" / "slip.tgz", {"a/../../evil": b"pwned"})
    _refused_and_clean(archive, tmp_path / "work" / "out", "escape")


@pytest.mark.parametrize("maker", [_zip, _tar])
def test_absolute_path_is_refused(tmp_path: Path, maker) -> None:
    archive = maker(tmp_path / "abs.bin", {"/tmp/akd-evil-abs": b"pwned"})
    _refused_and_clean(archive, tmp_path / "out", "absolute path")
    assert not Path("/tmp/akd-evil-abs").exists()


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE])
def test_tar_link_member_is_refused(tmp_path: Path, kind: bytes) -> None:
    archive = tmp_path / "link.tar"
    with tarfile.open(archive, "w") as tf:
        _tar_add(tf, "ok.txt", b"fine")
        _tar_add(tf, "passwd", kind=kind, link="/etc/passwd")
    _refused_and_clean(archive, tmp_path / "out", "'passwd' is a link")


def test_tar_fifo_and_device_are_refused(tmp_path: Path) -> None:
    for kind in (tarfile.FIFOTYPE, tarfile.CHRTYPE):
        archive = tmp_path / "dev.tar"
        with tarfile.open(archive, "w") as tf:
            _tar_add(tf, "node", kind=kind)
        _refused_and_clean(archive, tmp_path / "out", "device, fifo")


def test_zip_symlink_member_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("link")
        info.create_system = 3  # unix, so external_attr carries st_mode
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    _refused_and_clean(archive, tmp_path / "out", "'link' is a symlink")


def test_zip_bomb_member_ratio_is_refused(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "bomb.zip", {"zeros.bin": bytes(16 * 1024 * 1024)})
    assert archive.stat().st_size < 100_000
    _refused_and_clean(archive, tmp_path / "out", "'zeros.bin' has a compression ratio")


def test_tar_gz_bomb_total_ratio_is_refused(tmp_path: Path) -> None:
    archive = _tar(tmp_path / "bomb.tgz", {f"z{i}.bin": bytes(4 * 1024 * 1024) for i in range(4)})
    _refused_and_clean(archive, tmp_path / "out", "compression ratio")


def test_too_many_members_are_refused(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "many.zip", {f"f{i}.txt": b"x" for i in range(6)})
    _refused_and_clean(archive, tmp_path / "out", "cap of 5 members", ArchiveLimits(max_members=5))
    assert len(check_archive(archive, ArchiveLimits(max_members=6))) == 6


def test_total_size_cap_is_enforced(tmp_path: Path) -> None:
    archive = _tar(tmp_path / "big.tar", {"a.bin": b"1" * 600, "b.bin": b"2" * 600}, "w")
    _refused_and_clean(
        archive, tmp_path / "out", "'b.bin'.*cap of 1000 bytes", ArchiveLimits(max_total_bytes=1000)
    )


@pytest.mark.parametrize("name,maker", [("cut.zip", _zip), ("cut.tgz", _tar), ("cut.tar", _tar)])
def test_truncated_archive_is_a_clear_error(tmp_path: Path, name: str, maker) -> None:
    members = {f"f{i}.bin": bytes(range(256)) * 40 for i in range(3)}
    full = (
        maker(tmp_path / ("full" + name), members)
        if name != "cut.tar"
        else _tar(tmp_path / "full.tar", members, "w")
    )
    cut = tmp_path / name
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    full.unlink()
    _refused_and_clean(cut, tmp_path / "out", "truncated|not a readable")


def test_corrupt_zip_data_leaves_nothing_behind(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "crc.zip", {"a.txt": b"A" * 1000}, zipfile.ZIP_STORED)
    raw = bytearray(archive.read_bytes())
    at = raw.index(b"A" * 1000)
    raw[at + 500] = ord("B")
    archive.write_bytes(bytes(raw))
    check_archive(archive)  # headers are fine: only reading the data shows the damage
    _refused_and_clean(archive, tmp_path / "out", "corrupt")


def test_duplicate_member_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "dup.tar"
    with tarfile.open(archive, "w") as tf:
        _tar_add(tf, "a.txt", b"1")
        _tar_add(tf, "./a.txt", b"2")
    _refused_and_clean(archive, tmp_path / "out", "appears twice")


def test_not_an_archive_is_a_dataset_error(tmp_path: Path) -> None:
    bogus = tmp_path / "x.zip"
    bogus.write_text("just text, not an archive\n")
    _refused_and_clean(bogus, tmp_path / "out", "not a readable zip or tar")


def test_existing_destination_is_not_overwritten(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "good.zip", GOOD)
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    with pytest.raises(DatasetError, match="not an empty folder"):
        safe_extract(archive, dest)
    assert sorted(p.name for p in dest.iterdir()) == ["keep.txt"]


def test_read_members_returns_only_wanted_files(tmp_path: Path) -> None:
    archive = _tar(tmp_path / "good.tgz", GOOD)
    got = read_members(archive, lambda name: name.endswith("b.txt"))
    assert got == {"dogs/sub/b.txt": b"woof" * 100}


def test_a_zip_declaring_too_many_members_is_refused_from_its_end_record(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "many.zip", {f"f{i}.txt": b"" for i in range(10)})
    with pytest.raises(UnsafeArchiveError, match="declares 10 members, past the cap of 5"):
        check_archive(archive, ArchiveLimits(max_members=5))


def test_a_zip_whose_end_record_understates_its_directory_is_refused(tmp_path: Path) -> None:
    # The end record claims 1 entry, but the directory holds 10 with 100-character names:
    # zipfile would parse all of it, so its size is capped too (512 bytes per member).
    archive = _zip(tmp_path / "liar.zip", {f"{i:0100d}": b"" for i in range(10)})
    data = bytearray(archive.read_bytes())
    at = data.rfind(b"PK\x05\x06")
    data[at + 8 : at + 12] = (1).to_bytes(2, "little") * 2  # entries on this disk, in total
    archive.write_bytes(bytes(data))
    with pytest.raises(UnsafeArchiveError, match="central directory of 1[0-9]{3} bytes"):
        check_archive(archive, ArchiveLimits(max_members=2))


def test_zip64_end_records_are_read(tmp_path: Path) -> None:
    from akd_core.zipdir import read_zip_directory

    path = tmp_path / "big.zip"
    with zipfile.ZipFile(path, "w") as zf:  # past 65535 entries zipfile writes ZIP64 records
        for i in range(66_000):
            zf.writestr(zipfile.ZipInfo(str(i)), b"")
    found = read_zip_directory(path)
    assert found is not None and found.entries == 66_000
    with pytest.raises(UnsafeArchiveError, match="declares 66000 members"):
        check_archive(path, ArchiveLimits(max_members=65_999))


def test_sniffing_a_huge_zip_directory_does_not_list_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import numpy as np

    from akd_core import formats

    path = tmp_path / "d.npz"
    np.savez(path, x=np.zeros(3))
    assert formats.sniff(path) == "npz"
    monkeypatch.setattr(formats, "MAX_SNIFF_ZIP_DIRECTORY", 10)
    assert formats.sniff(path) == "zip"  # named without parsing; check_archive caps members
