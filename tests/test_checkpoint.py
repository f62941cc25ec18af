"""Checkpoints: exact round trips for every model, clear refusals, never executing code."""

import json
import os
import pickle
import stat
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

import abn
from abn.card import ModelCard
from abn.checkpoint import CheckpointError, card_for, migrate
from abn.models import VARIANTS, create, list_models, model_options

from .models.conftest import HEAVY, input_for

ASSETS = Path(__file__).resolve().parents[1] / "assets"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
V1_FILES = sorted((FIXTURES / "checkpoints_v1").glob("*.safetensors"))
FIELDS = ("logits", "att_logits", "attention", "class_maps")


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
    expected = {"stem": "small"}
    if variant == "abn_multitask":
        expected |= {"mechanism": "multiply", "chunk_size": 0}
    assert loaded.spec.kwargs == expected == loaded.card.model_kwargs


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


def write_raw(path, model, card: dict, *, digest: bool = True, fmt: str = "abn-checkpoint/2"):
    """A checkpoint holding ``model``'s weights and the card ``card`` as given, its digest
    computed over both; ``digest=False`` keeps the digest of the file already at ``path`` (an
    edit that does not re-sign)."""
    from abn.checkpoint import _digest

    tensors = {k: v.contiguous() for k, v in model.state_dict().items()}
    text = json.dumps(card)
    if digest:
        value = _digest(tensors, None if fmt.endswith("/1") else text)
    else:
        with safe_open(str(path), "pt") as f:
            value = f.metadata()["abn.sha256"]
    save_file(tensors, str(path), metadata={"format": fmt, "abn.card": text, "abn.sha256": value})
    return path


def card_dict(model, **changes) -> dict:
    return {**json.loads(card_for(model).to_json()), **changes}


def test_mismatched_card_and_weights(tmp_path, trained_like):
    wrong = card_for(create("resnet32", "abn", num_classes=3))
    path = write_raw(tmp_path / "m.safetensors", trained_like, json.loads(wrong.to_json()))
    with pytest.raises(CheckpointError, match="missing tensors"):
        abn.load(path)


def test_unknown_architecture_in_card(tmp_path, trained_like):
    card = card_dict(trained_like, arch="resnet9000")
    path = write_raw(tmp_path / "m.safetensors", trained_like, card)
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


@pytest.mark.slow
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


# --- format 2: the card pins the model, and the digest covers the card ------------------------


def test_saved_file_is_format_2_with_every_constructor_argument(tmp_path, trained_like):
    path = abn.save(trained_like, tmp_path / "m.safetensors")
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    assert meta["format"] == "abn-checkpoint/2"
    card = json.loads(meta["abn.card"])
    assert card["card_version"] == 2
    assert card["model_kwargs"] == {"mechanism": "residual", "map_kernel": 3}


def test_save_completes_a_partial_card_and_refuses_one_of_another_model(tmp_path, trained_like):
    path = tmp_path / "m.safetensors"
    card = ModelCard(arch="resnet20", variant="abn", num_classes=3, class_names=["a", "b", "c"])
    back = abn.read_card(abn.save(trained_like, path, card))
    assert back.model_kwargs == {"mechanism": "residual", "map_kernel": 3}
    assert back.class_names == ["a", "b", "c"] and back.card_version == 2
    with pytest.raises(CheckpointError, match="describes resnet32/abn"):
        abn.save(trained_like, path, ModelCard(arch="resnet32", variant="abn", num_classes=3))
    with pytest.raises(CheckpointError, match="map_kernel: card 5, model 3"):
        abn.save(
            trained_like,
            path,
            ModelCard(
                arch="resnet20", variant="abn", num_classes=3, model_kwargs={"map_kernel": 5}
            ),
        )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("class_names", ["c", "b", "a"]),  # reversed: every prediction would be mislabelled
        ("notes", "edited"),
        ("mean", [0.0, 0.0, 0.0]),
        ("dataset", "cifar100"),
    ],
)
def test_an_edited_card_is_refused(tmp_path, trained_like, field, value):
    honest = card_dict(trained_like, class_names=["a", "b", "c"])
    assert honest[field] != value
    path = write_raw(tmp_path / "m.safetensors", trained_like, honest)
    abn.load(path)  # the honest file loads
    edited = write_raw(tmp_path / "e.safetensors", trained_like, {**honest, field: value})
    with safe_open(str(path), "pt") as f, safe_open(str(edited), "pt") as g:
        assert f.metadata()["abn.sha256"] != g.metadata()["abn.sha256"]
    tampered = {**honest, field: value}
    write_raw(path, trained_like, tampered, digest=False)  # the card edited, the digest kept
    with pytest.raises(CheckpointError, match="weights or model card do not match the checksum"):
        abn.load(path)


