"""Several threads explaining with one shared model get exactly their single-threaded maps."""

from __future__ import annotations

import threading

import torch

from abn.explain import count_hooks, explain, explain_many


def test_eight_threads_share_one_model(make_model):
    model = make_model("resnet20", "abn")
    inputs = [torch.randn(2, 3, 16, 16) for _ in range(8)]
    expected = [explain_many(model, x, ["abn", "gradcam"]) for x in inputs]
    expected_pp = [explain(model, x, "gradcam++", target=1) for x in inputs]
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            torch.set_num_threads(1)
            barrier.wait()
            for _ in range(5):
                got = explain_many(model, inputs[i], ["abn", "gradcam"])
                for method in ("abn", "gradcam"):
                    assert torch.equal(got[method].maps, expected[i][method].maps), (i, method)
                    assert torch.equal(got[method].raw, expected[i][method].raw), (i, method)
                assert torch.equal(got["gradcam"].scores, expected[i]["gradcam"].scores)
                pp = explain(model, inputs[i], "gradcam++", target=1)
                assert torch.equal(pp.maps, expected_pp[i].maps), (i, "gradcam++")
        except BaseException as exc:  # reported below, with the thread's index
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]
    assert count_hooks(model) == 0
    assert all(p.grad is None for p in model.parameters())
    # the maps really differ between threads' images, so a mix-up could not pass unnoticed
    assert not torch.equal(expected[0]["gradcam"].raw, expected[1]["gradcam"].raw)
