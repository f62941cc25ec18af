"""Fine-tuning from attention edits on a tiny synthetic task (no dataset packs).

Task: 16×16 noise images with a bright 6×6 square in one of four quadrants; the quadrant is the
class. A resnet20 ABN (8×8 maps) is trained on it for a few dozen steps (module fixture), then
fine-tuned from edits that erase a map region.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from abn.checkpoint import card_for, load, read_card, save
from abn.editing.finetune import (
    FinetuneConfig,
    FinetuneError,
    finetune,
    load_edits,
    map_agreement,
    model_maps,
    stored_digest,
)
from abn.models import create

SIZE, CLASSES = 16, 4
CORNERS = [(1, 1), (1, 9), (9, 1), (9, 9)]  # top-left pixel of each class's square


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def synthetic(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` uint8 images 3×16×16 and their labels."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(CLASSES, (n,), generator=g)
    x = torch.randint(0, 100, (n, 3, SIZE, SIZE), generator=g).to(torch.uint8)
    for i, c in enumerate(y.tolist()):
        r, col = CORNERS[c]
        x[i, :, r : r + 6, col : col + 6] = 230
    return x, y


def normalise(x: torch.Tensor) -> torch.Tensor:
    return (x.float() / 255 - 0.5) / 0.5


class Pairs(torch.utils.data.Dataset):
    """(preprocessed image, label) pairs: the replay / test data of the synthetic task."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = normalise(x), y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        return self.x[i], self.y[i]


@dataclass
class Record:
    id: str
    label: int | None
    attribute: int | None = None


class StandIn:
    """A minimal edit set with the interface of :class:`abn.editing.editset.EditSet`."""

    def __init__(self, images, originals, edited, labels) -> None:
        self.records = [Record(f"e{i}", lab) for i, lab in enumerate(labels)]
        self._images, self._maps = images, list(zip(originals, edited, strict=True))
        self.digest = "sha256:" + str(abs(hash(b"".join(np.asarray(m).tobytes() for m in edited))))

    def __len__(self) -> int:
        return len(self.records)

    def maps(self, record):
        return self._maps[int(record.id[1:])]

    def image(self, record, data_root=None):
        return Image.fromarray(self._images[int(record.id[1:])].permute(1, 2, 0).numpy())


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A resnet20 ABN trained for 60 steps on the synthetic task (about 95% accurate)."""
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = create("resnet20", variant="abn", num_classes=CLASSES)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    x, y = synthetic(1920, seed=1)
    xn = normalise(x)
    model.train()
    for step in range(60):
        i = slice(32 * step, 32 * (step + 1))
        out = model(xn[i])
        loss = torch.nn.functional.cross_entropy(out.logits, y[i])
        loss = loss + torch.nn.functional.cross_entropy(out.att_logits, y[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
    path = tmp_path_factory.mktemp("model") / "parent.safetensors"
    card = card_for(
        model,
        input_size=(SIZE, SIZE),
        class_names=["tl", "tr", "bl", "br"],
        dataset="",
    )
    save(model, path, card)
    return path


def erase_edits(path: Path, n: int, seed: int, classes=None) -> StandIn:
    """Edits that erase the left half of each image's own map."""
    model = load(path)
    x, y = synthetic(n, seed)
    if classes is not None:
        y = torch.full_like(y, classes)
        for i in range(n):  # redraw the square of the forced class
            x[i, :, 1:15, 1:15] = torch.randint(0, 100, (3, 14, 14), dtype=torch.uint8)
            r, c = CORNERS[classes]
            x[i, :, r : r + 6, c : c + 6] = 230
    with torch.no_grad():
        maps = model(normalise(x)).attention[:, 0].numpy()
    edited = maps.copy()
    edited[:, :, :4] = 0.0
    return StandIn(x, list(maps), list(edited), y.tolist())


def small(**kw) -> FinetuneConfig:
    values = {"epochs": 2, "batch_size": 8, "steps_per_epoch": 6, "lr": 0.02, "test_limit": -1}
    return FinetuneConfig(**{**values, **kw})


