"""In-memory datasets: caching, subsets, and vectorised on-device augmentation."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from PIL import Image

import abn.data.memory as memory
from abn.data.memory import DeviceBatches, InMemoryDataset, load_into_memory, random_crop
from abn.data.registry import build_dataset, dataset_info


@pytest.fixture
def count_decodes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts calls of the (slow) decoding step; each entry is the number of images decoded."""
    calls: list[int] = []
    real = memory._decode_all

    def counting(ds, chosen, *args, **kwargs):
        out = real(ds, chosen, *args, **kwargs)
        calls.append(len(out[0]))
        return out

    monkeypatch.setattr(memory, "_decode_all", counting)
    return calls


def test_cifar_subset_cached_and_faithful(data_root: Path, count_decodes: list[int]) -> None:
    kw = {"root": data_root, "limit": 300, "progress": False}
    first = load_into_memory("cifar10", "test", **kw)
    assert first.cache_path is not None
    assert first.cache_path.is_relative_to(data_root / ".cache")
    first.cache_path.unlink()
    count_decodes.clear()
    built = load_into_memory("cifar10", "test", **kw)
    again = load_into_memory("cifar10", "test", **kw)
    assert count_decodes == [300]  # the second load came from the cache
    assert torch.equal(built.images, again.images) and torch.equal(built.targets, again.targets)
    assert built.images.shape == (300, 3, 32, 32) and built.images.dtype == torch.uint8
    assert built.targets.dtype == torch.long and len(set(built.targets.tolist())) == 10
    assert built.class_names[0] == "airplane" and built.recipe == "cifar"
    # the subset is deterministic and each row is the real image
    ds = build_dataset("cifar10", "test", root=data_root)
    chosen = memory._select(len(ds), 300, None)
    for k in (0, 150, 299):
        image, target = ds[int(chosen[k])]
        assert torch.equal(built.images[k], image) and int(built.targets[k]) == target


def test_cache_file_is_plain_tensors(data_root: Path) -> None:
    mem = load_into_memory(
        "celeba", "test", root=data_root, size=32, indices=range(10), progress=False
    )
    payload = torch.load(mem.cache_path, weights_only=True)
    assert set(payload) == {"version", "fingerprint", "images", "targets"}
    assert mem.images.shape == (10, 3, 32, 32)
    assert mem.targets.shape == (10, 40) and mem.targets.dtype == torch.float32


def test_fit_modes(data_root: Path) -> None:
    hq = load_into_memory("celeba-hq", "val", root=data_root, limit=8, cache=False, progress=False)
    assert hq.images.shape == (8, 3, 64, 64) and hq.input_size == (64, 64)
    nette = load_into_memory(
        "imagenette", "val", root=data_root, limit=4, cache=False, progress=False
    )
    assert nette.images.shape == (4, 3, 146, 146)  # stored larger, cropped to 128 by the loader
    x, _ = next(iter(nette.loader(4, train=True)))
    assert x.shape == (4, 3, 128, 128)
    x, _ = next(iter(nette.loader(4, train=False)))
    assert x.shape == (4, 3, 128, 128)


def test_changed_tree_rebuilds_cache(tmp_path: Path, count_decodes: list[int]) -> None:
    tree = tmp_path / "tree"
    for cls in ("a", "b"):
        (tree / "train" / cls).mkdir(parents=True)
        Image.new("RGB", (8, 8), (200, 0, 0)).save(tree / "train" / cls / "0.png")
    ds = build_dataset("imagefolder", "train", root=tree)
    kw = {"root": tmp_path, "cache_name": "mine", "progress": False}
    assert len(load_into_memory(ds, **kw)) == 2
    assert len(load_into_memory(ds, **kw)) == 2
    Image.new("RGB", (8, 8)).save(tree / "train" / "b" / "1.png")
    ds = build_dataset("imagefolder", "train", root=tree)
    assert len(load_into_memory(ds, **kw)) == 3
    assert count_decodes == [2, 3]
    assert load_into_memory(ds, progress=False).cache_path is None  # no name: no cache