def test_reversed_class_names_written_into_a_shipped_file_are_refused(tmp_path):
    """Mutation: the card of a shipped model edited in place, its digest left as it was."""
    from abn.checkpoint import _read_metadata

    path = tmp_path / "m.safetensors"
    path.write_bytes((ASSETS / "cifar10-resnet20-abn.safetensors").read_bytes())
    metadata = _read_metadata(path)
    card = json.loads(metadata["abn.card"])
    card["class_names"] = card["class_names"][::-1]
    tensors = load_file(str(path))
    save_file(tensors, str(path), metadata={**metadata, "abn.card": json.dumps(card)})
    assert abn.read_card(path).class_names[0] == "truck"  # the edit is in the file
    with pytest.raises(CheckpointError, match="model card do not match the checksum"):
        abn.load(path)


def test_a_card_that_misses_or_adds_constructor_arguments_is_refused(tmp_path, trained_like):
    full = {"mechanism": "residual", "map_kernel": 3}
    short = card_dict(trained_like, model_kwargs={"mechanism": "residual"})
    path = write_raw(tmp_path / "m.safetensors", trained_like, short)
    with pytest.raises(CheckpointError, match="rebuilt exactly: its model_kwargs lack map_kernel"):
        abn.load(path)
    write_raw(path, trained_like, card_dict(trained_like, model_kwargs={**full, "stem": "small"}))
    with pytest.raises(CheckpointError, match="cannot be rebuilt exactly: .*does not take: stem"):
        abn.load(path)


def test_the_rebuilt_spec_must_equal_the_card(tmp_path, trained_like, monkeypatch):
    import abn.checkpoint as checkpoint

    path = abn.save(trained_like, tmp_path / "m.safetensors")
    real = checkpoint.create

    def drift(*args, **kwargs):  # a build whose spec records other options than the card
        model = real(*args, **kwargs)
        spec = model.spec
        model.spec = replace(spec, kwargs={**spec.kwargs, "map_kernel": 1})
        return model

    monkeypatch.setattr(checkpoint, "create", drift)
    with pytest.raises(CheckpointError, match="rebuild a model whose options are"):
        abn.load(path)


def test_newer_cards_and_formats_are_refused_by_name(tmp_path, trained_like):
    path = tmp_path / "m.safetensors"
    write_raw(path, trained_like, card_dict(trained_like, card_version=3))
    with pytest.raises(CheckpointError, match="card version 3"):
        abn.load(path)
    write_raw(path, trained_like, card_dict(trained_like), fmt="abn-checkpoint/9")
    with pytest.raises(CheckpointError, match="format 'abn-checkpoint/9'.*upgrade abn"):
        abn.read_card(path)
    write_raw(path, trained_like, card_dict(trained_like, card_version=1))
    with pytest.raises(CheckpointError, match="holds a version-2 card, not version 1"):
        abn.load(path)


# --- format 1: old files load as they did; migration --------------------------------------------


def v1_inputs(card: ModelCard) -> torch.Tensor:
    """The inputs ``checkpoints_v1_outputs.safetensors`` was computed on."""
    return torch.randn(2, 3, *card.input_size, generator=torch.Generator().manual_seed(0))


