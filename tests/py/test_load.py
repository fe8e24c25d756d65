"""Strict loading of llm.pt / flow.pt / hift.pt: errors name the key; weight-norm folding; tied lm_head."""

import os
from collections import OrderedDict

import pytest
import torch

from cosyvoice2 import keys, load, randmodel
from cosyvoice2.llm import Qwen2LM


def test_random_model_dir_loads_strictly(tiny_model_dir, tiny_config):
    sd = load.read_state_dict(os.path.join(tiny_model_dir, "llm.pt"))
    st = load.llm_module_state(sd, tiny_config)
    assert load.LM_HEAD not in st and len(st) == len(sd) - 1
    assert load.lm_head_is_tied(sd)
    m = Qwen2LM(tiny_config.llm)
    load.load_into(m, st, "llm.pt")
    assert torch.equal(m.llm.model.model.embed_tokens.weight, sd[load.EMBED])
    load.flow_module_state(load.read_state_dict(os.path.join(tiny_model_dir, "flow.pt")), tiny_config)
    hs = load.hift_module_state(load.read_state_dict(os.path.join(tiny_model_dir, "hift.pt")), tiny_config)
    assert "conv_pre.weight" in hs and not any("parametrizations" in k for k in hs)


def test_tied_embedding_is_stored_once(tiny_model_dir, tiny_config):
    size = os.path.getsize(os.path.join(tiny_model_dir, "llm.pt"))
    k = keys.llm_keys(tiny_config.llm)
    once = 4 * (keys.param_count(k) - k[load.LM_HEAD][0] * k[load.LM_HEAD][1])
    assert once <= size < once + 200_000


def _llm_sd(tiny_model_dir):
    return OrderedDict(load.read_state_dict(os.path.join(tiny_model_dir, "llm.pt")))


def test_missing_key_is_named(tiny_model_dir, tiny_config):
    sd = _llm_sd(tiny_model_dir)
    del sd["llm.model.model.layers.1.mlp.up_proj.weight"]
    with pytest.raises(load.CheckpointError, match=r"missing key 'llm\.model\.model\.layers\.1\.mlp\.up_proj\.weight' \(expected shape \[32, 16\]\)"):
        load.llm_module_state(sd, tiny_config)


def test_extra_key_is_named(tiny_model_dir, tiny_config):
    sd = _llm_sd(tiny_model_dir)
    sd["llm.model.model.layers.2.input_layernorm.weight"] = torch.ones(16)
    with pytest.raises(load.CheckpointError, match=r"unexpected key 'llm\.model\.model\.layers\.2\.input_layernorm\.weight' \(shape \[16\]\)"):
        load.llm_module_state(sd, tiny_config)


def test_misshaped_key_is_named_with_both_shapes(tiny_model_dir, tiny_config):
    sd = _llm_sd(tiny_model_dir)
    sd["speech_embedding.weight"] = torch.zeros(6000, 16)
    with pytest.raises(load.CheckpointError) as e:
        load.llm_module_state(sd, tiny_config)
    msg = str(e.value)
    assert "key 'speech_embedding.weight' has shape [6000, 16], expected [6564, 16]" in msg
    assert "do not match this checkpoint" in msg


def test_wrong_file_for_the_slot(tiny_model_dir, tiny_config):
    sd = load.read_state_dict(os.path.join(tiny_model_dir, "flow.pt"))
    with pytest.raises(load.CheckpointError, match="missing.*unexpected.*right file"):
        load.llm_module_state(sd, tiny_config)


def test_read_state_dict_rejects_bad_files(tmp_path):
    with pytest.raises(load.CheckpointError, match="missing file"):
        load.read_state_dict(str(tmp_path / "nope.pt"))
    p = tmp_path / "junk.pt"
    p.write_bytes(b"not a zip at all")
    with pytest.raises(load.CheckpointError, match="not a torch.save state_dict"):
        load.read_state_dict(str(p))
    torch.save({"a": torch.zeros(2), "b": 3}, str(p))
    with pytest.raises(load.CheckpointError, match="entry 'b'"):
        load.read_state_dict(str(p))
    torch.save({"a": torch.zeros(2, dtype=torch.int64)}, str(p))
    with pytest.raises(load.CheckpointError, match="key 'a' has dtype torch.int64"):
        load.read_state_dict(str(p))
    torch.save([torch.zeros(1)], str(p))
    with pytest.raises(load.CheckpointError, match="holds a list"):
        load.read_state_dict(str(p))


def _manual_fold(g, v):
    # independent of torch._weight_norm: norm over every dim except 0
    n = v.reshape(v.shape[0], -1).norm(dim=1).reshape(-1, *([1] * (v.dim() - 1)))
    return v * (g / n)


@pytest.mark.parametrize("style", ["parametrizations", "weight_g", "folded"])
def test_hift_weight_norm_styles_fold_to_the_same_weights(tiny_config, style):
    g = torch.Generator().manual_seed(3)
    ref = randmodel.random_state(keys.hift_keys(tiny_config.hift, "parametrizations"), "hift", g)
    # make g differ from ||v|| so the fold is not the identity
    for k in ref:
        if k.endswith("original0"):
            ref[k] = ref[k] * (1.0 + torch.rand(ref[k].shape, generator=g))
    expect = OrderedDict()
    for k, t in ref.items():
        if k.endswith(".original0"):
            base = k[: -len(".parametrizations.weight.original0")]
            expect[base + ".weight"] = _manual_fold(t, ref[base + ".parametrizations.weight.original1"])
        elif not k.endswith(".original1"):
            expect[k] = t
    if style == "parametrizations":
        sd = ref
    elif style == "weight_g":
        sd = OrderedDict((k.replace(".parametrizations.weight.original0", ".weight_g")
                          .replace(".parametrizations.weight.original1", ".weight_v"), t) for k, t in ref.items())
    else:
        sd = expect
    sd = OrderedDict(("generator." + k, t) for k, t in sd.items())  # as saved from a HiFiGan wrapper
    got = load.hift_module_state(sd, tiny_config)
    assert set(got) == set(expect)
    for k in expect:
        torch.testing.assert_close(got[k], expect[k], rtol=1e-6, atol=1e-7, msg=k)
    # ConvTranspose weight norm is over the input channels (g is [C_in,1,1])
    assert got["ups.0.weight"].shape == (16, 8, 16)


def test_hift_missing_direction_is_named(tiny_model_dir, tiny_config):
    sd = load.read_state_dict(os.path.join(tiny_model_dir, "hift.pt"))
    del sd["ups.1.parametrizations.weight.original1"]
    with pytest.raises(load.CheckpointError, match=r"missing key 'ups\.1\.parametrizations\.weight\.original1'"):
        load.hift_module_state(sd, tiny_config)


def test_module_disagreement_is_named(tiny_config):
    m = Qwen2LM(tiny_config.llm)
    st = OrderedDict(m.state_dict())
    st["extra.weight"] = torch.zeros(1)
    with pytest.raises(load.CheckpointError, match="unexpected key 'extra.weight'.*\n.*module code"):
        load.load_into(m, st, "llm.pt")
