"""Two ``torchrun`` processes on CPU (gloo) train on the single-process data, split in two."""

from __future__ import annotations

import csv
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from abn.checkpoint import read_card
from abn.data.memory import load_into_memory
from abn.models import create
from abn.train.loss import abn_loss

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _expected_losses(data_root: Path, world: int) -> list[float]:
    """Epoch-1 loss of the untouched model (lr 0) when each rank sees its half of each batch."""
    mem = load_into_memory("cifar10", "train", root=data_root, limit=64, progress=False)
    torch.manual_seed(0)
    model = create("resnet20", "abn", 10).train()
    per_step: list[float] = []
    loaders = [mem.loader(32 // world, train=True, seed=0, rank=r, world_size=world)
               for r in range(world)]  # fmt: skip
    with torch.no_grad():
        for shards in zip(*loaders, strict=True):
            per_step.append(sum(abn_loss(model(x), y).total.item() for x, y in shards) / world)
    return per_step


@pytest.mark.slow
def test_two_process_gloo_run_matches_the_single_process_loss(data_root: Path, tmp_path: Path):
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--master_port", str(_free_port()), "-m", "abn", "train",
        "--data", "cifar10", "--data-root", str(data_root), "--limit-train", "64",
        "--limit-test", "31", "--epochs", "1", "--batch-size", "32", "--lr", "0",
        "--workers", "0", "--out", str(tmp_path), "--name", "ddp", "--quiet",
        "--set", 'precision="fp32"', "--set", 'device="cpu"',
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = tmp_path / "ddp"
    assert sorted(p.name for p in run.iterdir()) == [
        "config.toml", "final.safetensors", "last.safetensors", "last.state.pt", "metrics.csv",
    ]  # fmt: skip
    with (run / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1  # one writer
    per_step = _expected_losses(data_root, 2)
    assert float(rows[0]["train_loss"]) == pytest.approx(sum(per_step) / len(per_step), rel=1e-5)
    # the same data in one process differs only by per-rank batch-norm statistics
    single = _expected_losses(data_root, 1)
    assert float(rows[0]["train_loss"]) == pytest.approx(sum(single) / len(single), rel=0.05)
    card = read_card(run / "final.safetensors")
    assert card.training["device_count"] == 2
    # test shards of 16 and 15 images, each counted once, reduced over both ranks
    assert card.metrics["cifar10/test (sample of 31)"]["n"] == 31


def _reference_updates(
    data_root: Path, world: int, lr: float
) -> dict[str, dict[str, torch.Tensor]]:
    """Parameter changes after one epoch of SGD, by hand: ``synced`` steps on the gradient averaged
    over the ``world`` shards of each batch, with rank 0's batch-norm buffers (DDP broadcasts
    them); ``rank0`` steps on rank 0's shard alone, as unsynchronised processes would."""
    mem = load_into_memory("cifar10", "train", root=data_root, limit=64, progress=False)
    out = {}
    for how in ("synced", "rank0"):
        torch.manual_seed(0)
        model = create("resnet20", "abn", 10).train()
        start = {k: v.detach().clone() for k, v in model.state_dict().items()}
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4)
        loaders = [mem.loader(32 // world, train=True, seed=0, rank=r, world_size=world)
                   for r in range(world)]  # fmt: skip
        for shards in zip(*loaders, strict=True):
            opt.zero_grad()
            for rank, (x, y) in enumerate(shards if how == "synced" else shards[:1]):
                kept = {k: b.clone() for k, b in model.named_buffers()} if rank else None
                (abn_loss(model(x), y).total / (world if how == "synced" else 1)).backward()
                if kept:  # rank 0's running statistics are the ones broadcast and saved
                    for k, b in model.named_buffers():
                        b.copy_(kept[k])
            opt.step()
        out[how] = {k: v.detach() - start[k] for k, v in model.named_parameters()}
    return out


@pytest.mark.slow
def test_two_process_gloo_run_steps_on_the_averaged_gradient(data_root: Path, tmp_path: Path):
    lr = 0.05
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--master_port", str(_free_port()), "-m", "abn", "train",
        "--data", "cifar10", "--data-root", str(data_root), "--limit-train", "64",
        "--limit-test", "8", "--epochs", "1", "--batch-size", "32", "--lr", str(lr),
        "--workers", "0", "--out", str(tmp_path), "--name", "ddp", "--quiet",
        "--set", 'precision="fp32"', "--set", 'device="cpu"', "--set", 'channels_last="false"',
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    trained = load_file(tmp_path / "ddp" / "final.safetensors")
    ref = _reference_updates(data_root, 2, lr)
    torch.manual_seed(0)
    start = create("resnet20", "abn", 10).state_dict()

    def distance(how: str) -> float:
        diffs = [(trained[k].float() - start[k]) - d for k, d in ref[how].items()]
        return float(torch.cat([d.flatten() for d in diffs]).norm())

    size = float(torch.cat([d.flatten() for d in ref["synced"].values()]).norm())
    assert distance("synced") < 0.01 * size  # the averaged-gradient update, to float noise
    assert distance("rank0") > 0.1 * size  # and measurably not a single rank's


@pytest.mark.slow
def test_an_unwritable_out_stops_every_rank_with_the_same_message(data_root: Path, tmp_path: Path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--master_port", str(_free_port()), "-m", "abn", "train",
        "--data", "cifar10", "--data-root", str(data_root), "--limit-train", "64",
        "--epochs", "1", "--workers", "0", "--out", str(blocker / "runs"), "--quiet",
        "--set", 'device="cpu"',
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    message = f"cannot write to output folder {blocker / 'runs'}"
    assert proc.stderr.count(message) == 2, proc.stderr[-3000:]  # rank 0's reason, on both ranks
    assert "Connection closed" not in proc.stderr and "[rank1]: Traceback" not in proc.stderr


class _Draws(torch.utils.data.Dataset):
    """Item i: (a random draw from the process's RNG, i), as an augmentation would draw."""

    def __len__(self) -> int:
        return 10

    def __getitem__(self, i: int):
        return torch.rand(()), i


def test_folder_batches_shard_evaluation_without_repeats_and_augment_per_rank() -> None:
    from abn.train.data import LoaderBatches
    from abn.train.distributed import DistInfo

    def batches(rank: int, train: bool) -> list[tuple[torch.Tensor, torch.Tensor]]:
        dist = DistInfo(rank=rank, world_size=3)
        loader = LoaderBatches(_Draws(), 2, train, torch.device("cpu"), 1, seed=0, dist=dist)
        return list(loader)

    seen = [int(i) for r in range(3) for _, y in batches(r, train=False) for i in y]
    assert sorted(seen) == list(range(10))  # each test image once, none padded in
    draws = [torch.cat([x for x, _ in batches(r, train=True)]) for r in range(3)]
    assert not torch.equal(draws[0], draws[1]) and not torch.equal(draws[1], draws[2])