def outputs(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        out = model(x)
    return {f: getattr(out, f) for f in FIELDS if getattr(out, f) is not None}


def assert_as_before(model: nn.Module, stem: str) -> None:
    """``model`` computes what the format-1 code computed for the file ``stem``."""
    reference = load_file(str(FIXTURES / "checkpoints_v1_outputs.safetensors"))
    got = outputs(model, v1_inputs(model.card))
    assert set(got) == {k.split("/")[1] for k in reference if k.startswith(f"{stem}/")}
    for field, value in got.items():
        torch.testing.assert_close(value, reference[f"{stem}/{field}"], rtol=1e-5, atol=1e-5)


RETRAINED = {"cifar10-resnet20-cam.safetensors"}  # shipped models retrained since format 1
MIGRATED = [p for p in V1_FILES if p.name not in RETRAINED]


def shipped_twin(v1: Path) -> Path:
    """The shipped asset migrated from ``v1`` (same training record)."""
    asset = ASSETS / v1.name
    assert asset.is_file(), f"{v1.name} is no longer shipped"
    assert abn.read_card(asset).training == abn.read_card(v1).training, (
        f"{v1.name} was retrained since format 1: add it to RETRAINED"
    )
    return asset


def test_every_small_shipped_model_has_a_v1_fixture():
    assert {p.name for p in V1_FILES} == {
        "cifar10-resnet20-abn.safetensors", "cifar10-resnet20-plain.safetensors",
        "cifar10-resnet20-cam.safetensors", "celeba-hq-resnet20-abn_multitask.safetensors",
        "celeba-hq-resnet20-plain_multitask.safetensors",
    }  # fmt: skip


@pytest.mark.parametrize("v1", V1_FILES, ids=lambda p: p.stem)
def test_v1_file_predicts_as_before(v1):
    with safe_open(str(v1), "pt") as f:
        assert f.metadata()["format"] == "abn-checkpoint/1"
    model = abn.load(v1)
    assert model.card.card_version == 2  # upgraded on reading
    assert set(model.card.model_kwargs) == model_options(model.card.arch, model.card.variant)
    assert_as_before(model, v1.stem)


@pytest.mark.parametrize("v1", V1_FILES, ids=lambda p: p.stem)
def test_migration_keeps_tensors_and_outputs_bit_identical(tmp_path, v1):
    out = tmp_path / v1.name
    assert migrate(v1, out) is True
    with safe_open(str(out), "pt") as f:
        assert f.metadata()["format"] == "abn-checkpoint/2"
    assert_same_tensors(v1, out)
    old, new = abn.load(v1), abn.load(out)
    assert new.card == old.card
    x = v1_inputs(old.card)
    for field, value in outputs(old, x).items():
        assert torch.equal(outputs(new, x)[field], value), field
    assert migrate(out) is False  # already format 2


@pytest.mark.parametrize("v1", MIGRATED, ids=lambda p: p.stem)
def test_shipped_asset_is_its_v1_file_migrated(v1):
    asset = shipped_twin(v1)
    with safe_open(str(asset), "pt") as f:
        assert f.metadata()["format"] == "abn-checkpoint/2"
    assert_same_tensors(v1, asset)
    old, new = abn.load(v1), abn.load(asset)
    x = v1_inputs(old.card)
    for field, value in outputs(old, x).items():
        assert torch.equal(outputs(new, x)[field], value), field
    assert new.card.model_kwargs == old.card.model_kwargs
    assert new.card.dataset == old.card.dataset and new.card.metrics == old.card.metrics


def assert_same_tensors(a: Path, b: Path) -> None:
    ta, tb = load_file(str(a)), load_file(str(b))
    assert ta.keys() == tb.keys()
    for k in ta:
        assert ta[k].dtype == tb[k].dtype and torch.equal(ta[k], tb[k]), k


def test_v1_cam_keeps_its_native_structure():
    model = abn.load(FIXTURES / "checkpoints_v1" / "cifar10-resnet20-cam.safetensors")
    assert model.card.model_kwargs == {"structure": "native"} and model.structure == "native"
    with torch.no_grad():
        maps = model(torch.randn(1, 3, 32, 32)).class_maps
    assert maps.shape == (1, 10, 8, 8)  # not the paper structure's 16×16
    assert create("resnet20", "cam", num_classes=10).structure == "paper"  # today's default


def test_retrained_cifar10_cam_has_the_paper_structure():
    name = "cifar10-resnet20-cam.safetensors"
    old, card = abn.read_card(FIXTURES / "checkpoints_v1" / name), abn.read_card(ASSETS / name)
    assert card.card_version == 2 and card.training != old.training
    assert card.model_kwargs == {"structure": "paper"}
    with torch.no_grad():
        maps = abn.load(ASSETS / name)(torch.randn(1, 3, 32, 32)).class_maps
    assert maps.shape == (1, 10, 16, 16)  # the attention map's resolution


def test_imagenette_cam_card_says_it_has_the_legacy_structure():
    card = abn.read_card(ASSETS / "imagenette-resnet18-cam.safetensors")
    assert card.model_kwargs == {"stem": "imagenet", "structure": "native"}
    assert "Legacy structure" in card.notes and "5×5 maps at 160 px" in card.notes


@pytest.mark.parametrize("name", ["abn_multitask", "plain_multitask"])
def test_v1_face_cards_mean_the_split_by_image_number(name):
    v1 = FIXTURES / "checkpoints_v1" / f"celeba-hq-resnet20-{name}.safetensors"
    with safe_open(str(v1), "pt") as f:
        assert json.loads(f.metadata()["abn.card"])["dataset"] == "celeba-hq"
    card = abn.read_card(v1)
    assert card.dataset == "celeba-hq-by-number" and card.recipe["data"] == "celeba-hq-by-number"
    key = "celeba-hq-by-number/test"
    assert key in card.metrics and all(k.startswith(f"{key}") for k in card.metrics)
    asset = shipped_twin(v1)
    assert abn.read_card(asset).dataset == "celeba-hq-by-number"


MUTATIONS = {"abn_multitask": ("residual", 8), "abn": ("multiply", 1)}  # other code defaults
V1_OF = {"abn_multitask": "celeba-hq-resnet20-abn_multitask", "abn": "cifar10-resnet20-abn"}


@pytest.mark.parametrize("variant", sorted(MUTATIONS))
def test_code_defaults_do_not_change_what_a_checkpoint_rebuilds(monkeypatch, variant):
    """Mutation: the code's defaults change under the shipped files; they rebuild as before."""
    changed = MUTATIONS[variant]
    monkeypatch.setattr(VARIANTS[variant].__init__, "__defaults__", changed)
    assert create("resnet20", variant, num_classes=3).mechanism == changed[0]  # it took effect
    v1 = FIXTURES / "checkpoints_v1" / f"{V1_OF[variant]}.safetensors"
    for path in [v1, shipped_twin(v1)]:
        model = abn.load(path)
        assert model.mechanism != changed[0], path.name
        assert_as_before(model, V1_OF[variant])


def test_a_training_state_of_passed_options_only_resumes_with_the_v1_defaults():
    """Training states written before specs named every option mean the version-1 defaults."""
    from abn.models import ModelSpec
    from abn.train.state import ResumeError, _check_spec

    before = ModelSpec("resnet20", "cam", 3, {})  # written when CAM was native by default
    with pytest.raises(ResumeError, match="structure"):
        _check_spec(create("resnet20", "cam", num_classes=3), before, Path("last.state.pt"))
    _check_spec(create("resnet20", "cam", 3, structure="native"), before, Path("last.state.pt"))
    _check_spec(create("resnet20", "abn", 3), ModelSpec("resnet20", "abn", 3, {}), Path("s"))