def test_a_trees_cache_lives_in_the_tree_wherever_the_run_starts(tmp_path, monkeypatch) -> None:
    tree = tmp_path / "tree"
    for cls in ("a", "b"):
        (tree / "train" / cls).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(tree / "train" / cls / "0.png")
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.delenv("ABN_DATA_ROOT", raising=False)
    mem = load_into_memory("imagefolder", "train", root=str(tree), progress=False)
    assert mem.cache_path.parent == tree / ".cache" / "memory"
    assert not any(elsewhere.iterdir())
    assert build_dataset("imagefolder", "train", root=tree).classes == ["a", "b"]  # not a class
    assert dataset_info("imagefolder", str(tree)).splits == ("train",)  # nor a split


def test_an_image_rewritten_under_its_name_rebuilds_the_cache(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    for cls in ("a", "b"):
        (tree / "train" / cls).mkdir(parents=True)
        Image.new("RGB", (8, 8), (200, 0, 0)).save(tree / "train" / cls / "0.png")
    kw = {"root": tmp_path, "cache_name": "mine", "progress": False}
    first = load_into_memory(build_dataset("imagefolder", "train", root=tree), **kw)
    assert first.images[:, 0].float().mean() > 150  # red
    image = tree / "train" / "a" / "0.png"
    Image.new("RGB", (8, 8), (0, 0, 0)).save(image)  # same name, new content
    os.utime(image, ns=(image.stat().st_atime_ns, image.stat().st_mtime_ns + 10**9))
    again = load_into_memory(build_dataset("imagefolder", "train", root=tree), **kw)
    assert again.images[0].float().max() == 0  # black now, not the cached red


def test_an_unwritable_cache_folder_costs_only_the_cache(tmp_path: Path) -> None:
    """A read-only data root (here: ``.cache`` is a file) warns and trains from memory."""
    tree = tmp_path / "tree"
    for cls in ("a", "b"):
        (tree / "train" / cls).mkdir(parents=True)
        Image.new("RGB", (8, 8), (200, 0, 0)).save(tree / "train" / cls / "0.png")
    (tmp_path / ".cache").write_text("not a folder")
    kw = {"root": tmp_path, "cache_name": "mine", "progress": False}
    with pytest.warns(UserWarning, match=r"cannot cache the decoded images at .*going on"):
        mem = load_into_memory(build_dataset("imagefolder", "train", root=tree), **kw)
    assert len(mem) == 2 and mem.cache_path is None
    assert (tmp_path / ".cache").read_text() == "not a folder"


def test_a_full_disk_costs_only_the_cache(tmp_path: Path, monkeypatch) -> None:
    """torch.save reports a full disk as RuntimeError: warned, no temp file left behind."""
    import abn.data.memory as memory

    tree = tmp_path / "tree"
    for cls in ("a", "b"):
        (tree / "train" / cls).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(tree / "train" / cls / "0.png")

    def full(obj, path) -> None:
        Path(path).write_bytes(b"half")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos")

    monkeypatch.setattr(memory.torch, "save", full)
    kw = {"root": tmp_path, "cache_name": "mine", "progress": False}
    with pytest.warns(UserWarning, match=r"cannot cache .*enforce fail"):
        mem = load_into_memory(build_dataset("imagefolder", "train", root=tree), **kw)
    assert len(mem) == 2 and not list((tmp_path / ".cache" / "memory").iterdir())


# --- DeviceBatches ----------------------------------------------------------------------------


def toy(n: int = 40, size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g), torch.arange(
        n
    )


def collect(batches, epoch: int | None = None) -> list[tuple[torch.Tensor, torch.Tensor]]:
    if epoch is not None:
        batches.set_epoch(epoch)
    return [(x.clone(), y.clone()) for x, y in batches]


def same(a, b) -> bool:
    return all(
        torch.equal(x1, x2) and torch.equal(y1, y2) for (x1, y1), (x2, y2) in zip(a, b, strict=True)
    )


def test_reproducible_and_resumable() -> None:
    images, targets = toy()
    make = lambda seed: DeviceBatches(images, targets, 16, seed=seed)  # noqa: E731
    a, b = make(7), make(7)
    e0, e1 = collect(a), collect(a)  # iterating advances the epoch
    assert a.state_dict() == {"seed": 7, "epoch": 2}
    assert same(e0, collect(b, 0)) and same(e1, collect(b, 1))
    assert not same(e0, e1) and not same(e0, collect(make(8), 0))
    resumed = make(0)
    resumed.load_state_dict({"seed": 7, "epoch": 1})
    assert same(e1, collect(resumed))
    assert same(e1[1:], [(x.clone(), y.clone()) for x, y in b.batches(1, start=1)])


def test_epoch_is_a_permutation_and_shapes() -> None:
    images, targets = toy(40)
    batches = DeviceBatches(images, targets, 16, mean=(0.5,) * 3, std=(0.25,) * 3)
    assert len(batches) == 2  # drop_last when training
    seen = torch.cat([y for _, y in batches])
    assert len(seen) == 32 and len(set(seen.tolist())) == 32
    x, _ = next(iter(batches))
    assert x.shape == (16, 3, 8, 8) and x.dtype == torch.float32
    evaluation = DeviceBatches(images, targets, 16, train=False)
    assert len(evaluation) == 3
    assert torch.equal(torch.cat([y for _, y in evaluation]), targets)


def test_eval_is_plain_normalisation() -> None:
    images, targets = toy(10)
    mean, std = (0.1, 0.2, 0.3), (0.5, 0.6, 0.7)
    x, _ = next(iter(DeviceBatches(images, targets, 10, train=False, mean=mean, std=std)))
    m, s = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
    assert torch.allclose(x, (images.float() / 255 - m) / s, atol=1e-6)


def test_each_image_is_a_padded_crop_or_its_mirror() -> None:
    images, targets = toy(24)
    batches = DeviceBatches(images, targets, 24, mean=(0,) * 3, std=(1,) * 3, seed=3)
    x, y = next(iter(batches))
    x = (x * 255).round().to(torch.uint8)
    padded = torch.nn.functional.pad(images, (4, 4, 4, 4))
    flipped = 0
    for out, index in zip(x, y.tolist(), strict=True):
        windows = {
            (i, j, f)
            for i in range(9)
            for j in range(9)
            for f in (False, True)
            if torch.equal(
                out,
                padded[index, :, i : i + 8, j : j + 8].flip(-1)
                if f
                else padded[index, :, i : i + 8, j : j + 8],
            )
        }
        assert windows, f"sample {index} is not a crop of its image"
        flipped += all(f for *_, f in windows)
    assert 0 < flipped < 24  # some mirrored, some not


def test_random_crop_matches_slicing() -> None:
    x = torch.randint(0, 256, (5, 3, 10, 12), dtype=torch.uint8)
    offsets = torch.tensor([[0, 0], [2, 4], [8, 8], [4, 0], [1, 7]])
    out = random_crop(x, (10, 12), offsets, padding=4)
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    for k, (i, j) in enumerate(offsets.tolist()):
        assert torch.equal(out[k], padded[k, :, i : i + 10, j : j + 12])
    assert (out[0, :, :4, :] == 0).all()  # zero padding shows at offset (0, 0)


def test_ranks_split_the_epoch() -> None:
    images, targets = toy(40)
    parts = [
        torch.cat([y for _, y in DeviceBatches(images, targets, 5, rank=r, world_size=2, seed=1)])
        for r in (0, 1)
    ]
    assert len(parts[0]) == len(parts[1]) == 20
    assert not set(parts[0].tolist()) & set(parts[1].tolist())


def test_in_memory_dataset_loader_defaults() -> None:
    images, targets = toy(8)
    mem = InMemoryDataset(images, targets, recipe="celeba", mean=(0.5,) * 3, std=(0.5,) * 3)
    assert len(mem) == 8 and torch.equal(mem[3][0], images[3])
    batches = mem.loader(4, train=True, seed=0)
    assert batches.padding == 0 and batches.flip
    x, _ = next(iter(batches))
    assert x.min() >= -1 and x.max() <= 1


def test_bad_inputs() -> None:
    images, targets = toy(4)
    with pytest.raises(ValueError, match="uint8"):
        DeviceBatches(images.float(), targets, 2)
    with pytest.raises(ValueError, match="targets"):
        DeviceBatches(images, targets[:3], 2)
    with pytest.raises(ValueError, match="crop_size"):
        DeviceBatches(images, targets, 2, recipe="celeba", crop_size=16)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu() -> None:
    images, targets = toy(32)
    cpu = collect(DeviceBatches(images, targets, 8, seed=5))
    gpu = collect(DeviceBatches(images, targets, 8, seed=5, device="cuda"))
    assert all(x.is_cuda for x, _ in gpu)
    assert same(cpu, [(x.cpu(), y.cpu()) for x, y in gpu])


def test_worker_processes_decode_the_same(data_root: Path) -> None:
    kw = {"root": data_root, "limit": 64, "cache": False, "progress": False}
    serial = load_into_memory("celeba-hq", "test", **kw)
    parallel = load_into_memory("celeba-hq", "test", num_workers=1, **kw)
    assert torch.equal(serial.images, parallel.images)
    assert torch.equal(serial.targets, parallel.targets)


def test_resized_crop_boxes_follow_torchvision_sampling() -> None:
    g = torch.Generator().manual_seed(0)
    boxes = memory.resized_crop_boxes(20_000, (183, 183), (0.08, 1.0), g)
    top, left, h, w = boxes.unbind(1)
    assert bool((top >= 0).all() and (left >= 0).all())
    assert bool((top + h <= 183).all() and (left + w <= 183).all())
    area = (h * w).float() / 183**2
    aspect = w.float() / h.float()
    assert area.min() > 0.07 and area.max() <= 1.0 and abs(area.mean().item() - 0.48) < 0.02
    assert aspect.min() > 0.7 and aspect.max() < 1.4  # 3/4–4/3 after rounding
    # a strip no box of the ratio range fits: the whole image, cut to the nearer ratio
    wide = memory.resized_crop_boxes(4, (10, 100), (0.9, 1.0), g)
    assert wide.tolist() == [[0, 43, 10, 13]] * 4


def test_resized_crop_is_a_bilinear_resize_of_the_box() -> None:
    x = torch.randint(0, 256, (3, 3, 40, 50), dtype=torch.uint8)
    whole = torch.tensor([[0, 0, 40, 50]] * 3)
    out = memory.resized_crop(x, whole, (64, 32))
    expected = torch.nn.functional.interpolate(x.float(), (64, 32), mode="bilinear")
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-3)
    boxes = torch.tensor([[5, 7, 20, 30], [0, 0, 10, 10], [12, 3, 28, 40]])
    out = memory.resized_crop(x, boxes, (16, 16))
    for i, (t, left, h, w) in enumerate(boxes.tolist()):
        crop = x[i : i + 1, :, t : t + h, left : left + w].float()
        ref = torch.nn.functional.interpolate(crop, (16, 16), mode="bilinear")
        # equal away from the box's far edges, where roi_align reads the pixels beyond it
        torch.testing.assert_close(out[i, :, :-1, :-1], ref[0, :, :-1, :-1], rtol=0, atol=1e-3)


