import pytest

from abn.models import get_entry, list_models

HEAVY = {"resnet101", "resnet152", "se_resnet101", "se_resnet152", "vgg16_bn", "wrn28_10",
         "resnext29_8x64d"}  # fmt: skip


def input_for(name: str, batch: int = 2):
    """A small, non-square input suited to the backbone's family."""
    import torch

    family = get_entry(name).family
    h, w = (32, 40) if family == "cifar" else (64, 48)
    return torch.randn(batch, 3, h, w, generator=torch.Generator().manual_seed(0))


@pytest.fixture(params=list_models())
def backbone_name(request):
    return request.param
