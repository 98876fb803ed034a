import json

import pytest
import torch

from aekit import PRESETS, create, fit, load_model, save_model


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_save_load_gives_identical_outputs(name, tmp_path):
    model = create(name, (1, 8, 8)).eval()
    x = torch.rand(5, 64)
    save_model(model, tmp_path)
    again = load_model(tmp_path)
    assert again.config == model.config
    with torch.no_grad():
        assert torch.equal(model.reconstruct(x), again.reconstruct(x))
        assert torch.equal(model.encode(x), again.encode(x))
    # safetensors + JSON only: nothing that needs unpickling
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json", "model.safetensors"]


def test_trained_tied_model_round_trips(tmp_path, digits):
    model = create("undercomplete", (1, 8, 8), tied=True, code_size=4)
    fit(model, digits.train.x[:200], epochs=2, progress=False)
    save_model(model, tmp_path)
    x = torch.from_numpy(digits.test.x[:10])
    with torch.no_grad():
        assert torch.equal(model.reconstruct(x), load_model(tmp_path / "model.safetensors").reconstruct(x))


def test_config_and_weights_disagree(tmp_path):
    save_model(create("undercomplete", (1, 8, 8), code_size=4), tmp_path)
    cfg = json.loads((tmp_path / "model.json").read_text())
    cfg["options"]["code_size"] = 5
    (tmp_path / "model.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=r"weights do not match the config \(shape mismatch"):
        load_model(tmp_path)


def test_corrupted_checkpoint_files(tmp_path):
    save_model(create("linear", (1, 8, 8), code_size=4), tmp_path)
    w = tmp_path / "model.safetensors"
    w.write_bytes(w.read_bytes()[:100])
    with pytest.raises(ValueError, match="corrupted checkpoint"):
        load_model(tmp_path)
    (tmp_path / "model.json").write_text("{not json")
    with pytest.raises(ValueError, match="corrupted checkpoint config"):
        load_model(tmp_path)
    (tmp_path / "model.json").write_text(json.dumps({"preset": "nope", "input_shape": [4]}))
    with pytest.raises(ValueError, match="unknown preset 'nope'"):
        load_model(tmp_path)


def test_missing_checkpoint(tmp_path):
    with pytest.raises(ValueError, match="checkpoint not found"):
        load_model(tmp_path / "nowhere")


def test_unsaveable_model_is_clear():
    from aekit import MLP, Autoencoder, Gaussian

    ae = Autoencoder(MLP([4, 2]), MLP([2, 4]), Gaussian(), input_shape=(4,), code_size=2)
    with pytest.raises(ValueError, match="build it with aekit.presets.create"):
        save_model(ae, "/tmp/unused")