def test_erased_region_mass_falls(trained: Path, tmp_path: Path) -> None:
    edits = erase_edits(trained, 16, seed=5)
    result = finetune(trained, edits, tmp_path / "run", small(gamma=10.0, replay=False))
    before, after = result.maps_before, result.maps_after
    assert before.n_erased == 16 and before.erased_mass > 0.05
    assert after.erased_mass < 0.75 * before.erased_mass
    assert after.mse < before.mse
    # the saved model's maps agree with what the result says
    model = load(result.checkpoint)
    again = map_agreement(model_maps(model, load_edits(edits, model)), load_edits(edits, model))
    assert again.erased_mass == pytest.approx(after.erased_mass, rel=1e-4, abs=1e-6)


def test_gamma_zero_leaves_the_map_loss_out(trained: Path, tmp_path: Path) -> None:
    edits = erase_edits(trained, 16, seed=5)
    with_map = finetune(trained, edits, tmp_path / "a", small(gamma=10.0, replay=False))
    without = finetune(trained, edits, tmp_path / "b", small(gamma=0.0, replay=False))
    assert with_map.maps_after.erased_mass < without.maps_after.erased_mass


def test_replay_keeps_accuracy(trained: Path, tmp_path: Path) -> None:
    """Eight edits, all of one class, trained hard: without replay the model drifts to that
    class; with replay accuracy stays near where it was."""
    edits = erase_edits(trained, 8, seed=7, classes=0)
    replay, test = Pairs(*synthetic(512, seed=11)), Pairs(*synthetic(400, seed=12))
    cfg = {"lr": 0.1, "steps_per_epoch": 10, "epochs": 2, "test_limit": 0, "replay_ratio": 3.0}
    off = finetune(trained, edits, tmp_path / "off", small(**cfg), test_data=test)
    on = finetune(trained, edits, tmp_path / "on", small(**cfg), test_data=test, replay_data=replay)
    start = on.test_before["accuracy"]
    assert start > 80
    assert on.test_after["accuracy"] >= off.test_after["accuracy"]
    assert on.test_after["accuracy"] >= start - 10
    assert on.comparison["n"] == 400 and len(on.comparison["ci95"]) == 2


def test_bad_edit_sets_are_refused(trained: Path, tmp_path: Path) -> None:
    edits = erase_edits(trained, 4, seed=3)
    wrong = StandIn(
        edits._images, [np.zeros((4, 4), np.float32)] * 4, [np.zeros((4, 4), np.float32)] * 4,
        [0, 1, 2, 3],
    )  # fmt: skip
    with pytest.raises(FinetuneError, match=r"map is 4×4 but the model's map is 8×8"):
        finetune(trained, wrong, tmp_path / "a", small())
    empty = StandIn(edits._images[:0], [], [], [])
    with pytest.raises(FinetuneError, match="edit set is empty"):
        finetune(trained, empty, tmp_path / "b", small())
    out_of_range = StandIn(
        edits._images, *[list(m) for m in zip(*edits._maps, strict=True)], [0, 1, 2, 3]
    )
    out_of_range._maps[0] = (out_of_range._maps[0][0], out_of_range._maps[0][1] + 2)
    with pytest.raises(FinetuneError, match=r"not within \[0, 1\]"):
        finetune(trained, out_of_range, tmp_path / "c", small())
    bad_label = StandIn(
        edits._images, *[list(m) for m in zip(*edits._maps, strict=True)], [0, 1, 2, 9]
    )
    with pytest.raises(FinetuneError, match="label 9 is not a class"):
        finetune(trained, bad_label, tmp_path / "d", small())
    assert not (tmp_path / "a").exists()


def test_non_abn_model_is_refused(tmp_path: Path) -> None:
    plain = create("resnet20", variant="plain", num_classes=CLASSES)
    path = tmp_path / "plain.safetensors"
    save(plain, path, card_for(plain, input_size=(SIZE, SIZE)))
    edits = StandIn(torch.zeros(1, 3, SIZE, SIZE, dtype=torch.uint8), [np.zeros((8, 8))] * 1,
                    [np.zeros((8, 8))] * 1, [0])  # fmt: skip
    with pytest.raises(FinetuneError, match="needs an ABN"):
        finetune(path, edits, tmp_path / "run", small())


class Killed(Exception):
    pass