def test_training_with_resized_crop_is_seeded_and_keeps_eval() -> None:
    images = torch.randint(0, 256, (24, 3, 73, 73), dtype=torch.uint8)
    targets = torch.arange(24)
    kw = {"recipe": "imagenet", "crop_size": 64, "resized_crop": (0.2, 1.0), "seed": 3}
    a = DeviceBatches(images, targets, 8, **kw)
    b = DeviceBatches(images, targets, 8, **kw)
    first = [x for x, _ in a.batches(1)]
    assert all(x.shape == (8, 3, 64, 64) for x in first)
    assert all(torch.equal(x, y) for x, (y, _) in zip(first, b.batches(1), strict=True))
    assert not torch.equal(first[0], next(iter(a.batches(2)))[0])  # another epoch, other crops
    plain = DeviceBatches(images, targets, 8, recipe="imagenet", crop_size=64, train=False)
    evals = DeviceBatches(images, targets, 8, **kw, train=False)
    assert all(torch.equal(x, y) for (x, _), (y, _) in zip(plain, evals, strict=True))


def test_resized_crop_outside_the_imagenet_recipe_is_refused() -> None:
    images = torch.zeros(4, 3, 32, 32, dtype=torch.uint8)
    with pytest.raises(ValueError, match="for the 'imagenet' recipe, not 'cifar'"):
        DeviceBatches(images, torch.zeros(4), 2, recipe="cifar", resized_crop=(0.1, 1.0))
    with pytest.raises(ValueError, match="0 < lo <= hi <= 1"):
        DeviceBatches(images, torch.zeros(4), 2, recipe="imagenet", resized_crop=(0.5, 0.1))
