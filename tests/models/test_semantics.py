"""ABN's semantics, pinned without any dataset: tiny random models and random inputs.

Each check recomputes a quantity from the model's own layers (reached with forward hooks) and
compares it with what the model returns, so a change of formula fails here:

- the attention map is sigmoid(BN(conv(.))) of the attention branch (single- and multi-task);
- the perception branch's input is (1 + M)·g (Eq. 2, ``residual``) or M·g (Eq. 1, ``multiply``);
  for multi-task ABN it is M^t·g for each task t (Eq. 4);
- one real training step (``abn.train``'s loss and step) gives every parameter the gradient of
  L_att + L_per, so L_att reaches the attention branch;
- the default mechanism of each variant (abn: residual, abn_multitask: multiply).
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import abn
from abn.train.engine import TrainStep

# one CIFAR and one ImageNet-style backbone, at small non-square inputs
CASES = [("resnet20", (16, 24)), ("resnet18", (64, 48))]


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny(name: str, variant: str, num_classes: int = 4, **kw) -> nn.Module:
    """An eval-mode model with random weights and non-trivial BatchNorm statistics."""
    torch.manual_seed(0)
    model = abn.create(name, variant, num_classes=num_classes, **kw)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return model.eval()


def batch(size: tuple[int, int], n: int = 2) -> torch.Tensor:
    return torch.randn(n, 3, *size, generator=torch.Generator().manual_seed(1))


class Capture:
    """Records the first positional input and the output of a module's forward calls."""

    def __init__(self, module: nn.Module) -> None:
        self.inputs: list[torch.Tensor] = []
        self.outputs: list[torch.Tensor] = []
        self.handle = module.register_forward_hook(self._hook)

    def _hook(self, module, args, output) -> None:
        self.inputs.append(args[0].detach().clone())
        self.outputs.append(output.detach().clone())

    def __enter__(self) -> Capture:
        return self

    def __exit__(self, *exc) -> None:
        self.handle.remove()


def check_map_is_sigmoid_of_bn_of_conv(
    attention: torch.Tensor, conv: nn.Conv2d, bn: nn.BatchNorm2d, conv_input: torch.Tensor
) -> None:
    """``attention`` equals sigmoid(bn(conv(conv_input))) recomputed from the branch's layers."""
    expected = torch.sigmoid(bn(conv(conv_input)))
    torch.testing.assert_close(attention, expected, rtol=0, atol=1e-6)
    assert attention.std() > 0  # a map, not a constant


@pytest.mark.parametrize(("name", "size"), CASES)
@torch.no_grad()
def test_attention_map_is_sigmoid_of_bn_of_conv(name, size) -> None:
    model = tiny(name, "abn")
    branch = model.attention_branch
    with Capture(branch.map_conv) as conv:
        out = model(batch(size))
    assert out.attention.shape[1] == 1
    check_map_is_sigmoid_of_bn_of_conv(
        out.attention, branch.map_conv, branch.bn_map, conv.inputs[0]
    )


@pytest.mark.parametrize(("name", "size"), CASES)
@torch.no_grad()
def test_multitask_maps_are_sigmoid_of_bn_of_conv(name, size) -> None:
    model = tiny(name, "abn_multitask", num_classes=3)
    branch = model.attention_branch
    with Capture(branch.conv) as conv:
        out = model(batch(size))
    assert out.attention.shape[1] == 3
    check_map_is_sigmoid_of_bn_of_conv(out.attention, branch.conv, branch.bn_conv, conv.inputs[0])
    # the attention-branch logit of each task is the GAP of its map before the sigmoid
    logits = branch.bn_conv(branch.conv(conv.inputs[0])).mean(dim=(2, 3))
    torch.testing.assert_close(out.att_logits, logits, rtol=0, atol=1e-6)


def perceived(model: nn.Module, x: torch.Tensor):
    """The model's output, g(x) as the feature extractor returned it, and the perception
    branch's input as its ``entry`` received it."""
    with Capture(model.feature_extractor) as g, Capture(model.perception_branch.entry) as entry:
        out = model(x)
    assert len(g.outputs) == 1 and len(entry.inputs) == 1
    return out, g.outputs[0], entry.inputs[0]


