import torch
from torch import nn

from transferlab.models.state import preserved


def test_preserved_puts_parameters_and_buffers_back_with_their_new_values() -> None:
    """``Module.to`` moves parameters in place but replaces buffers: both must come back (dtype here stands
    in for a GPU, which moves them the same way), keeping what the block learnt, in the caller's mode."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).eval()
    with preserved(model):
        model.to(torch.float64, memory_format=torch.channels_last).train()
        model(torch.randn(2, 3, 8, 8, dtype=torch.float64).contiguous(memory_format=torch.channels_last))  # moves the running statistics
        with torch.no_grad():
            model[0].weight.add_(1.0)
        learnt = model[1].running_mean.clone()
    tensors = [*model.parameters(), *model.buffers()]
    assert {t.dtype for t in tensors if t.is_floating_point()} == {torch.float32} and all(t.is_contiguous() for t in tensors)
    assert torch.equal(model[1].running_mean, learnt.float()) and model[1].num_batches_tracked.item() == 1
    assert model[0].weight.min() > 0.5 and not model.training  # the new weights kept, the caller's mode back
