import pytest
import torch
from timm.layers import Conv2dSame
from torch import nn

from transferlab.train.depthwise import fp32_depthwise_backward


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 1),
        nn.Conv2d(8, 8, 3, padding=1, groups=8),  # depthwise
        Conv2dSame(8, 8, 5, stride=2, groups=8, bias=False),  # timm's "same"-padded strided depthwise
        nn.Conv2d(8, 4, 1),
    ).to(memory_format=torch.channels_last)


def _grads(net: nn.Module, x: torch.Tensor, autocast: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
    x = x.clone().requires_grad_(True)
    net.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        out = net(x)
    out.float().square().mean().backward()
    return x.grad, [p.grad.clone() for p in net.parameters()]


def _close(a: torch.Tensor, b: torch.Tensor, tol: float) -> bool:
    return bool((a - b).norm() <= tol * b.norm())


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="needs oneDNN for bf16 convolutions")
def test_depthwise_layers_get_the_gradients_of_the_plain_network() -> None:
    net = _net()
    x = torch.randn(4, 3, 17, 17).contiguous(memory_format=torch.channels_last)
    exact_x, exact = _grads(net, x, autocast=False)  # fp32 reference
    plain_x, plain = _grads(net, x, autocast=True)
    with fp32_depthwise_backward(net) as changed:
        assert changed == 2 and type(net[1]) is not nn.Conv2d
        fast_x, fast = _grads(net, x, autocast=True)
    for p_exact, p_plain, p_fast in zip(exact, plain, fast):
        assert p_fast.dtype == torch.float32 and p_fast.shape == p_exact.shape
        assert _close(p_fast, p_exact, 0.03) and _close(p_plain, p_exact, 0.03)  # both bf16-accurate
    assert fast_x.dtype == torch.float32 and _close(fast_x, exact_x, 0.03)


def test_outside_the_block_and_outside_training_the_layers_are_untouched() -> None:
    net = _net()
    keys = list(net.state_dict())
    x = torch.randn(2, 3, 17, 17).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        before = net.eval()(x)
        with fp32_depthwise_backward(net):
            during = net(x)  # evaluation (and fp32 training) take nn.Conv2d's own forward
    assert torch.equal(before, during)
    assert [type(m) for m in net] == [nn.Conv2d, nn.Conv2d, Conv2dSame, nn.Conv2d] and list(net.state_dict()) == keys
    with fp32_depthwise_backward(net, enabled=False) as changed:
        assert changed == 0
