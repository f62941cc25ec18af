"""`abn data ...` sub-commands through argparse, as abn/cli.py will wire them."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from abn.cli_data import add_data_parser


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="abn")
    add_data_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_info_text_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["data", "info", "imagenette"]) == 0
    assert "tench, English springer" in capsys.readouterr().out
    assert run(["data", "info", "celeba-hq", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["num_classes"] == 40 and info["task"] == "multilabel"
    assert run(["data", "info", "--list"]) == 0
    assert "cifar10" in capsys.readouterr().out.split()
    assert run(["data", "info", "imagefolder"]) == 0
    assert "pass --root with the tree" in capsys.readouterr().out


def test_check_of_a_registered_dataset_and_a_missing_split(tmp_path, data_root, capsys) -> None:
    assert run(["data", "check", "cifar10", "--root", str(data_root), "--split", "test",
                "--quiet"]) == 0  # fmt: skip
    assert "test: 10000 images in 10 classes (1000–1000 per class)" in capsys.readouterr().out
    (tmp_path / "t" / "train" / "a").mkdir(parents=True)
    assert run(["data", "check", "imagefolder", "--root", str(tmp_path / "t"), "--split", "val",
                "--quiet"]) == 1  # fmt: skip
    out = capsys.readouterr().out
    assert "val: cannot be read" in out and "no split folder 'val'" in out


def test_errors_exit_2_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        run(["data", "info", "mnist"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown dataset 'mnist'") and "Traceback" not in err
    with pytest.raises(SystemExit) as info:
        run(
            [
                "data",
                "prepare",
                "--packs",
                str(tmp_path),
                "--root",
                str(tmp_path),
                "--only",
                "celeba",
            ]
        )
    assert info.value.code == 2
    assert "SHA256SUMS" in capsys.readouterr().err


def test_prepare_already_done(
    data_root: Path, packs_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "data",
        "prepare",
        "--packs",
        str(packs_dir),
        "--root",
        str(data_root),
        "--only",
        "cifar10,celeba",
    ]
    assert run([*argv, "--quiet"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "cifar10: already prepared",
        "celeba: already prepared",
    ]
