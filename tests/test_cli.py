"""``python -m abn``: bad input exits 2 without a traceback; train → eval → card end to end."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch

from abn.checkpoint import read_card
from abn.cli import main

REPO = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "abn", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def test_unknown_flag_exits_2_without_traceback() -> None:
    proc = _run("train", "--bogus")
    assert proc.returncode == 2
    assert "unrecognized arguments: --bogus" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--set", "nope=1"], "unknown config key(s): nope"),
        (["train", "--set", "epochs=many"], "epochs expects int"),
        (["train", "no-such-config"], "config 'no-such-config' not found"),
        (["train", "--epochs", "0"], "epochs must be >= 1"),
        (["train", "--resume", "/no/such/run"], "nothing to resume"),
        (["eval", "--model", "x.safetensors", "--limit", "-1"], "--limit must be"),
    ],
)
def test_bad_config_exits_2_with_the_reason(argv, message, capsys) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_flags_and_set_override_the_config_file(capsys) -> None:
    assert (
        main(["train", "cifar10-pack", "--epochs", "3", "--set", "lr=0.2", "--print-config"]) == 0
    )
    out = capsys.readouterr().out
    assert 'name = "cifar10-pack"' in out and "epochs = 3" in out and "lr = 0.2" in out


def test_models_lists_the_registry(capsys) -> None:
    assert main(["models", "resnet*"]) == 0
    out = capsys.readouterr().out
    assert "resnet20" in out and "resnet152" in out and "abn_multitask" in out


def test_card_of_a_missing_file_is_a_clear_error(capsys) -> None:
    assert main(["card", "/no/such.safetensors"]) == 1
    assert "checkpoint not found" in capsys.readouterr().err


def test_unwritable_output_folder_fails_early(tmp_path: Path, data_root: Path, capsys) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    argv = ["train", "--data-root", str(data_root), "--limit-train", "8", "--limit-test", "8",
            "--out", str(blocker), "--quiet", "--workers", "0"]  # fmt: skip
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert f"error: cannot write to output folder {blocker}" in err and "Traceback" not in err


def _tiny_run(data_root: Path, out: Path, name: str, epochs: int) -> list[str]:
    """``train`` arguments for a quiet run on 16 CIFAR-10 images."""
    return ["train", "--data-root", str(data_root), "--limit-train", "16", "--limit-test", "8",
            "--epochs", str(epochs), "--batch-size", "16", "--workers", "0", "--out", str(out),
            "--name", name, "--quiet"]  # fmt: skip


NOBODY = 65534  # the unprivileged user the read-only check runs as when the suite runs as root


def _resume_read_only(run: Path, capsys) -> tuple[int, str]:
    """``train --resume run`` with ``run`` read-only (mode 555) to the process that resumes.

    Root writes into read-only folders, so as root the command runs in a subprocess as user
    ``nobody`` (through util-linux's ``setpriv``), which then owns the run (to read it) but
    cannot write in it."""
    if os.geteuid() != 0:
        run.chmod(0o555)
        try:
            return main(["train", "--resume", str(run)]), capsys.readouterr().err
        finally:
            run.chmod(0o755)
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv (util-linux): cannot drop to a user")
    for path in [run, *run.iterdir()]:
        os.chown(path, NOBODY, NOBODY)
    run.chmod(0o555)
    env = {**os.environ, "PYTHONPATH": str(REPO), "HOME": str(run.parent)}
    user = [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    proc = subprocess.run([*user, sys.executable, "-m", "abn", "train", "--resume", str(run)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    return proc.returncode, proc.stderr


@pytest.mark.skipif(not hasattr(os, "geteuid"), reason="needs POSIX users")
def test_resuming_a_read_only_run_folder_fails_early(data_root: Path, capsys) -> None:
    # a folder that user nobody can reach (pytest's tmp_path is private to root)
    base = Path(tempfile.mkdtemp(prefix="abn-ro-"))
    base.chmod(0o755)
    try:
        argv = _tiny_run(data_root, base, "ro", epochs=2)
        assert main(argv) == 0
        run = base / "ro"
        before = {p.name: p.stat().st_mtime_ns for p in run.iterdir()}
        code, err = _resume_read_only(run, capsys)
        assert code == 1, err
        assert f"error: cannot write to output folder {run}: Permission denied" in err
        assert "Traceback" not in err
        assert {p.name: p.stat().st_mtime_ns for p in run.iterdir()} == before
    finally:
        if (base / "ro").exists():
            (base / "ro").chmod(0o755)  # so that a non-root user can remove it
        shutil.rmtree(base)


def test_resuming_an_unwritable_run_folder_fails_early_as_any_user(
    tmp_path: Path, data_root: Path, capsys, monkeypatch
) -> None:
    """The same check where chmod cannot stop the writer (root, as in CI): writes into the run
    folder fail with EACCES, and nothing there changes."""
    argv = _tiny_run(data_root, tmp_path, "ro", epochs=2)
    assert main(argv) == 0
    run = tmp_path / "ro"
    before = {p.name: p.stat().st_mtime_ns for p in run.iterdir()}
    assert main(["train", "--resume", str(run), "--epochs", "1"]) == 2  # not shortened
    assert "has trained 2 epochs: resume with --epochs >= 2" in capsys.readouterr().err
    real = Path.write_bytes

    def refuse(self: Path, data: bytes) -> int:
        if self.parent == run:
            raise PermissionError(13, "Permission denied", str(self))
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", refuse)
    assert main(["train", "--resume", str(run)]) == 1
    err = capsys.readouterr().err
    assert f"error: cannot write to output folder {run}: Permission denied" in err
    assert "Traceback" not in err
    assert {p.name: p.stat().st_mtime_ns for p in run.iterdir()} == before
    assert {p.name: p.stat().st_mtime_ns for p in run.iterdir()} == before


def test_train_then_eval_then_card_end_to_end(tmp_path: Path, data_root: Path, capsys) -> None:
    argv = ["train", "cifar10-pack", "--data-root", str(data_root), "--limit-train", "64",
            "--limit-test", "32", "--epochs", "1", "--batch-size", "32", "--workers", "0",
            "--out", str(tmp_path), "--name", "e2e", "--quiet"]  # fmt: skip
    assert main(argv) == 0
    run = tmp_path / "e2e"
    assert {p.name for p in run.iterdir()} >= {
        "config.toml",
        "metrics.csv",
        "last.safetensors",
        "last.state.pt",
        "final.safetensors",
    }
    with (run / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1 and rows[0]["epoch"] == "1" and float(rows[0]["images_per_s"]) > 0
    assert rows[0]["test_acc_att"] != ""
    card = read_card(run / "final.safetensors")
    assert (card.arch, card.variant, card.dataset, card.task) == (
        "resnet20",
        "abn",
        "cifar10",
        "multiclass",
    )
    assert card.class_names[0] == "airplane" and card.input_size == (32, 32)
    assert card.recipe["epochs"] == 1 and card.recipe["lr"] == 0.1
    trained_on = card.metrics["cifar10/test (sample of 32)"]  # never filed as the whole split
    assert trained_on["n"] == 32 and trained_on["sample_of"] == 10_000
    assert "cifar10/test" not in card.metrics
    assert card.training["epochs"] == 1 and card.training["hardware"]
    assert "--limit-train 64" in card.training["command"]
    capsys.readouterr()

    final = str(run / "final.safetensors")
    assert main(["eval", "--model", final, "--data-root", str(data_root), "--limit", "16",
                 "--workers", "0", "--write-card", "--json"]) == 0  # fmt: skip
    printed = json.loads(capsys.readouterr().out.split("\nwrote")[0])
    assert printed["n"] == 16 and "att_top1_err" in printed
    assert read_card(final).metrics["cifar10/test (sample of 16)"]["n"] == 16
    assert read_card(final).metrics["cifar10/test (sample of 32)"] == trained_on  # they stay

    assert main(["card", final]) == 0
    assert json.loads(capsys.readouterr().out)["arch"] == "resnet20"


def test_a_run_is_never_overwritten_and_resuming_keeps_its_identity(
    tmp_path: Path, data_root: Path, capsys
) -> None:
    argv = _tiny_run(data_root, tmp_path, "once", epochs=1)
    assert main(argv) == 0
    final = tmp_path / "once" / "final.safetensors"
    before = final.read_bytes()
    capsys.readouterr()
    assert main([*argv, "--seed", "5"]) == 1
    err = capsys.readouterr().err
    assert "already holds a run" in err and f"--resume {tmp_path / 'once'}" in err
    assert final.read_bytes() == before
    assert main(["train", "--resume", str(tmp_path / "once"), "--name", "other"]) == 2
    assert "--name cannot change when resuming" in capsys.readouterr().err
    assert not (tmp_path / "other").exists()
    run = str(tmp_path / "once")
    for changes, named in ((["--set", "lr=1.0", "--set", "seed=7"], "lr, --seed"),
                           (["--set", "milestones=[0.3]"], "milestones"),
                           (["--set", "model_kwargs.map_kernel=1"], "model_kwargs")):  # fmt: skip
        assert main(["train", "--resume", run, *changes]) == 2
        assert f"{named} cannot change when resuming" in capsys.readouterr().err
    assert main(["train", "--resume", run, "--epochs", "0"]) == 2  # the config's own check
    capsys.readouterr()
    assert final.read_bytes() == before


@pytest.mark.parametrize(
    ("device", "message"),
    [("gpu", "unknown device 'gpu'"), ("meta", "not supported")]
    + ([] if torch.cuda.is_available() else [("cuda:0", "no CUDA GPU is available")]),
)
def test_a_bad_device_is_one_line_in_eval_and_scorecard(device: str, message: str, capsys):
    model = "assets/cifar10-resnet20-abn.safetensors"
    for argv in (["eval", "--model", model, "--device", device, "--limit", "1"],
                 ["scorecard", "--model", model, "--methods", "abn", "--n", "1",
                  "--out", "/tmp/never", "--device", device]):  # fmt: skip
        assert main(argv) == 2  # a bad flag, like every other usage error
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err


def test_one_line_keeps_a_dataloader_workers_original_message() -> None:
    from abn.device import one_line

    wrapped = RuntimeError(
        "Caught ImageReadError in DataLoader worker process 0.\nOriginal Traceback (most recent "
        'call last):\n  File "x.py", line 1, in f\nabn.data.errors.ImageReadError: a.jpg: '
        "corrupt image header\n"
    )
    assert one_line(wrapped) == "a.jpg: corrupt image header"
    assert one_line(ValueError("plain")) == "plain"


def _tree(root: Path, splits: dict[str, int], classes: tuple[str, ...]) -> Path:
    """A small image-folder tree ``root/<split>/<class>/*.png`` of coloured noise."""
    from PIL import Image

    gen = torch.Generator().manual_seed(0)
    for split, per_class in splits.items():
        for c, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(per_class):
                pixels = torch.randint(0, 256, (20, 24, 3), generator=gen, dtype=torch.uint8)
                pixels[..., c % 3] = 255  # each class its own colour
                Image.fromarray(pixels.numpy()).save(folder / f"{i}.png")
    return root


def _folder_run(tree: Path, out: Path) -> list[str]:
    return ["train", "--data", "imagefolder", "--data-root", str(tree), "--model", "resnet20",
            "--variant", "abn", "--set", "input_size=[32,32]", "--epochs", "1",
            "--batch-size", "6", "--workers", "0", "--out", str(out), "--name", "mine",
            "--quiet"]  # fmt: skip


def test_own_tree_with_val_split_trains_and_evaluates_without_repeating_flags(
    tmp_path: Path, capsys
) -> None:
    """A user's ``train/`` + ``val/`` tree: training tests on ``val``; ``eval`` finds the tree
    and the split from the card; with 3 classes no (always 0%) top-5 column is shown."""
    tree = _tree(tmp_path / "tree", {"train": 4, "val": 2}, ("ant", "bee", "cow"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:  # trained with the tree's path relative to here ...
        assert main(_folder_run(Path("tree"), tmp_path / "runs")) == 0
        os.chdir(elsewhere)  # ... evaluated from elsewhere: the card holds the absolute path
        assert main(["eval", "--model", str(tmp_path / "runs" / "mine" / "final.safetensors"),
                     "--workers", "0", "--json"]) == 0  # fmt: skip
    finally:
        os.chdir(cwd)
    model = tmp_path / "runs" / "mine" / "final.safetensors"
    card = read_card(model)
    assert card.splits == {"train": "train", "test": "val"}
    assert "imagefolder/val" in card.metrics and card.recipe["data_root"] == str(tree)
    record = json.loads(capsys.readouterr().out)  # the quiet run printed nothing
    assert record["n"] == 6 and "per_top1_err" in record and "per_top5_err" not in record
    assert main(["eval", "--model", str(model), "--workers", "0"]) == 0
    out = capsys.readouterr().out
    assert "imagefolder/val" in out and "top-1 err" in out and "top-5 err" not in out


def test_a_one_class_tree_is_refused_before_training(tmp_path: Path, capsys) -> None:
    tree = _tree(tmp_path / "tree", {"train": 2, "val": 1}, ("only",))
    assert main(_folder_run(tree, tmp_path / "runs")) == 1
    err = capsys.readouterr().err
    assert "imagefolder has 1 class (only): a classifier needs at least 2" in err
    assert "Traceback" not in err and not (tmp_path / "runs" / "mine" / "metrics.csv").exists()


@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"], ["eval", "--help"],
                                  ["data", "info", "--help"], []])  # fmt: skip
def test_help_and_usage_errors_do_not_import_torch(argv: list[str]) -> None:
    """The parser of one command imports that command's module only: ``abn --help`` is instant."""
    code = (
        "import sys\nfrom abn.cli import main\ntry:\n    main(sys.argv[1:])\n"
        "except SystemExit:\n    pass\nprint('torch' in sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", code, *argv], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.stdout.strip().splitlines()[-1] == "False", proc.stdout + proc.stderr


def test_every_command_builds_in_full() -> None:
    from abn.cli import COMMANDS, build_parser

    parser = build_parser()
    for name in COMMANDS:
        args = parser.parse_args(_minimal(name))
        assert args.command == name and callable(args.func)


def _minimal(name: str) -> list[str]:
    return {
        "train": ["train"], "eval": ["eval", "--model", "m"], "models": ["models"],
        "card": ["card", "c"], "data": ["data", "info"],
        "explain": ["explain", "--model", "m", "--images", "i", "--out", "o"],
        "scorecard": ["scorecard", "--model", "m", "--out", "o"],
        "finetune": ["finetune", "--model", "m", "--edits", "e", "--name", "n"],
        "report": ["report", "i", "--model", "m"],
        "familiarity": ["familiarity", "calibrate", "--model", "m"],
    }[name]  # fmt: skip


@pytest.mark.slow
def test_the_abn_command_is_installed_as_the_cli() -> None:
    """Cards record ``abn train ...``; the installed ``abn`` command is ``python -m abn``."""
    from importlib.metadata import entry_points

    (script,) = entry_points(group="console_scripts", name="abn")
    from abn.cli import main

    assert script.load() is main
    exe = Path(sys.executable).parent / "abn"
    proc = subprocess.run([str(exe), "models"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "resnet110" in proc.stdout


def test_a_corrupt_training_image_points_at_data_check_which_lists_them_all(
    tmp_path: Path, capsys
) -> None:
    tree = _tree(tmp_path / "tree", {"train": 4, "val": 2}, ("ant", "bee"))
    assert main(["data", "check", "imagefolder", "--root", str(tree), "--quiet"]) == 0
    assert "every image reads" in capsys.readouterr().out
    (tree / "train" / "bee" / "9.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 10)
    (tree / "val" / "ant" / "8.jpg").write_bytes(b"not a jpeg at all")
    assert main([*_folder_run(tree, tmp_path / "runs"), "--set", "loader=folder"]) == 1
    err = capsys.readouterr().err
    assert "9.png" in err and "Traceback" not in err
    assert f"abn data check imagefolder --root {tree}` lists every unreadable image" in err
    assert "run the same command again (no epoch finished" in err  # nothing to resume yet
    assert main(["data", "check", "imagefolder", "--root", str(tree), "--quiet"]) == 1
    out = capsys.readouterr().out
    assert "train: 9 images in 2 classes (4–5 per class), 1 unreadable" in out
    assert "val: 5 images in 2 classes (2–3 per class), 1 unreadable" in out
    assert "9.png" in out and "8.jpg" in out and "2 problem(s) found" in out


def test_after_a_finished_epoch_the_bad_image_hint_says_resume(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from abn.cli import bad_image_hint
    from abn.train.state import STATE_NAME

    cfg = SimpleNamespace(data="imagefolder", data_root=str(tmp_path / "my tree"))
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / STATE_NAME).write_bytes(b"")
    hint = bad_image_hint(cfg, tmp_path / "run")
    assert f"abn data check imagefolder --root '{tmp_path / 'my tree'}'" in hint
    assert f"go on with `abn train --resume {tmp_path / 'run'}`" in hint


def test_a_data_root_one_level_too_deep_is_named_by_train_and_data_check(
    tmp_path: Path, capsys
) -> None:
    tree = _tree(tmp_path / "tree", {"train": 2, "val": 1}, ("ant", "bee"))
    (tree / "train" / "ant" / "nested").mkdir()  # a sub-folder is not a class of a split
    for deep in (tree / "val", tree / "train"):
        argv = _folder_run(deep, tmp_path / "runs")
        argv[argv.index("--name") + 1] = f"deep-{deep.name}"
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert f"{deep}: its folders ant/, bee/ hold images, so it looks like a split" in err
        assert main(["data", "check", "imagefolder", "--root", str(deep), "--quiet"]) == 1
        assert "looks like a split or class folder itself" in capsys.readouterr().out
    only_train = _tree(tmp_path / "only", {"train": 2}, ("ant", "bee"))
    assert main(["data", "check", "imagefolder", "--root", str(only_train), "--quiet"]) == 1
    out = capsys.readouterr().out
    assert "no evaluation split (test, val, valid, validation)" in out
    assert "train: 4 images in 2 classes (2–2 per class)" in out
