"""prepare(): checksum verification, idempotent extraction, selection; the real packs."""

from __future__ import annotations

import hashlib
import importlib
import io
import tarfile
from pathlib import Path

import pytest

from abn.data.errors import DataError
from abn.data.prepare import MARKER, PACKS, prepare

# the package re-exports the function `prepare`, which hides the module attribute of that name
prep = importlib.import_module("abn.data.prepare")


def make_pack(packs: Path, pack_file: str, folder: str, files: dict[str, bytes]) -> str:
    """Write ``packs/pack_file`` holding ``folder/<files>`` and return its SHA-256."""
    packs.mkdir(parents=True, exist_ok=True)
    path = packs / pack_file
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def tiny_packs(tmp_path: Path) -> Path:
    """A packs folder with a fake celeba pack and its SHA256SUMS."""
    packs = tmp_path / "packs"
    digest = make_pack(
        packs, "celeba-aligned-1440.tar.gz", "celeba", {"a.txt": b"hello", "sub/b.txt": b"x"}
    )
    (packs / "SHA256SUMS").write_text(f"{digest}  celeba-aligned-1440.tar.gz\n")
    return packs


def test_extract_then_skip(
    tiny_packs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "root"
    assert prepare(tiny_packs, root, only=["celeba"], progress=False) == {"celeba": "extracted"}
    assert (root / "celeba" / "a.txt").read_bytes() == b"hello"
    assert (root / "celeba" / "sub" / "b.txt").is_file() and (root / "celeba" / MARKER).is_file()
    assert not [p for p in root.iterdir() if p.name.startswith(".extract")]  # temp folder gone
    monkeypatch.setattr(prep, "_extract", lambda *a: pytest.fail("extracted twice"))
    assert prepare(tiny_packs, root, only=["celeba"], progress=False) == {
        "celeba": "already prepared"
    }


def test_checksum_mismatch(tiny_packs: Path, tmp_path: Path) -> None:
    (tiny_packs / "SHA256SUMS").write_text(f"{'0' * 64}  celeba-aligned-1440.tar.gz\n")
    with pytest.raises(DataError, match="checksum mismatch") as info:
        prepare(tiny_packs, tmp_path / "root", only=["celeba"], progress=False)
    assert str(tiny_packs / "celeba-aligned-1440.tar.gz") in str(info.value)
    assert not (tmp_path / "root" / "celeba").exists()


def test_missing_sums_and_pack(tiny_packs: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no checksum for cifar10-jpeg.tar.gz"):
        prepare(tiny_packs, tmp_path / "r", only=["cifar10"], progress=False)
    (tiny_packs / "SHA256SUMS").unlink()
    with pytest.raises(DataError, match="SHA256SUMS: checksum file missing"):
        prepare(tiny_packs, tmp_path / "r", only=["celeba"], progress=False)
    with pytest.raises(DataError, match="pack not found"):
        prepare(tiny_packs, tmp_path / "r", only=["cifar10"], verify=False, progress=False)


def hq_packs(tmp_path: Path, split_text: bytes = b"file orig_file partition identity\n") -> Path:
    """A packs folder with a fake celeba-hq pack and the split file beside it, checksummed."""
    packs = tmp_path / "packs"
    digest = make_pack(packs, "celeba-hq-64.tar.gz", "celeba-hq-64", {"a.txt": b"1"})
    (packs / "celeba-hq-64-split.txt").write_bytes(split_text)
    split_sum = hashlib.sha256(split_text).hexdigest()
    (packs / "SHA256SUMS").write_text(
        f"{digest}  celeba-hq-64.tar.gz\n{split_sum}  celeba-hq-64-split.txt\n"
    )
    return packs


def test_the_split_file_beside_a_pack_is_copied_into_its_folder(tmp_path: Path) -> None:
    packs, root = hq_packs(tmp_path), tmp_path / "root"
    split = root / "celeba-hq-64" / "celeba-hq-64-split.txt"
    report = prepare(packs, root, only=["celeba-hq-by-number"], progress=False)
    assert report == {"celeba-hq-64": "extracted (+ celeba-hq-64-split.txt)"}
    assert split.read_bytes() == (packs / "celeba-hq-64-split.txt").read_bytes()
    assert prepare(packs, root, only=["celeba-hq"], progress=False) == {
        "celeba-hq-64": "already prepared"
    }
    split.unlink()  # a folder extracted before the split file existed gets it too
    assert prepare(packs, root, only=["celeba-hq"], progress=False) == {
        "celeba-hq-64": "already prepared (+ celeba-hq-64-split.txt)"
    }
    assert split.is_file()


def test_a_corrupt_or_missing_split_file_is_refused(tmp_path: Path) -> None:
    packs = hq_packs(tmp_path)
    (packs / "celeba-hq-64-split.txt").write_bytes(b"changed\n")
    with pytest.raises(DataError, match="celeba-hq-64-split.txt: checksum mismatch"):
        prepare(packs, tmp_path / "root", only=["celeba-hq"], progress=False)
    (packs / "celeba-hq-64-split.txt").unlink()
    with pytest.raises(DataError, match="celeba-hq-64-split.txt: not found"):
        prepare(packs, tmp_path / "root", only=["celeba-hq"], progress=False)
    assert not (tmp_path / "root" / "celeba-hq-64" / "celeba-hq-64-split.txt").exists()


def test_rejects_entries_outside_folder(tmp_path: Path) -> None:
    packs = tmp_path / "packs"
    make_pack(packs, "celeba-aligned-1440.tar.gz", "elsewhere", {"x": b"1"})
    with pytest.raises(DataError, match="outside celeba/"):
        prepare(packs, tmp_path / "r", only=["celeba"], verify=False, progress=False)


def test_selection_and_download_gate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(DataError, match="unknown dataset or pack 'mnist'"):
        prepare(tmp_path, tmp_path, only=["mnist"])
    with pytest.raises(DataError, match="pass --download"):
        prepare(tmp_path, tmp_path, only=["svhn"])
    calls: list[tuple[str, str, bool]] = []
    monkeypatch.setattr(
        prep, "build_dataset", lambda n, s, root, download: calls.append((n, s, download))
    )
    assert prepare(tmp_path, tmp_path, only=["svhn"], download=True) == {"svhn": "downloaded"}
    assert calls == [("svhn", "train", True), ("svhn", "test", True), ("svhn", "extra", True)]


def test_real_packs_prepared(data_root: Path, packs_dir: Path) -> None:
    for pack in PACKS:
        assert (data_root / pack.folder / MARKER).is_file()
    report = prepare(packs_dir, data_root, progress=False)
    assert set(report.values()) == {"already prepared"} and len(report) == len(PACKS)
    assert (data_root / "cifar10" / "train" / "airplane").is_dir()
    assert (data_root / "celeba" / "list_attr_celeba.txt").is_file()
    split = "celeba-hq-64-split.txt"
    assert (data_root / "celeba-hq-64" / split).read_bytes() == (packs_dir / split).read_bytes()
