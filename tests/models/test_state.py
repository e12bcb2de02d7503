import torch
from torch import nn

from transferlab.models.state import eval_mode, frozen, inference_copy, preserved


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


def _fine_tuning() -> nn.Module:
    """Train mode with the BatchNorm frozen in eval mode and the conv frozen: a fine-tuning caller's model."""
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Linear(6, 2)).train()
    model[1].eval()
    model[0].requires_grad_(False)
    return model


def test_eval_mode_and_preserved_restore_each_modules_own_mode() -> None:
    """Regression: ``model.train(was_training)`` set every submodule alike, putting a frozen BatchNorm back in training."""
    model = _fine_tuning()
    for manager in (eval_mode, preserved):
        with manager(model):
            model.eval()
        assert [m.training for m in model] == [True, False, True] and model.training


def test_frozen_restores_each_parameters_own_flag() -> None:
    model = _fine_tuning()
    with frozen(model):
        assert not any(p.requires_grad for p in model.parameters())
    assert [p.requires_grad for p in model.parameters()] == [False, False, True, True, True, True]


def test_inference_copy_converts_a_copy_and_leaves_the_model() -> None:
    torch.manual_seed(0)
    model = _fine_tuning().to(torch.float64)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    twin = inference_copy(model)
    assert not any(m.training for m in twin.modules()) and {p.dtype for p in twin.parameters()} == {torch.float32}
    assert twin[1].num_batches_tracked.dtype == torch.int64  # integer buffers keep their dtype
    assert all(p.dtype == torch.float64 for p in model.parameters()) and model.training and not model[1].training
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    with torch.no_grad():
        twin[0].weight.add_(1.0)
    assert torch.equal(model[0].weight, before["0.weight"])  # no storage shared
