"""Multi-task ABN from the same CLI: CelebA in its original layout, then eval against a baseline."""

from pathlib import Path

from abn.checkpoint import read_card
from abn.cli import main


def _train(tmp_path: Path, data_root: Path, variant: str) -> Path:
    argv = ["train", "celeba-hq-resnet18", "--data", "celeba", "--data-root", str(data_root),
            "--set", "train_split=valid", "--set", "test_split=test", "--set", "input_size=[32, 32]",
            "--model", "resnet20", "--variant", variant, "--set", "model_kwargs={}",
            "--limit-train", "16", "--limit-test", "16", "--epochs", "1", "--batch-size", "8",
            "--workers", "0", "--out", str(tmp_path), "--name", variant, "--quiet"]  # fmt: skip
    assert main(argv) == 0
    return tmp_path / variant / "final.safetensors"


def test_train_and_compare_multitask_on_original_celeba(tmp_path, data_root, capsys):
    abn_ckpt = _train(tmp_path, data_root, "abn_multitask")
    plain_ckpt = _train(tmp_path, data_root, "plain_multitask")
    card = read_card(abn_ckpt)
    assert card.task == "multilabel" and card.num_classes == 40 and card.dataset == "celeba"
    assert card.class_names[31] == "Smiling"
    capsys.readouterr()
    code = main(["eval", "--model", str(abn_ckpt), "--baseline", str(plain_ckpt),
                 "--data-root", str(data_root), "--split", "test", "--limit", "12",
                 "--workers", "0"])  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "Smiling" in out and "average" in out
    assert "Odds" not in out and "McNemar's exact test per attribute, Holm-corrected over 40" in out