@pytest.mark.parametrize(("name", "size"), CASES)
@pytest.mark.parametrize(
    ("mechanism", "formula"),
    [("residual", lambda m, g: (1 + m) * g), ("multiply", lambda m, g: m * g)],
)
@torch.no_grad()
def test_perception_input_per_mechanism(name, size, mechanism, formula) -> None:
    model = tiny(name, "abn", mechanism=mechanism)
    out, g, entry = perceived(model, batch(size))
    assert model.mechanism == mechanism
    torch.testing.assert_close(entry, formula(out.attention, g), rtol=0, atol=0)
    torch.testing.assert_close(out.attended_features, entry, rtol=0, atol=0)
    torch.testing.assert_close(out.features, g, rtol=0, atol=0)


@pytest.mark.parametrize(("name", "size"), CASES)
@pytest.mark.parametrize(
    ("mechanism", "formula"),
    [("multiply", lambda m, g: m * g), ("residual", lambda m, g: (1 + m) * g)],
)
@torch.no_grad()
def test_multitask_perception_input_is_each_tasks_map_times_g(
    name, size, mechanism, formula
) -> None:
    """Eq. 4: the perception branch runs once per task t on M^t(x)·g(x) (batch-major)."""
    tasks = 3
    model = tiny(name, "abn_multitask", num_classes=tasks, mechanism=mechanism)
    x = batch(size)
    out, g, entry = perceived(model, x)
    per_task = entry.view(x.shape[0], tasks, *g.shape[1:])
    for t in range(tasks):
        expected = formula(out.attention[:, t : t + 1], g)
        torch.testing.assert_close(per_task[:, t], expected, rtol=0, atol=0)
    # and the tasks' inputs differ: each task sees its own map
    assert not torch.equal(per_task[:, 0], per_task[:, 1])


@pytest.mark.parametrize(
    ("variant", "mechanism"), [("abn", "residual"), ("abn_multitask", "multiply")]
)
def test_default_mechanism_per_variant(variant, mechanism) -> None:
    model = abn.create("resnet20", variant, num_classes=3)
    assert model.mechanism == mechanism
    assert model.spec.kwargs.get("mechanism", mechanism) == mechanism


def reference_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """L_att + L_per written out here (Eq. 3 single-task; the multi-task loss likewise)."""
    out = model(x)
    if out.logits.dim() == 3:  # multi-task ABN: BCE on the maps' GAP, two-way CE per task
        att = F.binary_cross_entropy_with_logits(out.att_logits, y.float())
        per = F.cross_entropy(out.logits.reshape(-1, 2), y.reshape(-1))
    else:
        att = F.cross_entropy(out.att_logits, y)
        per = F.cross_entropy(out.logits, y)
    return att + per


@pytest.mark.parametrize("variant", ["abn", "abn_multitask"])
def test_one_training_step_follows_the_gradient_of_l_att_plus_l_per(variant) -> None:
    model = tiny("resnet20", variant, num_classes=3).train()
    x = batch((16, 16), n=6)
    gen = torch.Generator().manual_seed(2)
    y = (
        torch.randint(0, 2, (6, 3), generator=gen)
        if variant == "abn_multitask"
        else torch.tensor([0, 1, 2, 0, 1, 2])
    )
    reference = copy.deepcopy(model)
    reference_loss(reference, x, y).backward()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    lr = 0.5
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)  # no momentum, no weight decay
    TrainStep(model, optimizer, torch.device("cpu"), "fp32")(x, y)

    for (name, p), (_, r) in zip(
        model.named_parameters(), reference.named_parameters(), strict=True
    ):
        assert p.grad is not None, f"{name} got no gradient"
        torch.testing.assert_close(p.grad, r.grad, rtol=1e-4, atol=1e-6, msg=name)
        torch.testing.assert_close(p.detach(), before[name] - lr * r.grad, rtol=1e-4, atol=1e-6)
    if variant == "abn":
        # class_conv feeds only the attention-branch logits: only L_att moves it
        moved = (
            model.attention_branch.class_conv.weight - before["attention_branch.class_conv.weight"]
        )
        assert moved.abs().max() > 1e-4
