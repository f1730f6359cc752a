"""runtime: devices, P(fake), and module modes restored whatever happens in the block."""

import pytest
import torch
from torch import nn

from deepshield.runtime import eval_mode, fake_probs, kept_modes, probs_of, select_device


def _net() -> nn.Module:
    net = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.BatchNorm1d(8), nn.Linear(8, 2))
    net.train()
    net[2].eval()  # a mixed state, as a partly frozen fine-tune has
    return net


def test_eval_mode_restores_each_submodule_even_on_error():
    net = _net()
    before = [m.training for m in net.modules()]
    with eval_mode(net) as m:
        assert not any(x.training for x in m.modules())
    assert [m.training for m in net.modules()] == before
    with pytest.raises(RuntimeError), kept_modes(net):
        net.eval()
        raise RuntimeError("boom")
    assert [m.training for m in net.modules()] == before


def test_fake_probs_is_softmax_of_class_one_without_grad():
    net = _net().eval()
    x = torch.rand(3, 4)
    p = fake_probs(net, x)
    assert not p.requires_grad and p.shape == (3,)
    assert torch.allclose(p, torch.softmax(net(x), 1)[:, 1])
    assert torch.allclose(probs_of(torch.tensor([[0.0, 0.0]])), torch.tensor([0.5]))


def test_select_device():
    assert select_device("cpu") == torch.device("cpu")
    assert select_device("auto").type in ("cpu", "cuda")
