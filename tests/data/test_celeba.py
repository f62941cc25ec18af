"""CelebA (original layout) and CelebA-HQ: real packs, label-file variants, broken label files."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from PIL import Image

from abn.data.celeba import CelebA, parse_attribute_file
from abn.data.celeba_hq import SPLITS, CelebAHQ, split_of
from abn.data.errors import DataError
from abn.data.registry import CELEBA_ATTRIBUTES

NAMES_LINE = " ".join(CELEBA_ATTRIBUTES)


def row_of(path: Path, image: str) -> list[float]:
    """The attribute row of ``image`` read straight from the label file, as {0, 1}."""
    for line in path.read_text().splitlines():
        fields = line.split()
        if fields and fields[0] == image:
            return [1.0 if v == "1" else 0.0 for v in fields[1:]]
    raise AssertionError(f"{image} not in {path}")


# --- real data ------------------------------------------------------------------------------


def test_celeba_sample_pack(data_root: Path) -> None:
    root = data_root / "celeba"
    valid, test = CelebA(root, "valid"), CelebA(root, "test")
    assert (len(valid), len(test)) == (780, 660)
    assert len(CelebA(root, "all")) == 1440
    assert valid.attribute_names == list(CELEBA_ATTRIBUTES)
    assert not set(valid.files) & set(test.files)
    image, target = test[5]
    assert image.shape == (3, 218, 178) and image.dtype == torch.uint8
    assert target.dtype == torch.float32 and target.shape == (40,)
    assert set(target.unique().tolist()) <= {0.0, 1.0}
    assert target.tolist() == row_of(root / "list_attr_celeba.txt", test.files[5])
    partition = dict(
        line.split() for line in (root / "list_eval_partition.txt").read_text().splitlines()
    )
    assert {partition[f] for f in test.files} == {"2"}
    assert CelebA(root, "val").files == valid.files  # alias


def test_celeba_sample_has_no_train_split(data_root: Path) -> None:
    with pytest.raises(DataError, match="no images in split 'train'") as info:
        CelebA(data_root / "celeba", "train")
    assert "list_eval_partition.txt" in str(info.value)


def test_celeba_hq_split(data_root: Path) -> None:
    root = data_root / "celeba-hq-64"
    parts = {s: CelebAHQ(root, s) for s in ("train", "val", "test")}
    assert {s: len(d) for s, d in parts.items()} == {"train": 24_000, "val": 3_000, "test": 3_000}
    numbers = {s: {int(f.split(".")[0]) for f in d.files} for s, d in parts.items()}
    assert not numbers["train"] & numbers["test"] and not numbers["train"] & numbers["val"]
    for split, (lo, hi) in SPLITS.items():
        assert min(numbers[split]) == lo and max(numbers[split]) == hi
    assert 30000 in numbers["test"]
    # every attribute has positives in every part
    for d in parts.values():
        assert (d.attributes.sum(0) > 0).all()
    image, target = parts["test"][0]
    assert image.shape == (3, 64, 64)
    anno = root / "CelebAMask-HQ-attribute-anno.txt"
    assert target.tolist() == row_of(anno, parts["test"].files[0])


def test_celeba_hq_split_of() -> None:
    assert split_of(1) == "train" and split_of(24_000) == "train"
    assert split_of(24_001) == "val" and split_of(27_001) == "test"
    assert split_of(30_000) == "test" and split_of(0) is None


# --- synthetic CelebA trees -----------------------------------------------------------------


def make_celeba(
    root: Path,
    partitions: dict[str, int],
    *,
    count_line: bool = True,
    sep: str = " ",
    on_disk: list[str] | None = None,
) -> Path:
    """A tiny CelebA tree: images named in ``partitions`` (name → 0/1/2) plus label files."""
    (root / "img_align_celeba").mkdir(parents=True)
    for name in partitions if on_disk is None else on_disk:
        Image.new("RGB", (178, 218), (90, 60, 30)).save(root / "img_align_celeba" / name)
    lines = [str(len(partitions))] if count_line else []
    lines.append(NAMES_LINE)
    for i, name in enumerate(partitions):
        values = ["1" if (i + j) % 3 == 0 else "-1" for j in range(40)]
        lines.append(name + sep + sep.join(v.rjust(2) if sep == " " else v for v in values))
    (root / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    (root / "list_eval_partition.txt").write_text(
        "".join(f"{n} {p}\n" for n, p in partitions.items())
    )
    return root


PARTS = {"000001.jpg": 0, "000002.jpg": 0, "000003.jpg": 1, "000004.jpg": 2}


@pytest.mark.parametrize("count_line", [True, False])
@pytest.mark.parametrize("sep", [" ", "  "])
def test_label_file_variants(tmp_path: Path, count_line: bool, sep: str) -> None:
    root = make_celeba(tmp_path / "celeba", PARTS, count_line=count_line, sep=sep)
    train = CelebA(root, "train")
    assert train.files == ["000001.jpg", "000002.jpg"]
    expected = torch.tensor([[1.0 if (i + j) % 3 == 0 else 0.0 for j in range(40)] for i in (0, 1)])
    assert torch.equal(train.targets, expected)
    assert len(CelebA(root, "valid")) == 1 and len(CelebA(root, "test")) == 1


def edit_line(path: Path, number: int, fn) -> None:
    lines = path.read_text().splitlines()
    lines[number - 1] = fn(lines[number - 1])
    path.write_text("\n".join(lines) + "\n")


def expect_error(root: Path, split: str, file: str, line: int, match: str) -> None:
    with pytest.raises(DataError, match=match) as info:
        CelebA(root, split)
    assert f"{root / file}, line {line}" in str(info.value)


def test_short_row(tmp_path: Path) -> None:
    root = make_celeba(tmp_path / "c", PARTS)
    edit_line(root / "list_attr_celeba.txt", 4, lambda s: s.rsplit(" ", 1)[0])
    expect_error(root, "train", "list_attr_celeba.txt", 4, "found 40 fields")


def test_unknown_value(tmp_path: Path) -> None:
    root = make_celeba(tmp_path / "c", PARTS)
    edit_line(root / "list_attr_celeba.txt", 5, lambda s: s[:-2] + " 0")
    expect_error(root, "valid", "list_attr_celeba.txt", 5, "'0' is not -1 or 1")


def test_listed_but_missing_on_disk(tmp_path: Path) -> None:
    root = make_celeba(tmp_path / "c", PARTS, on_disk=["000001.jpg", "000003.jpg", "000004.jpg"])
    expect_error(root, "train", "list_attr_celeba.txt", 4, "000002.jpg is listed but missing")
    assert len(CelebA(root, "test")) == 1  # other splits are fine


def test_partition_image_without_attributes(tmp_path: Path) -> None:
    root = make_celeba(tmp_path / "c", PARTS)
    with (root / "list_eval_partition.txt").open("a") as fh:
        fh.write("000009.jpg 2\n")
    expect_error(root, "test", "list_eval_partition.txt", 5, "000009.jpg has no row")


def test_bad_partition_value(tmp_path: Path) -> None:
    root = make_celeba(tmp_path / "c", PARTS)
    edit_line(root / "list_eval_partition.txt", 2, lambda s: s.replace(" 0", " 7"))
    expect_error(root, "train", "list_eval_partition.txt", 2, "expected")


def test_count_line_mismatch_and_names(tmp_path: Path) -> None:
    root = make_celeba(tmp_path / "c", PARTS)
    edit_line(root / "list_attr_celeba.txt", 1, lambda s: "99")
    expect_error(root, "train", "list_attr_celeba.txt", 1, "says 99 images but 4 rows")
    edit_line(root / "list_attr_celeba.txt", 1, lambda s: "4")
    edit_line(root / "list_attr_celeba.txt", 2, lambda s: s.rsplit(" ", 1)[0])
    expect_error(root, "train", "list_attr_celeba.txt", 2, "expected 40 attribute names")


def test_missing_files(tmp_path: Path) -> None:
    root = make_celeba(tmp_path / "c", PARTS)
    (root / "list_eval_partition.txt").unlink()
    with pytest.raises(
        DataError, match=re.escape(f"{root / 'list_eval_partition.txt'}: label file")
    ):
        CelebA(root, "train")
    with pytest.raises(DataError, match="does not exist"):
        CelebA(tmp_path / "nowhere", "train")
    with pytest.raises(DataError, match="unknown split"):
        CelebA(root, "bogus")


def test_full_size_attribute_file_parses(tmp_path: Path) -> None:
    """The full file has 202,599 rows (here without the count line, two-space separated)."""
    n = 202_599
    body = "  ".join(["-1"] * 39 + [" 1"])
    text = NAMES_LINE + "\n" + "".join(f"{i:06d}.jpg  {body}\n" for i in range(1, n + 1))
    path = tmp_path / "list_attr_celeba.txt"
    path.write_text(text)
    table = parse_attribute_file(path)
    assert table.values.shape == (n, 40)
    assert table.names[-1] == f"{n:06d}.jpg"
    assert table.values[:, -1].all() and not table.values[:, :-1].any()


def test_celeba_hq_bad_name(tmp_path: Path) -> None:
    root = tmp_path / "hq"
    (root / "images").mkdir(parents=True)
    values = " ".join(["1"] * 40)
    (root / "CelebAMask-HQ-attribute-anno.txt").write_text(f"1\n{NAMES_LINE}\nface.png {values}\n")
    with pytest.raises(DataError, match="line 3: image name 'face.png'"):
        CelebAHQ(root, "train")
