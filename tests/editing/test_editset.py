"""Edit sets (abn.editing.editset): round trip, refusals with reasons, ZIP exchange."""

from __future__ import annotations

import io
import json
import stat
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from safetensors import safe_open

import abn
from abn.editing import EditSet, EditSetError, list_edit_sets, model_digest
from abn.editing import editset as editset_module

SHAPE = (16, 16)  # ResNet-20 ABN at 32 px


def maps(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    original = rng.random(SHAPE, dtype=np.float32)
    edited = original.copy()
    edited[:4, :4] = 0
    return original, edited


def picture(seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8))


def snapshot(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


@pytest.fixture
def filled(tmp_path, single_task) -> EditSet:
    s = EditSet.create(tmp_path / "set", single_task)
    s.add(*maps(0), image=picture(0), label=3, author="ann", note="tail")
    s.add(*maps(1), source={"dataset": "cifar10", "split": "test", "index": np.int64(7)}, label=1)
    return s


def test_round_trip(filled, single_task):
    reopened = EditSet.open(filled.directory, single_task)
    assert len(reopened) == 2 and reopened.records == filled.records
    assert reopened.model == {
        "digest": model_digest(single_task),
        "name": "resnet20 abn",
        "map_size": [16, 16],
    }
    first, second = reopened.records
    assert first.label == 3 and first.author == "ann" and first.note == "tail"
    assert first.image == f"images/{first.id}.png" and first.source is None
    assert second.image is None and second.source["index"] == 7
    assert first.created.endswith("+00:00")
    for record, seed in ((first, 0), (second, 1)):
        original, edited = reopened.maps(record)
        np.testing.assert_array_equal(original, maps(seed)[0])
        np.testing.assert_array_equal(edited, maps(seed)[1])
    assert np.array_equal(np.asarray(reopened.image(first)), np.asarray(picture(0)))
    assert reopened.digest == filled.digest


def test_digest_follows_content_and_remove_deletes_files(filled):
    before = filled.digest
    record = filled.records[0]
    filled.remove(record.id)
    assert filled.digest != before and len(EditSet.open(filled.directory)) == 1
    for name in record.files():
        assert not (filled.directory / name).exists()
    with pytest.raises(EditSetError, match="no edit"):
        filled.remove(record.id)


def test_dataset_images_are_referenced(tmp_path, single_task):
    tree = tmp_path / "tree"
    for split, seed in (("train", 5), ("test", 6)):
        (tree / split / "cat").mkdir(parents=True)
        picture(seed).save(tree / split / "cat" / "a.png")
    s = EditSet.create(tmp_path / "set", single_task)
    source = {"dataset": "imagefolder", "split": "train", "index": 0, "root": str(tree)}
    record = s.add(*maps(), source=source)
    assert not any((s.directory / "images").iterdir())  # referenced, not copied
    assert np.array_equal(np.asarray(s.image(record)), np.asarray(picture(5)))
    bad = s.add(*maps(), source={**source, "index": 9})
    with pytest.raises(EditSetError, match="is missing"):
        s.image(bad)
    with pytest.raises(EditSetError, match=f"edit {bad.id}: its image .* is missing"):
        EditSet.open(s.directory, data_root=tmp_path)


def test_concurrent_writers_keep_each_others_edits(filled):
    other = EditSet.open(filled.directory)
    other.add(*maps(2), image=picture(2))
    filled.add(*maps(3), image=picture(3))  # its records were read before the other's add
    assert len(EditSet.open(filled.directory)) == 4


# -- refusals


def test_create_refuses_to_overwrite(filled, single_task, tmp_path):
    before = snapshot(filled.directory)
    with pytest.raises(EditSetError, match="already holds an edit set"):
        EditSet.create(filled.directory, single_task)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x.txt").write_text("mine")
    with pytest.raises(EditSetError, match="not an empty folder"):
        EditSet.create(tmp_path / "busy", single_task)
    assert snapshot(filled.directory) == before
    with pytest.raises(EditSetError, match="ABN"):
        EditSet.create(tmp_path / "new", abn.create("resnet20", "plain", num_classes=10))


def test_failed_add_changes_nothing(filled, monkeypatch):
    before = snapshot(filled.directory)
    with pytest.raises(EditSetError, match="8×8"):
        filled.add(np.zeros((8, 8)), np.zeros((8, 8)), image=picture())
    with pytest.raises(EditSetError, match=r"\[0, 1\]"):
        filled.add(maps()[0], maps()[1] + 2, image=picture())
    with pytest.raises(EditSetError, match="needs its image"):
        filled.add(*maps())
    with pytest.raises(EditSetError, match="source index"):
        filled.add(*maps(), source={"dataset": "cifar10", "split": "test", "index": -1})
    with pytest.raises(EditSetError, match="source needs dataset"):
        filled.add(*maps(), source={"split": "test", "index": 1})
    real = editset_module.atomic_write_bytes

    def failing(path, data):
        if Path(path).name == "edits.json":
            raise OSError("disk full")
        real(path, data)

    monkeypatch.setattr(editset_module, "atomic_write_bytes", failing)
    with pytest.raises(OSError, match="disk full"):
        filled.add(*maps(), image=picture())
    assert snapshot(filled.directory) == before
    assert len(filled) == 2


def manifest(directory: Path) -> dict:
    return json.loads((directory / "edits.json").read_text())


def rewrite(directory: Path, data: dict) -> None:
    (directory / "edits.json").write_text(json.dumps(data))


def npy_bytes(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def break_missing_manifest(d: Path) -> None:
    (d / "edits.json").unlink()


def break_format(d: Path) -> None:
    rewrite(d, {**manifest(d), "format": "abn-editset/9"})


def break_json(d: Path) -> None:
    (d / "edits.json").write_text("{not json")


def break_missing_image(d: Path) -> None:
    (d / manifest(d)["records"][0]["image"]).unlink()


def break_missing_npy(d: Path) -> None:
    (d / manifest(d)["records"][1]["edited"]).unlink()


def break_corrupt_npy(d: Path) -> None:
    (d / manifest(d)["records"][0]["original"]).write_bytes(b"\x93NUMPY garbage")


def break_pickle_npy(d: Path) -> None:
    obj = np.array([{"x": 1}], dtype=object)
    (d / manifest(d)["records"][0]["edited"]).write_bytes(npy_bytes(obj))


def break_npy_shape(d: Path) -> None:
    (d / manifest(d)["records"][0]["edited"]).write_bytes(npy_bytes(np.zeros((8, 8), "f4")))


def break_npy_values(d: Path) -> None:
    (d / manifest(d)["records"][0]["edited"]).write_bytes(npy_bytes(np.full(SHAPE, 3, "f4")))


def break_traversal(d: Path) -> None:
    data = manifest(d)
    data["records"][0]["original"] = "maps/../../outside.npy"
    rewrite(d, data)


def break_record(d: Path) -> None:
    data = manifest(d)
    del data["records"][0]["created"]
    rewrite(d, data)


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (break_missing_manifest, "has no edits.json manifest"),
        (break_format, "format 'abn-editset/9' is not supported"),
        (break_json, "manifest edits.json is unreadable"),
        (break_missing_image, "its image images/.* is missing"),
        (break_missing_npy, "map file .* is missing"),
        (break_corrupt_npy, "not a readable NPY file"),
        (break_pickle_npy, "holds Python objects .*refused"),
        (break_npy_shape, "is a 8×8 map, the set's maps are 16×16"),
        (break_npy_values, "outside \\[0, 1\\]"),
        (break_traversal, "not a file name inside the set's maps/ folder"),
        (break_record, "the record lacks created"),
    ],
)
def test_damaged_sets_are_refused_with_the_reason(filled, damage, reason):
    damage(filled.directory)
    with pytest.raises(EditSetError, match=reason) as refused:
        EditSet.open(filled.directory)
    assert list_edit_sets(filled.directory.parent)[0][2] == str(refused.value)


