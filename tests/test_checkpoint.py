"""Checkpoints: exact round trips for every model, clear refusals, never executing code."""

import os
import pickle
import stat

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

import abn
from abn.card import ModelCard
from abn.checkpoint import CheckpointError, card_for
from abn.models import create, list_models

from .models.conftest import HEAVY, input_for


@pytest.fixture
def trained_like():
    """A small ABN with non-trivial BN statistics, as after training."""
    torch.manual_seed(0)
    model = create("resnet20", "abn", num_classes=3)
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.randn(8, 3, 32, 32))
    return model.eval()


@pytest.mark.parametrize("variant", ["abn", "plain", "cam"])
@pytest.mark.parametrize("name", [n for n in list_models() if n not in HEAVY])
def test_round_trip_reproduces_outputs_exactly(tmp_path, name, variant):
    model = create(name, variant, num_classes=4).eval()
    path = abn.save(model, tmp_path / "m.safetensors")
    loaded = abn.load(path)
    x = input_for(name)
    with torch.no_grad():
        a, b = model(x), loaded(x)
    assert torch.equal(a.logits, b.logits)
    if variant == "abn":
        assert torch.equal(a.attention, b.attention)
    assert loaded.card.arch == name and loaded.card.variant == variant


@pytest.mark.parametrize("variant", ["abn_multitask", "plain_multitask"])
def test_round_trip_multitask(tmp_path, variant):
    model = create("resnet18", variant, num_classes=5, stem="small").eval()
    card = card_for(model, class_names=[f"attr{i}" for i in range(5)], task="multilabel")
    loaded = abn.load(abn.save(model, tmp_path / "m.safetensors", card))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x).logits, loaded(x).logits)
    assert loaded.card.class_names[4] == "attr4"
    assert loaded.spec.kwargs == {"stem": "small"}


def test_card_fields_survive(tmp_path, trained_like):
    card = card_for(
        trained_like,
        class_names=["a", "b", "c"],
        input_size=(32, 32),
        mean=(0.1, 0.2, 0.3),
        std=(0.4, 0.5, 0.6),
        dataset="toy",
        metrics={"top1": 0.5},
    )
    path = abn.save(trained_like, tmp_path / "m.safetensors", card)
    back = abn.read_card(path)
    assert back == card
    assert back.code_version.startswith(abn.__version__)


def test_half_precision_storage(tmp_path, trained_like):
    full = abn.save(trained_like, tmp_path / "full.safetensors")
    half = abn.save(trained_like, tmp_path / "half.safetensors", half=True)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    loaded = abn.load(half)
    assert next(loaded.parameters()).dtype == torch.float32
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x).logits, trained_like(x).logits, atol=5e-2, rtol=5e-2)


def test_half_precision_keeps_batchnorm_statistics_exact(tmp_path, trained_like):
    bn = next(m for m in trained_like.modules() if isinstance(m, nn.BatchNorm2d))
    bn.running_var.fill_(2.6e5)  # a real stem BN (Imagenette ResNet-18): beyond fp16's 65504
    loaded = abn.load(abn.save(trained_like, tmp_path / "half.safetensors", half=True))
    back = dict(loaded.named_buffers())
    for name, buf in trained_like.named_buffers():
        if buf.is_floating_point():
            assert torch.equal(back[name], buf), name  # fp32, not inf or rounded


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        abn.load(tmp_path / "nope.safetensors")


def test_truncated_file(tmp_path, trained_like):
    path = abn.save(trained_like, tmp_path / "m.safetensors")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated|corrupt|readable"):
        abn.load(path)


def test_tampered_weights_are_detected(tmp_path, trained_like):
    path = abn.save(trained_like, tmp_path / "m.safetensors")
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF  # flip bits inside the last tensor's bytes
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checksum"):
        abn.load(path)


def test_mismatched_card_and_weights(tmp_path, trained_like):
    path = abn.save(trained_like, tmp_path / "m.safetensors")
    wrong = card_for(create("resnet32", "abn", num_classes=3))
    tensors = {k: v.contiguous() for k, v in trained_like.state_dict().items()}
    from abn.checkpoint import _digest

    save_file(
        tensors,
        str(path),
        metadata={
            "format": "abn-checkpoint/1",
            "abn.card": wrong.to_json(),
            "abn.sha256": _digest(tensors),
        },
    )
    with pytest.raises(CheckpointError, match="missing tensors"):
        abn.load(path)


def test_unknown_architecture_in_card(tmp_path, trained_like):
    path = abn.save(trained_like, tmp_path / "m.safetensors", card_for(trained_like))
    card = abn.read_card(path)
    card.arch = "resnet9000"
    abn.save(trained_like, path, card)
    with pytest.raises(CheckpointError, match="cannot be built.*resnet9000"):
        abn.load(path)


def test_safetensors_without_card(tmp_path):
    path = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(CheckpointError, match="not an ABN checkpoint"):
        abn.load(path)


class _Exploit:
    def __reduce__(self):
        import os

        return (os.system, ("touch /tmp/abn-pwned-by-checkpoint",))


def test_pickle_with_code_is_refused_and_never_run(tmp_path):
    import os

    marker = "/tmp/abn-pwned-by-checkpoint"
    if os.path.exists(marker):
        os.remove(marker)
    path = tmp_path / "evil.safetensors"
    path.write_bytes(pickle.dumps({"state_dict": _Exploit()}))
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        abn.load(path)
    torch_file = tmp_path / "evil.pt"
    torch.save({"x": _Exploit()}, torch_file)
    with pytest.raises(CheckpointError):
        abn.load(torch_file)
    assert not os.path.exists(marker)


def test_load_from_bytes(tmp_path, trained_like):
    path = abn.save(trained_like, tmp_path / "m.safetensors")
    model = abn.load(path.read_bytes())
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x).logits, trained_like(x).logits)


def test_card_validation():
    with pytest.raises(ValueError, match="required"):
        ModelCard.from_dict({"arch": "resnet20"})
    with pytest.raises(ValueError, match="unknown fields"):
        ModelCard.from_dict({"arch": "resnet20", "variant": "abn", "num_classes": 2, "x": 1})
    with pytest.raises(ValueError, match="class names"):
        ModelCard.from_dict(
            {"arch": "resnet20", "variant": "abn", "num_classes": 2, "class_names": ["a"]}
        )
    with pytest.raises(ValueError, match="JSON"):
        ModelCard.from_json("{not json")


@pytest.mark.parametrize("name", sorted(HEAVY))
def test_round_trip_heavy_models(tmp_path, name):
    model = create(name, "abn", num_classes=4).eval()
    loaded = abn.load(abn.save(model, tmp_path / "m.safetensors"))
    x = input_for(name, batch=1)
    with torch.no_grad():
        assert torch.equal(model(x).logits, loaded(x).logits)


def test_saved_file_has_the_usual_permissions(tmp_path, trained_like):
    mask = os.umask(0o022)
    os.umask(mask)
    path = abn.save(trained_like, tmp_path / "m.safetensors")
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask  # not mkstemp's 0600
    assert not list(tmp_path.glob(".*.tmp"))
