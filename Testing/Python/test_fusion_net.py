import torch

from liverfusion.networks.fusion import FusionNet


def _net():
    torch.manual_seed(0)
    return FusionNet(features=(4, 8, 16, 16)).eval()


def test_outputs_have_the_input_shape_for_every_subset():
    net = _net()
    x = torch.randn(1, 5, 32, 32, 32)
    for present in ([0, 0, 1, 0, 1], [1, 1, 1, 1, 0], [0, 0, 0, 0, 1]):
        out = net(x, torch.tensor([present], dtype=torch.float32))
        assert out["seg"].shape == (1, 3, 32, 32, 32)
        assert out["malignancy"].shape == (1, 1, 32, 32, 32)
        assert out["fusion"].shape == (1, 5, 32, 32, 32)


def test_fusion_weights_are_a_softmax_over_present_modalities_only():
    net = _net()
    out = net(torch.randn(1, 5, 16, 16, 16), torch.tensor([[0, 1, 1, 0, 1]], dtype=torch.float32))
    w = out["fusion"][0]
    assert torch.allclose(w.sum(0), torch.ones_like(w[0]), atol=1e-5)
    assert w[0].abs().max() == 0 and w[3].abs().max() == 0


def test_a_missing_channel_does_not_influence_the_output():
    net = _net()
    present = torch.tensor([[0, 0, 1, 0, 1]], dtype=torch.float32)
    x = torch.randn(1, 5, 16, 16, 16)
    noisy = x.clone()
    noisy[:, 0] = 100 * torch.randn_like(noisy[:, 0])
    with torch.no_grad():
        assert torch.allclose(net(x, present)["seg"], net(noisy, present)["seg"])


def test_training_mode_gives_deep_supervision_heads():
    net = _net().train()
    out = net(torch.randn(2, 5, 32, 32, 32), torch.tensor([[1, 0, 1, 0, 0]] * 2, dtype=torch.float32))
    assert [d.shape[2:] for d in out["deep"]] == [(8, 8, 8), (16, 16, 16)]
    loss = out["seg"].mean() + out["malignancy"].mean() + sum(d.mean() for d in out["deep"])
    loss.backward()
    assert net.modality_embedding.grad is not None
