"""A training step replayed as a CUDA graph trains exactly as the eager step does."""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest
import torch

from abn.cli import main
from abn.models import create
from abn.train.config import TrainConfig
from abn.train.engine import TrainStep, train_one_epoch
from abn.train.graphs import CudaGraphBackend, GraphCaptureError, GraphedStep
from abn.train.optim import build_optimizer, set_lr


class ReplayBackend:
    """A stand-in for a CUDA graph on CPU: capture records the step without running it, as
    stream capture does, and each replay runs it again on the static buffers."""

    def __init__(self) -> None:
        self.fn: Callable[[], object] | None = None
        self.eager_calls = 0

    def eager(self, fn):
        self.eager_calls += 1
        return fn()

    def capture(self, fn) -> None:
        self.fn = fn

    def replay(self) -> None:
        assert self.fn is not None
        self.fn()


def _batches(variant: str, n: int, batch: int = 8, device: str = "cpu"):
    g = torch.Generator().manual_seed(1)
    out = []
    for _ in range(n):
        x = torch.randn(batch, 3, 32, 32, generator=g)
        if variant.endswith("multitask"):
            y = torch.randint(0, 2, (batch, 4), generator=g).float()
        else:
            y = torch.randint(0, 10, (batch,), generator=g)
        out.append((x.to(device), y.to(device)))
    return out


def _pair(variant: str, device: str = "cpu"):
    torch.manual_seed(0)
    model = create("resnet20", variant, 4 if variant.endswith("multitask") else 10).to(device)
    twin = copy.deepcopy(model)
    cfg = TrainConfig(lr=0.1)
    dev = torch.device(device)
    return (model, build_optimizer(model, cfg, dev)), (twin, build_optimizer(twin, cfg, dev))


@pytest.mark.parametrize("variant", ["abn", "plain", "abn_multitask"])
def test_graphed_step_matches_the_eager_step_through_a_rate_drop(variant: str) -> None:
    (eager_model, eager_opt), (graph_model, graph_opt) = _pair(variant)
    eager = TrainStep(eager_model, eager_opt, torch.device("cpu"), "fp32")
    backend = ReplayBackend()
    graphed = GraphedStep(
        TrainStep(graph_model, graph_opt, torch.device("cpu"), "fp32", cache_casts=False),
        graph_opt,
        backend,
        warmup=2,
    )
    rows = []
    for i, (x, y) in enumerate(_batches(variant, 9)):
        if i == 6:  # the schedule's drop: SGD's rate is baked into a captured graph
            set_lr(eager_opt, 0.01)
            set_lr(graph_opt, 0.01)
        rows.append((eager(x, y).clone(), graphed(x, y).clone()))
    for a, b in rows:
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    for p, q in zip(
        eager_model.state_dict().values(), graph_model.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    assert (backend.eager_calls, graphed.captures, graphed.replays) == (2, 2, 7)
    assert graphed.has_att == (variant != "plain")


def test_a_batch_of_another_shape_runs_eagerly_and_keeps_the_graph() -> None:
    (_, _), (model, opt) = _pair("abn")
    graphed = GraphedStep(
        TrainStep(model, opt, torch.device("cpu"), "fp32"), opt, ReplayBackend(), 1
    )
    batches = _batches("abn", 4)
    for x, y in batches:
        graphed(x, y)
    row = graphed(batches[0][0][:5], batches[0][1][:5])
    assert row[-1].item() == 5 and (graphed.captures, graphed.replays) == (1, 3)


def test_train_one_epoch_takes_the_graphed_step_and_reports_as_eager() -> None:
    (eager_model, eager_opt), (graph_model, graph_opt) = _pair("abn")
    batches = _batches("abn", 5)
    cpu = torch.device("cpu")
    a = train_one_epoch(eager_model, batches, eager_opt, cpu, "fp32")
    step = GraphedStep(
        TrainStep(graph_model, graph_opt, cpu, "fp32", cache_casts=False),
        graph_opt,
        ReplayBackend(),
    )
    b = train_one_epoch(graph_model, batches, graph_opt, cpu, "fp32", step=step)
    assert (a.loss, a.acc_per, a.acc_att, a.images) == (b.loss, b.acc_per, b.acc_att, b.images)
    assert step.replays == 2


def test_cuda_graphs_on_a_cpu_run_stops_before_loading_data(tmp_path, capsys) -> None:
    argv = ["train", "--device", "cpu", "--cuda-graphs", "--data-root", str(tmp_path / "none"),
            "--out", str(tmp_path), "--name", "g", "--quiet"]  # fmt: skip
    assert main(argv) != 0
    err = capsys.readouterr().err
    assert "cuda_graphs needs a CUDA device; this run's device is cpu" in err
    assert "Traceback" not in err and not (tmp_path / "g" / "metrics.csv").exists()


def test_cuda_graph_backend_refuses_a_cpu_device_and_no_warmup() -> None:
    with pytest.raises(ValueError, match="need a CUDA device"):
        CudaGraphBackend(torch.device("cpu"))
    (_, _), (model, opt) = _pair("plain")
    with pytest.raises(ValueError, match="warmup must be >= 1"):
        GraphedStep(TrainStep(model, opt, torch.device("cpu")), opt, ReplayBackend(), warmup=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_real_cuda_graph_trains_as_the_eager_step(precision: str) -> None:
    (eager_model, eager_opt), (graph_model, graph_opt) = _pair("abn", "cuda")
    dev = torch.device("cuda")
    torch.backends.cudnn.deterministic = True
    try:
        eager = TrainStep(eager_model, eager_opt, dev, precision)
        step = TrainStep(graph_model, graph_opt, dev, precision, cache_casts=False)
        graphed = GraphedStep(step, graph_opt, CudaGraphBackend(dev))
        for i, (x, y) in enumerate(_batches("abn", 10, device="cuda")):
            if i == 7:
                set_lr(eager_opt, 0.01)
                set_lr(graph_opt, 0.01)
            a, b = eager(x, y).clone(), graphed(x, y).clone()
            torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-3)
    finally:
        torch.backends.cudnn.deterministic = False
    assert (graphed.captures, graphed.replays) == (2, 7)
    for p, q in zip(
        eager_model.state_dict().values(), graph_model.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(p.float(), q.float(), rtol=1e-3, atol=1e-3)


def test_a_failed_capture_says_what_to_do() -> None:
    class Failing(ReplayBackend):
        def capture(self, fn) -> None:
            raise RuntimeError("operation not permitted when stream is capturing")

    (_, _), (model, opt) = _pair("abn")
    graphed = GraphedStep(TrainStep(model, opt, torch.device("cpu"), "fp32"), opt, Failing(), 1)
    (x, y), (x2, y2) = _batches("abn", 2)
    graphed(x, y)
    with pytest.raises(GraphCaptureError, match="stream is capturing.*train without cuda_graphs"):
        graphed(x2, y2)
    assert graphed.replays == 0