def test_other_model_and_map_size_are_refused(filled, single_task):
    other = abn.create("resnet20", "abn", num_classes=10).eval()  # other weights
    with pytest.raises(EditSetError, match="made for another model: resnet20 abn"):
        EditSet.open(filled.directory, other)
    bigger = abn.create("resnet20", "abn", num_classes=10).eval()
    bigger.card = abn.ModelCard("resnet20", "abn", 10, input_size=(64, 64))
    with pytest.raises(EditSetError, match="map size mismatch.*16×16.*32×32"):
        EditSet.open(filled.directory, bigger)
    with pytest.raises(EditSetError, match="no such folder"):
        EditSet.open(filled.directory / "nope")


def test_loaded_models_are_named_by_their_checkpoint_digest(tmp_path):
    path = Path(__file__).resolve().parents[2] / "assets" / "cifar10-resnet20-abn.safetensors"
    model = abn.load(path)
    s = EditSet.create(tmp_path / "set", model)
    with safe_open(str(path), framework="pt") as f:
        stored = f.metadata()["abn.sha256"]
    assert s.model["digest"] == stored and s.model["map_size"] == [16, 16]
    EditSet.open(s.directory, abn.load(path))  # the same file loaded again fits


# -- exchange


def test_export_import_round_trip(filled, single_task, tmp_path):
    (filled.directory / "stray.txt").write_text("not part of the set")
    archive = filled.export(tmp_path / "out" / "set.zip")
    names = set(zipfile.ZipFile(archive).namelist())
    assert "edits.json" in names and "stray.txt" not in names and ".lock" not in names
    copy = EditSet.import_zip(archive, tmp_path / "copy", model=single_task)
    assert copy.records == filled.records and copy.digest == filled.digest
    with pytest.raises(EditSetError, match="not an empty folder"):
        EditSet.import_zip(archive, filled.directory)


