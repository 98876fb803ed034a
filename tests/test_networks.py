import pytest
import torch

from aekit import MLP, ConvDecoder, ConvEncoder, TiedMLP


def test_mlp_shapes_and_activation():
    net = MLP([10, 7, 3], "relu", final="sigmoid")
    y = net(torch.randn(5, 10))
    assert y.shape == (5, 3) and (y > 0).all() and (y < 1).all()


def test_tied_decoder_shares_encoder_weights():
    enc = MLP([10, 7, 3], "tanh")
    dec = TiedMLP(enc, "tanh")
    # the decoder owns only its biases; the weights are the encoder's
    assert sum(p.numel() for p in dec.parameters()) == 7 + 10
    h = torch.randn(2, 3)
    before = dec(h)
    with torch.no_grad():
        enc.linears[0].weight.mul_(2)
    assert not torch.allclose(before, dec(h))
    # layer by layer: first decoder layer is W2ᵀ
    lin = enc.linears[1]
    expected = torch.tanh(h @ lin.weight + dec.biases[0])
    torch.testing.assert_close(torch.tanh(torch.nn.functional.linear(h, lin.weight.t(), dec.biases[0])), expected)


@pytest.mark.parametrize("shape", [(1, 28, 28), (1, 8, 8), (3, 7, 9), (2, 5, 5), (1, 1, 1)])
@pytest.mark.parametrize("channels", [(4,), (4, 8), (4, 8, 16)])
def test_conv_round_trips_any_shape(shape, channels):
    enc = ConvEncoder(shape, channels, 6)
    dec = ConvDecoder(enc)
    d = torch.tensor(shape).prod().item()
    h = enc(torch.randn(3, d))
    assert h.shape == (3, 6)
    assert dec(h).shape == (3, d)


def test_bad_network_arguments():
    with pytest.raises(ValueError, match="unknown activation 'swishy'"):
        MLP([3, 2], "swishy")
    with pytest.raises(ValueError, match="layer sizes"):
        MLP([3, 0])
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        ConvEncoder((64,), (8,), 4)
    with pytest.raises(ValueError, match="channels"):
        ConvEncoder((1, 8, 8), (), 4)
