"""cosyvoice2.yaml (HyperPyYAML) reading and the size configuration of a model directory."""

import json
import os

import pytest

from cosyvoice2 import config, hyperyaml, presets


def test_tags_are_kept_as_records_and_never_run():
    y = hyperyaml.loads(
        "seed: !apply:os.system ['echo hacked > /tmp/should-not-exist']\n"
        "obj: !new:pkg.mod.Class\n    a: 1\n    b: [1, 2]\n"
        "fn: !name:pkg.f\n    x: 0.5\n"
        "bare: !new:pkg.Empty\n"
    )
    assert isinstance(y["seed"], hyperyaml.Tagged) and y["seed"].kind == "apply"
    assert y["seed"].args == ["echo hacked > /tmp/should-not-exist"]
    assert y["obj"].target == "pkg.mod.Class" and y["obj"]["a"] == 1 and y["obj"]["b"] == [1, 2]
    assert y["fn"].kind == "name" and y["fn"].get("x") == 0.5
    assert y["bare"].args is None


def test_refs_arithmetic_nesting_and_overrides():
    text = (
        "rate: 25\nratio: 2\npath: ''\nname: abc\n"
        "a: !ref <rate>\n"
        "b: !ref <rate> * <ratio>\n"
        "c: !ref (<rate> + 5) // <ratio>\n"
        "d: !ref <obj[x]>\n"
        "e: !ref <path>\n"
        "f: !ref <name>_suffix\n"
        "obj: !new:X\n    x: !ref <b>\n"
        "lst: [!ref <rate>, 3]\n"
        "eps: 1e-06\n"
    )
    y = hyperyaml.loads(text, overrides={"path": "/over"})
    assert y["a"] == 25 and y["b"] == 50 and y["c"] == 15
    assert y["d"] == 50 and y["obj"]["x"] == 50
    assert y["e"] == "/over"
    assert y["f"] == "abc_suffix"
    assert y["lst"] == [25, 3]
    assert isinstance(y["eps"], float) and y["eps"] == 1e-6


@pytest.mark.parametrize(
    "text, msg",
    [
        ("a: !ref <missing>\n", "no such key"),
        ("a: !ref <b>\nb: !ref <a>\n", "circular"),
        ("x: 1\na: !ref <x> + __import__('os')\n", "unsupported expression"),
        ("- 1\n- 2\n", "not a mapping"),
        ("a: [1,\n", "yaml"),
    ],
)
def test_bad_yaml_is_a_clear_error(text, msg):
    with pytest.raises(hyperyaml.HyperYamlError, match=msg):
        hyperyaml.loads(text)


def test_full_preset_reads_the_released_sizes(full_config):
    c = full_config
    q = c.llm.qwen
    assert (q.hidden_size, q.num_layers, q.num_heads, q.num_kv_heads, q.head_dim) == (896, 24, 14, 2, 64)
    assert (q.intermediate_size, q.vocab_size, q.rope_theta, q.rms_norm_eps) == (4864, 151936, 1e6, 1e-6)
    assert c.llm.speech_token_size == 6561 and c.llm.speech_vocab == 6564
    assert (c.llm.top_p, c.llm.top_k, c.llm.win_size, c.llm.tau_r) == (0.8, 25, 10, 0.1)
    f = c.flow
    assert (f.input_size, f.output_size, f.spk_embed_dim, f.vocab_size) == (512, 80, 192, 6561)
    assert (f.enc_heads, f.enc_linear_units, f.enc_num_blocks, f.enc_up_blocks) == (8, 2048, 6, 4)
    assert (f.enc_static_chunk_size, f.est_static_chunk_size) == (25, 50)
    assert (f.est_channels, f.est_n_blocks, f.est_num_mid_blocks, f.est_num_heads) == ((256,), 4, 12, 8)
    assert (f.inference_cfg_rate, f.sigma_min, f.t_scheduler) == (0.7, 1e-6, "cosine")
    h = c.hift
    assert h.samples_per_frame == 480 and h.base_channels == 512 and h.nb_harmonics == 8
    assert h.resblock_dilation_sizes == ((1, 3, 5),) * 3
    assert (c.mel.n_fft, c.mel.hop_size, c.mel.fmax, c.mel.center) == (1920, 480, 8000.0, False)
    assert c.sample_rate == 24000 and c.chunk_size == 25
    json.dumps(c.as_json())  # serializable for the manifest


def _write_dir(tmp_path, yaml_text, qwen_json):
    q = tmp_path / "CosyVoice-BlankEN"
    q.mkdir()
    (q / "config.json").write_text(qwen_json)
    (tmp_path / "cosyvoice2.yaml").write_text(yaml_text)
    return str(tmp_path)


def test_sizes_come_from_the_files(tmp_path):
    qj = json.loads(presets.qwen_config_json("tiny"))
    qj.update(hidden_size=24, num_attention_heads=3, num_key_value_heads=1, num_hidden_layers=3, rope_theta=5000.0)
    y = presets.yaml_text("tiny").replace("llm_input_size: 16", "llm_input_size: 24").replace(
        "llm_output_size: 16", "llm_output_size: 24")
    c = config.load_model_dir(_write_dir(tmp_path, y, json.dumps(qj)))
    assert (c.llm.qwen.hidden_size, c.llm.qwen.head_dim, c.llm.qwen.num_layers) == (24, 8, 3)
    assert c.llm.qwen.rope_theta == 5000.0


@pytest.mark.parametrize(
    "edit, msg",
    [
        (lambda y, q: (y.replace("llm_input_size: 16", "llm_input_size: 32"), q), "llm_input_size"),
        (lambda y, q: (y.replace("in_channels: 320", "in_channels: 300"), q), "in_channels 300"),
        (lambda y, q: (y.replace("hop_size: 480", "hop_size: 512"), q), "hop_size 512"),
        (lambda y, q: (y.replace("\nllm:", "\nnot_llm:"), q), "missing top-level 'llm'"),
        (lambda y, q: (y.replace("generator: !ref <hift>", "generator: !ref <hifx>"), q), "no such key"),
        (lambda y, q: (y, q.replace('"silu"', '"gelu"')), "hidden_act"),
        (lambda y, q: (y, q.replace('"num_key_value_heads": 1', '"num_key_value_heads": 3')), "multiple"),
    ],
)
def test_inconsistent_configs_are_rejected(tmp_path, edit, msg):
    y, q = edit(presets.yaml_text("tiny"), presets.qwen_config_json("tiny"))
    with pytest.raises(config.ConfigError, match=msg):
        config.load_model_dir(_write_dir(tmp_path, y, q))


def test_missing_config_json_is_named(tmp_path):
    (tmp_path / "cosyvoice2.yaml").write_text(presets.yaml_text("tiny"))
    with pytest.raises(config.ConfigError, match="missing file: .*CosyVoice-BlankEN/config.json"):
        config.load_model_dir(str(tmp_path))
    os.remove(tmp_path / "cosyvoice2.yaml")
    with pytest.raises(config.ConfigError, match="missing file: .*cosyvoice2.yaml"):
        config.load_model_dir(str(tmp_path))