def test_killed_finetune_resumes_to_the_same_result(trained: Path, tmp_path: Path) -> None:
    edits = erase_edits(trained, 16, seed=5)
    replay = Pairs(*synthetic(256, seed=11))
    cfg = small(epochs=3, steps_per_epoch=4)
    whole = finetune(trained, edits, tmp_path / "whole", cfg, replay_data=replay)

    def kill_after(k: int):
        def report(step: int, total: int, message: str) -> None:
            if step == k:
                raise Killed

        return report

    run = tmp_path / "killed"
    with pytest.raises(Killed):  # dies in the middle of epoch 2
        finetune(trained, edits, run, cfg, replay_data=replay, progress=kill_after(6))
    assert (run / "last.state.pt").is_file() and not (run / "final.safetensors").exists()
    with pytest.raises(FinetuneError, match="already holds a fine-tune"):
        finetune(trained, edits, run, cfg, replay_data=replay)
    resumed = finetune(trained, edits, run, cfg, replay_data=replay, resume=True)
    a, b = load(whole.checkpoint).state_dict(), load(resumed.checkpoint).state_dict()
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    assert resumed.losses == whole.losses
    assert resumed.maps_after == whole.maps_after


def test_resume_refuses_other_settings(trained: Path, tmp_path: Path) -> None:
    from abn.train.state import ResumeError

    edits = erase_edits(trained, 8, seed=5)
    run = tmp_path / "run"
    finetune(trained, edits, run, small(epochs=1, replay=False))
    with pytest.raises(ResumeError, match="another model, edit set or settings"):
        finetune(trained, edits, run, small(epochs=2, gamma=3.0, replay=False), resume=True)
    with pytest.raises(ResumeError, match="no epoch finished"):
        finetune(trained, edits, tmp_path / "none", small(), resume=True)


def test_card_records_provenance_and_loads_back(trained: Path, tmp_path: Path) -> None:
    edits = erase_edits(trained, 8, seed=5)
    test = Pairs(*synthetic(64, seed=12))
    cfg = small(gamma=2.5, epochs=1, train="all", replay=False, test_limit=0)
    result = finetune(trained, edits, tmp_path / "run", cfg, test_data=test)
    card = read_card(result.checkpoint)
    record = card.training["finetune"]
    assert record["parent_digest"] == stored_digest(trained) != ""
    assert record["edit_set_digest"] == edits.digest
    assert record["edit_set_size"] == 8
    assert (record["gamma"], record["epochs"], record["train"]) == (2.5, 1, "all")
    assert record["maps_before"]["mse"] == pytest.approx(result.maps_before.mse)
    assert record["test_before"]["n"] == 64 and record["comparison"]["n"] == 64
    assert record["comparison"]["test"].startswith("McNemar")
    assert load(result.checkpoint).card.training == card.training  # digest holds
    assert json.loads((tmp_path / "run" / "finetune.json").read_text())["edit_set_size"] == 8


@pytest.mark.parametrize("train", ["branches", "feature_extractor"])
def test_frozen_parts_do_not_change(trained: Path, tmp_path: Path, train: str) -> None:
    edits = erase_edits(trained, 8, seed=5)
    result = finetune(trained, edits, tmp_path / train, small(epochs=1, train=train, replay=False))
    a, b = load(trained).state_dict(), load(result.checkpoint).state_dict()
    frozen = "feature_extractor." if train == "branches" else "attention_branch."
    moved = "attention_branch." if train == "branches" else "feature_extractor."
    assert all(torch.equal(a[k], b[k]) for k in a if k.startswith(frozen))  # BN stats too
    assert any(not torch.equal(a[k], b[k]) for k in a if k.startswith(moved))


# --- the CLI, with a real edit set ---------------------------------------------------------------


def real_edit_set(path: Path, folder: Path, n: int = 4):
    from abn.editing.editset import EditSet

    model = load(path)
    stand_in = erase_edits(path, n, seed=9)
    edit_set = EditSet.create(folder, model)
    for record in stand_in.records:
        original, edited = stand_in.maps(record)
        edit_set.add(original, edited, image=stand_in.image(record), label=record.label)
    return edit_set


def run_cli(*args: str) -> int:
    from abn.cli import main

    return main(["finetune", *args])


