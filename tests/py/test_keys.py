"""Official key layout: the lists of docs/cosyvoice2.md (§3.2, §4.5, §5.2) for the released 0.5B configuration,
and the modules' state_dicts built on the meta device (no weights allocated) against those lists."""

from collections import OrderedDict

import torch

from cosyvoice2 import flow as flow_mod
from cosyvoice2 import hift as hift_mod
from cosyvoice2 import keys
from cosyvoice2.llm import Qwen2LM


def meta_state(module):
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def test_llm_keys_match_spec_counts(full_config):
    k = keys.llm_keys(full_config.llm)
    assert len(k) == 295  # docs/cosyvoice2.md §3.2
    # 505,803,812 parameters with the tied embedding counted once (§1 size check)
    assert keys.param_count(k) - 151936 * 896 == 505_803_812
    assert k["llm.model.model.embed_tokens.weight"] == (151936, 896)
    assert k["llm.model.lm_head.weight"] == (151936, 896)
    assert k["llm.model.model.layers.23.self_attn.k_proj.weight"] == (128, 896)
    assert k["llm.model.model.layers.0.self_attn.v_proj.bias"] == (128,)
    assert k["llm.model.model.layers.5.mlp.down_proj.weight"] == (896, 4864)
    assert k["llm_embedding.weight"] == (2, 896)
    assert k["speech_embedding.weight"] == (6564, 896)
    assert k["llm_decoder.weight"] == (6564, 896) and k["llm_decoder.bias"] == (6564,)
    assert "llm.model.model.layers.24.input_layernorm.weight" not in k


def test_flow_keys_match_spec_counts(full_config):
    k = keys.flow_keys(full_config.flow)
    assert len(k) == 1121  # docs/cosyvoice2.md §4.5
    assert keys.param_count(k) == 112_549_360
    enc = {n: s for n, s in k.items() if n.startswith("encoder.")}
    est = {n: s for n, s in k.items() if n.startswith("decoder.estimator.")}
    assert keys.param_count(enc) == 37_831_168
    assert keys.param_count(est) == 71_302_480
    assert k["encoder.pre_lookahead_layer.conv1.weight"] == (512, 512, 4)
    assert k["encoder.up_layer.conv.weight"] == (512, 512, 5)
    assert k["encoder.up_encoders.3.self_attn.pos_bias_v"] == (8, 64)
    assert k["decoder.estimator.down_blocks.0.0.block1.block.0.weight"] == (256, 320, 3)
    assert k["decoder.estimator.up_blocks.0.0.res_conv.weight"] == (256, 512, 1)
    assert k["decoder.estimator.mid_blocks.11.1.3.attn1.to_out.0.weight"] == (256, 512)
    assert k["decoder.estimator.time_mlp.linear_1.weight"] == (1024, 320)
    assert k["decoder.estimator.final_proj.weight"] == (80, 256, 1)


def test_hift_keys_match_spec_counts(full_config):
    k = keys.hift_keys(full_config.hift)
    assert len(k) == 328  # docs/cosyvoice2.md §5.2
    assert keys.param_count(k) == 20_821_295
    assert k["conv_pre.parametrizations.weight.original0"] == (512, 1, 1)
    assert k["conv_pre.parametrizations.weight.original1"] == (512, 80, 7)
    assert k["ups.0.parametrizations.weight.original0"] == (512, 1, 1)  # ConvTranspose: g over C_in
    assert k["ups.0.parametrizations.weight.original1"] == (512, 256, 16)
    assert k["conv_post.parametrizations.weight.original1"] == (18, 64, 7)
    assert k["source_downs.0.weight"] == (256, 18, 30)
    assert k["source_downs.1.weight"] == (128, 18, 6)
    assert k["source_downs.2.weight"] == (64, 18, 1)
    assert k["resblocks.8.activations2.2.alpha"] == (64,)
    assert k["source_resblocks.2.convs1.0.parametrizations.weight.original1"] == (64, 64, 11)
    assert k["f0_predictor.condnet.8.parametrizations.weight.original1"] == (512, 512, 3)
    assert k["f0_predictor.classifier.weight"] == (1, 512)
    assert k["m_source.l_linear.weight"] == (1, 9)
    legacy = keys.hift_keys(full_config.hift, "weight_g")
    folded = keys.hift_keys(full_config.hift, "folded")
    assert len(legacy) == 328 and keys.param_count(legacy) == 20_821_295
    assert len(folded) == 328 - 82 and "conv_pre.weight" in folded  # 82 weight-normed convs (§9 list)


def test_llm_module_on_meta_matches_keys(full_config):
    with torch.device("meta"):
        m = Qwen2LM(full_config.llm)
    assert all(p.is_meta for p in m.parameters())
    assert meta_state(m) == dict(keys.llm_keys(full_config.llm, with_lm_head=False))


def test_flow_module_on_meta_matches_keys(full_config):
    m = flow_mod.build_flow(full_config.flow, device=torch.device("meta"))
    assert all(p.is_meta for p in m.parameters())
    assert meta_state(m) == dict(keys.flow_keys(full_config.flow))


def test_hift_module_on_meta_matches_keys(full_config):
    m = hift_mod.build_hift(full_config.hift, device=torch.device("meta"))
    assert all(p.is_meta for p in m.parameters())
    assert dict(meta_state(m)) == dict(keys.hift_keys(full_config.hift, "folded"))


def test_tiny_modules_match_keys(tiny_config):
    with torch.device("meta"):
        m = Qwen2LM(tiny_config.llm)
    assert meta_state(m) == dict(keys.llm_keys(tiny_config.llm, with_lm_head=False))
    f = flow_mod.build_flow(tiny_config.flow, device=torch.device("meta"))
    assert meta_state(f) == dict(keys.flow_keys(tiny_config.flow))
    h = hift_mod.build_hift(tiny_config.hift, device=torch.device("meta"))
    assert dict(meta_state(h)) == dict(keys.hift_keys(tiny_config.hift, "folded"))
