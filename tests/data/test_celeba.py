"""CelebA (original layout) and CelebA-HQ: real packs, label-file variants, broken label files."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from PIL import Image

from abn.data.celeba import CelebA, parse_attribute_file
from abn.data.celeba_hq import (
    NUMBER_RANGES,
    SPLIT_FILE,
    CelebAHQ,
    CelebAHQByNumber,
    parse_split_file,
    split_of,
)
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


def read_split_file(path: Path) -> dict[str, tuple[str, str]]:
    """``N.jpg`` → (partition, identity), read straight from the split file."""
    lines = path.read_text().splitlines()
    assert lines[0].split() == ["file", "orig_file", "partition", "identity"]
    return {f[0]: (f[2], f[3]) for f in (line.split() for line in lines[1:])}


def test_split_file_beside_the_packs_is_identity_disjoint(packs_dir: Path) -> None:
    """CelebA's official partition as the packs hold it: 24,183/2,993/2,824 images and no
    person in two partitions."""
    rows = read_split_file(packs_dir / SPLIT_FILE)
    assert len(rows) == 30_000
    people: dict[str, set[str]] = {"0": set(), "1": set(), "2": set()}
    for partition, identity in rows.values():
        people[partition].add(identity)
    counts = {p: sum(1 for q, _ in rows.values() if q == p) for p in people}
    assert counts == {"0": 24_183, "1": 2_993, "2": 2_824}
    assert not people["0"] & people["1"] and not people["0"] & people["2"]
    assert not people["1"] & people["2"]


def test_celeba_hq_official_split(data_root: Path, packs_dir: Path) -> None:
    root = data_root / "celeba-hq-64"
    assert (root / SPLIT_FILE).read_bytes() == (packs_dir / SPLIT_FILE).read_bytes()  # prepared
    parts = {s: CelebAHQ(root, s) for s in ("train", "val", "test")}
    assert {s: len(d) for s, d in parts.items()} == {"train": 24_183, "val": 2_993, "test": 2_824}
    rows = read_split_file(packs_dir / SPLIT_FILE)
    for split, partition in (("train", "0"), ("val", "1"), ("test", "2")):
        assert {rows[f][0] for f in parts[split].files} == {partition}
        assert parts[split].identities == [int(rows[f][1]) for f in parts[split].files]
    ids = {s: set(d.identities) for s, d in parts.items()}
    assert not ids["train"] & ids["test"] and not ids["train"] & ids["val"]
    assert not ids["val"] & ids["test"]
    assert len(CelebAHQ(root, "all")) == 30_000
    for d in parts.values():  # every attribute has positives in every part (Blurry: 9 in test)
        assert (d.attributes.sum(0) > 0).all()
    image, target = parts["test"][0]
    assert image.shape == (3, 64, 64)
    anno = root / "CelebAMask-HQ-attribute-anno.txt"
    assert target.tolist() == row_of(anno, parts["test"].files[0])


def test_celeba_hq_by_number_split_unchanged(data_root: Path) -> None:
    root = data_root / "celeba-hq-64"
    parts = {s: CelebAHQByNumber(root, s) for s in ("train", "val", "test")}
    assert {s: len(d) for s, d in parts.items()} == {"train": 24_000, "val": 3_000, "test": 3_000}
    numbers = {s: {int(f.split(".")[0]) for f in d.files} for s, d in parts.items()}
    for split, (lo, hi) in NUMBER_RANGES.items():
        assert numbers[split] == set(range(lo, hi + 1))
    assert 30000 in numbers["test"]
    # every attribute has positives in every part
    for d in parts.values():
        assert (d.attributes.sum(0) > 0).all()
    image, target = parts["test"][0]
    assert image.shape == (3, 64, 64) and parts["test"].files[0] == "27001.jpg"
    anno = root / "CelebAMask-HQ-attribute-anno.txt"
    assert target.tolist() == row_of(anno, "27001.jpg")


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


def make_hq(root: Path, split_lines: list[str] | None) -> Path:
    """A tiny CelebA-HQ folder: 3 images, their attributes and (unless ``None``) a split file."""
    (root / "images").mkdir(parents=True)
    values = " ".join(["1"] * 40)
    names = ["1.jpg", "2.jpg", "3.jpg"]
    for name in names:
        Image.new("RGB", (8, 8), (90, 60, 30)).save(root / "images" / name)
    rows = "".join(f"{n} {values}\n" for n in names)
    (root / "CelebAMask-HQ-attribute-anno.txt").write_text(f"3\n{NAMES_LINE}\n{rows}")
    if split_lines is not None:
        header = "file orig_file partition identity\n"
        (root / SPLIT_FILE).write_text(header + "".join(f"{x}\n" for x in split_lines))
    return root


SPLIT_LINES = ["1.jpg 000010.jpg 0 7", "2.jpg 000020.jpg 2 9", "3.jpg 000030.jpg 0 7"]


def test_celeba_hq_reads_the_split_file(tmp_path: Path) -> None:
    root = make_hq(tmp_path / "hq", SPLIT_LINES)
    train, test = CelebAHQ(root, "train"), CelebAHQ(root, "test")
    assert (train.files, train.identities) == (["1.jpg", "3.jpg"], [7, 7])
    assert (test.files, len(CelebAHQ(root, "val"))) == (["2.jpg"], 0)
    assert CelebAHQByNumber(root, "train").files == ["1.jpg", "2.jpg", "3.jpg"]


def test_celeba_hq_without_its_split_file_says_how_to_get_it(tmp_path: Path) -> None:
    root = make_hq(tmp_path / "hq", None)
    with pytest.raises(DataError) as info:
        CelebAHQ(root, "test")
    message = str(info.value)
    assert str(root / SPLIT_FILE) in message and "abn data prepare --only celeba-hq" in message
    assert "celeba-hq-by-number" in message
    assert len(CelebAHQByNumber(root, "train")) == 3  # the numbered split needs no file


@pytest.mark.parametrize(
    ("line", "match"),
    [
        ("2.jpg 000020.jpg 5 9", "partition '5' is not 0, 1 or 2"),
        ("2.jpg 000020.jpg 2", "expected 'N.jpg <orig_file> <0|1|2> <identity>'"),
        ("2.jpg 000020.jpg 2 x", "identity 'x' is not a number"),
        ("1.jpg 000010.jpg 0 7", "image 1.jpg is listed twice"),
    ],
)
def test_celeba_hq_bad_split_line(tmp_path: Path, line: str, match: str) -> None:
    root = make_hq(tmp_path / "hq", [*SPLIT_LINES[:1], line, *SPLIT_LINES[2:]])
    with pytest.raises(DataError, match=re.escape(match)) as info:
        CelebAHQ(root, "train")
    assert f"{root / SPLIT_FILE}, line 3" in str(info.value)


def test_celeba_hq_image_missing_from_the_split_file(tmp_path: Path) -> None:
    root = make_hq(tmp_path / "hq", SPLIT_LINES[:2])
    with pytest.raises(DataError, match=r"line 5: image 3.jpg has no line in .*split"):
        CelebAHQ(root, "train")
    assert set(parse_split_file(root / SPLIT_FILE)) == {"1.jpg", "2.jpg"}


def test_celeba_hq_bad_name(tmp_path: Path) -> None:
    root = tmp_path / "hq"
    (root / "images").mkdir(parents=True)
    values = " ".join(["1"] * 40)
    (root / "CelebAMask-HQ-attribute-anno.txt").write_text(f"1\n{NAMES_LINE}\nface.png {values}\n")
    with pytest.raises(DataError, match="line 3: image name 'face.png'"):
        CelebAHQByNumber(root, "train")