def test_cli_finetunes_and_resumes(trained: Path, tmp_path: Path, capsys) -> None:
    edits = tmp_path / "edits"
    real_edit_set(trained, edits)
    common = ["--model", str(trained), "--edits", str(edits), "--name", "run",
              "--out-dir", str(tmp_path / "out"), "--no-replay", "--test-limit", "-1",
              "--batch-size", "4", "--quiet"]  # fmt: skip
    assert run_cli(*common, "--epochs", "1") == 0
    final = tmp_path / "out" / "run" / "final.safetensors"
    assert final.is_file()
    assert read_card(final).training["finetune"]["edit_set_size"] == 4
    assert run_cli(*common, "--epochs", "1") == 1  # the folder holds a run
    assert "already holds a fine-tune" in capsys.readouterr().err
    assert run_cli(*common, "--epochs", "2", "--resume") == 0  # one more epoch
    assert read_card(final).training["finetune"]["epochs"] == 2


def test_cli_refuses_bad_edit_sets_clearly(trained: Path, tmp_path: Path, capsys) -> None:
    edits = tmp_path / "edits"
    real_edit_set(trained, edits, n=2)
    other = create("resnet20", variant="abn", num_classes=CLASSES)
    other_path = tmp_path / "other.safetensors"
    save(other, other_path, card_for(other, input_size=(SIZE, SIZE)))
    base = ["--name", "x", "--out-dir", str(tmp_path / "out"), "--quiet", "--no-replay"]
    assert run_cli("--model", str(other_path), "--edits", str(edits), *base) == 1
    assert "made for another model" in capsys.readouterr().err
    wide = create("resnet20", variant="abn", num_classes=CLASSES)
    wide_path = tmp_path / "wide.safetensors"
    save(wide, wide_path, card_for(wide, input_size=(32, 32)))  # 16×16 maps
    assert run_cli("--model", str(wide_path), "--edits", str(edits), *base) == 1
    assert "map size mismatch" in capsys.readouterr().err
    (edits / "edits.json").write_text("{not json")
    assert run_cli("--model", str(trained), "--edits", str(edits), *base) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: edit set") and "Traceback" not in err
    plain = create("resnet20", variant="plain", num_classes=CLASSES)
    plain_path = tmp_path / "plain.safetensors"
    save(plain, plain_path, card_for(plain, input_size=(SIZE, SIZE)))
    assert run_cli("--model", str(plain_path), "--edits", str(edits), *base) == 1
    assert "needs an ABN" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:  # argparse refuses an unknown choice
        run_cli("--model", str(trained), "--edits", str(edits), *base, "--train", "x")
    assert exit_info.value.code == 2
    assert run_cli("--model", str(trained), "--edits", str(edits), *base, "--gamma", "-1") == 2
    assert "gamma must be" in capsys.readouterr().err


def test_cli_help_documents_every_flag(capsys) -> None:
    from abn.cli import build_parser

    parser = build_parser("finetune")
    sub = next(a for a in parser._actions if a.dest == "command").choices["finetune"]
    flags = [a for a in sub._actions if a.option_strings and a.dest != "help"]
    assert len(flags) >= 18
    assert all(a.help for a in flags), [a.option_strings for a in flags if not a.help]
    with pytest.raises(SystemExit):
        run_cli("--help")
    assert "--resume" in capsys.readouterr().out


def test_multitask_edits_name_their_attribute(tmp_path: Path) -> None:
    model = create("resnet20", variant="abn_multitask", num_classes=3)
    path = tmp_path / "mt.safetensors"
    save(model, path, card_for(model, input_size=(SIZE, SIZE), task="multilabel"))
    x, _ = synthetic(4, seed=1)
    with torch.no_grad():
        maps = model(normalise(x)).attention[:, 1].numpy()
    edits = StandIn(x, list(maps), list(maps * 0), [None] * 4)
    with pytest.raises(FinetuneError, match="must name the attribute"):
        finetune(path, edits, tmp_path / "a", small(epochs=1, replay=False))
    for record in edits.records:
        record.attribute = 1
    result = finetune(path, edits, tmp_path / "b", small(epochs=1, steps_per_epoch=2))
    assert result.maps_before.n == 4 and result.losses[0]["loss_map"] > 0
