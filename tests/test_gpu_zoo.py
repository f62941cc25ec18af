"""The GPU zoo driver's pure parts: the epoch plan and the reassembly of split packs."""

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def zoo():
    spec = importlib.util.spec_from_file_location("gpu_zoo", REPO / "scripts" / "gpu_zoo.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def rates(zoo, **per_data):
    return {g.name(v): per_data[g.data.replace("-", "_")] * (1 + i) for g in zoo.GROUPS
            for i, v in enumerate(g.variants)}  # fmt: skip


def test_plan_fits_the_slowest_variant_in_the_budget(zoo):
    r = rates(zoo, cifar10=2600, imagenette=3000, celeba_hq=1200)
    epochs = zoo.plan(r, budget=420)
    for group in zoo.GROUPS:
        e = epochs[group.data]
        assert e % 4 == 0 and 4 <= e <= group.cap
        slowest = min(r[group.name(v)] for v in group.variants)
        per_epoch = (group.n_train + group.n_test / 3 / group.eval_every) / slowest + group.save_s
        assert e * per_epoch <= 420 < (e + 4) * per_epoch or e == group.cap


def test_plan_caps_and_floors(zoo):
    fast = zoo.plan(rates(zoo, cifar10=1e9, imagenette=1e9, celeba_hq=1e9), budget=420)
    assert fast == {g.data: g.cap for g in zoo.GROUPS}
    slow = zoo.plan(rates(zoo, cifar10=1, imagenette=1, celeba_hq=1), budget=420)
    assert set(slow.values()) == {4}


def test_pack_parts_reassemble_in_order_across_folders(zoo, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    (b / "cifar10-jpeg.tar.gz.part0").write_bytes(b"first")
    (a / "cifar10-jpeg.tar.gz.part1").write_bytes(b"second")
    parts = zoo.pack_parts([a, b], "cifar10-jpeg")
    assert [p.read_bytes() for p in parts] == [b"first", b"second"]
    (a / "imagenette2-160.tar.gz").write_bytes(b"whole")
    assert [p.name for p in zoo.pack_parts([a, b], "imagenette2-160")] == ["imagenette2-160.tar.gz"]
    assert zoo.pack_parts([a, b], "celeba-hq-64") == []


def test_the_celeba_hq_split_file_goes_next_to_the_images(zoo, tmp_path):
    packs, folder = tmp_path / "packs", tmp_path / "data" / "celeba-hq-64"
    packs.mkdir(), folder.mkdir(parents=True)
    (packs / "celeba-hq-64-split.txt").write_text("file orig_file partition identity\n")
    zoo.copy_beside([packs], folder, "cifar10")
    assert not (folder / "celeba-hq-64-split.txt").exists()
    zoo.copy_beside([packs], folder, "celeba-hq")
    assert (folder / "celeba-hq-64-split.txt").read_text().startswith("file orig_file")


def test_only_restricts_the_plan_and_the_runs(zoo):
    r = {k: v for k, v in rates(zoo, cifar10=2600, imagenette=3000, celeba_hq=1200).items()
         if not k.startswith("celeba")}  # fmt: skip
    epochs = zoo.plan(r, budget=420, only=["cifar10", "imagenette"])  # no celeba rates needed
    assert set(epochs) == {"cifar10", "imagenette"}
    assert epochs == {k: v for k, v in zoo.plan(rates(zoo, cifar10=2600, imagenette=3000,
                      celeba_hq=1200), budget=420).items() if k != "celeba-hq"}  # fmt: skip
    assert {g.data for g, _ in zoo.jobs(["cifar10"])} == {"cifar10"}
    assert len(zoo.jobs()) == sum(len(g.variants) for g in zoo.GROUPS)
    with pytest.raises(SystemExit, match="unknown dataset"):
        zoo.jobs(["cifar100"])


def test_probe_takes_the_runs_overrides(zoo):
    group = zoo.groups(["cifar10"])[0]
    cfg = zoo._cfg(group, "cam", "", ["cuda_graphs=true", "batch_size=64"])
    assert (cfg.variant, cfg.cuda_graphs, cfg.batch_size) == ("cam", True, 64)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU refusal")
def test_probe_with_cuda_graphs_on_a_cpu_says_why(zoo):
    from abn.train.run import TrainError

    with pytest.raises(TrainError, match="cuda_graphs needs a CUDA device"):
        zoo.probe_one(zoo.groups(["cifar10"])[0], "abn", 0.0, 0.0, ["cuda_graphs=true"])