def write_zip(path: Path, members: dict[str, bytes], link: str | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
        if link:
            info = zipfile.ZipInfo(link)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            z.writestr(info, "/etc/passwd")
    return path


def set_members(filled: EditSet) -> dict[str, bytes]:
    return snapshot(filled.directory)


@pytest.mark.parametrize(
    ("extra", "link", "reason"),
    [
        ({"../evil.npy": b"x"}, None, "paths leaving the set are refused"),
        ({"/abs/evil.npy": b"x"}, None, "paths leaving the set are refused"),
        ({"maps/..\\evil.npy": b"x"}, None, "paths leaving the set are refused"),
        ({"run.py": b"print()"}, None, "not a file an edit set holds"),
        ({}, "maps/link.npy", "is a link; refused"),
    ],
)
def test_hostile_archives_are_refused_and_leave_nothing(filled, tmp_path, extra, link, reason):
    archive = write_zip(tmp_path / "bad.zip", {**set_members(filled), **extra}, link)
    target = tmp_path / "dest" / "imported"
    with pytest.raises(EditSetError, match=reason):
        EditSet.import_zip(archive, target)
    assert not target.exists() and list((tmp_path / "dest").iterdir()) == []
    assert not (tmp_path / "evil.npy").exists()


def test_archives_holding_a_bad_set_are_refused(filled, tmp_path):
    members = set_members(filled)
    pickled = {**members, filled.records[0].edited: npy_bytes(np.array([{}], dtype=object))}
    target = tmp_path / "dest" / "imported"
    with pytest.raises(EditSetError, match="holds Python objects"):
        EditSet.import_zip(write_zip(tmp_path / "p.zip", pickled), target)
    no_manifest = {k: v for k, v in members.items() if k != "edits.json"}
    with pytest.raises(EditSetError, match="has no edits.json"):
        EditSet.import_zip(write_zip(tmp_path / "m.zip", no_manifest), target)
    (tmp_path / "text.zip").write_text("hello")
    with pytest.raises(EditSetError, match="not a ZIP file"):
        EditSet.import_zip(tmp_path / "text.zip", target)
    assert not target.exists() and list((tmp_path / "dest").iterdir()) == []


def test_list_edit_sets(filled, tmp_path, single_task):
    root = filled.directory.parent
    broken = EditSet.create(root / "broken", single_task)
    broken.add(*maps(), image=picture())
    (broken.directory / broken.records[0].image).unlink()
    (root / ".import-tmp").mkdir()
    listed = list_edit_sets(root)
    assert [(f.name, n) for f, n, _ in listed] == [("broken", 1), ("set", 2)]
    assert listed[1][2] is None and "missing" in listed[0][2]
    assert list_edit_sets(tmp_path / "none") == []
