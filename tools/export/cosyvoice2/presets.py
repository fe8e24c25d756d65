"""Size presets and the text of an official-layout ``cosyvoice2.yaml`` / BlankEN ``config.json``.

DESIGN: random-weight models (tools/export/make_random_model.py) must go through exactly the same reading path
as the official files, so this module writes the two configuration files with the official structure
(HyperPyYAML object tags, ``!ref`` cross-references and arithmetic included) and only the sizes changed.
``full`` is the released CosyVoice2-0.5B configuration; ``tiny`` keeps every interface size that other
code depends on (text vocab covering the tokenizer's ids, 6561 speech codes, 80 mel bins, 192-d speaker
vector, 24 kHz and 480 samples per mel frame) and shrinks everything else.
"""

from __future__ import annotations

import json

PRESETS = {
    "full": {
        "qwen": dict(
            hidden_size=896,
            intermediate_size=4864,
            num_hidden_layers=24,
            num_attention_heads=14,
            num_key_value_heads=2,
            vocab_size=151936,
            max_position_embeddings=32768,
            rope_theta=1000000.0,
            rms_norm_eps=1e-06,
        ),
        "flow_input_size": 512,
        "enc_output_size": 512,
        "enc_heads": 8,
        "enc_linear_units": 2048,
        "enc_num_blocks": 6,
        "est_channels": 256,
        "est_head_dim": 64,
        "est_n_blocks": 4,
        "est_mid_blocks": 12,
        "est_heads": 8,
        "hift_base_channels": 512,
        "f0_cond_channels": 512,
    },
    "tiny": {
        "qwen": dict(
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=1,
            vocab_size=151936,
            max_position_embeddings=32768,
            rope_theta=1000000.0,
            rms_norm_eps=1e-06,
        ),
        "flow_input_size": 32,
        "enc_output_size": 32,
        "enc_heads": 2,
        "enc_linear_units": 64,
        "enc_num_blocks": 2,
        "est_channels": 32,
        "est_head_dim": 8,
        "est_n_blocks": 1,
        "est_mid_blocks": 2,
        "est_heads": 2,
        "hift_base_channels": 16,
        "f0_cond_channels": 16,
    },
}


def qwen_config_json(preset: str) -> str:
    q = PRESETS[preset]["qwen"]
    d = {
        "architectures": ["Qwen2ForCausalLM"],
        "attention_dropout": 0.0,
        "bos_token_id": 151643,
        "eos_token_id": 151643,
        "hidden_act": "silu",
        "hidden_size": q["hidden_size"],
        "initializer_range": 0.02,
        "intermediate_size": q["intermediate_size"],
        "max_position_embeddings": q["max_position_embeddings"],
        "max_window_layers": q["num_hidden_layers"],
        "model_type": "qwen2",
        "num_attention_heads": q["num_attention_heads"],
        "num_hidden_layers": q["num_hidden_layers"],
        "num_key_value_heads": q["num_key_value_heads"],
        "rms_norm_eps": q["rms_norm_eps"],
        "rope_theta": q["rope_theta"],
        "sliding_window": q["max_position_embeddings"],
        "tie_word_embeddings": True,
        "torch_dtype": "bfloat16",
        "transformers_version": "4.40.1",
        "use_cache": True,
        "use_sliding_window": False,
        "vocab_size": q["vocab_size"],
    }
    return json.dumps(d, indent=2) + "\n"


_YAML = """\
# set random seed, so that you may reproduce your result.
__set_seed1: !apply:random.seed [1986]
__set_seed2: !apply:numpy.random.seed [1986]
__set_seed3: !apply:torch.manual_seed [1986]
__set_seed4: !apply:torch.cuda.manual_seed_all [1986]

# fixed params
sample_rate: 24000
llm_input_size: {hidden}
llm_output_size: {hidden}
spk_embed_dim: 192
qwen_pretrain_path: ''
token_frame_rate: 25
token_mel_ratio: 2

# stream related params
chunk_size: 25 # streaming inference chunk size, in token
num_decoding_left_chunks: -1 # streaming inference flow decoder left chunk context, <0 means use all left chunks

# model params ({preset} preset written by tools/export/make_random_model.py; structure of the released file)
llm: !new:cosyvoice.llm.llm.Qwen2LM
    llm_input_size: !ref <llm_input_size>
    llm_output_size: !ref <llm_output_size>
    speech_token_size: 6561
    length_normalized_loss: True
    lsm_weight: 0
    mix_ratio: [5, 15]
    llm: !new:cosyvoice.llm.llm.Qwen2Encoder
        pretrain_path: !ref <qwen_pretrain_path>
    sampling: !name:cosyvoice.utils.common.ras_sampling
        top_p: 0.8
        top_k: 25
        win_size: 10
        tau_r: 0.1

flow: !new:cosyvoice.flow.flow.CausalMaskedDiffWithXvec
    input_size: {flow_input_size}
    output_size: 80
    spk_embed_dim: !ref <spk_embed_dim>
    output_type: 'mel'
    vocab_size: 6561
    input_frame_rate: !ref <token_frame_rate>
    only_mask_loss: True
    token_mel_ratio: !ref <token_mel_ratio>
    pre_lookahead_len: 3
    encoder: !new:cosyvoice.transformer.upsample_encoder.UpsampleConformerEncoder
        output_size: {enc_output_size}
        attention_heads: {enc_heads}
        linear_units: {enc_linear_units}
        num_blocks: {enc_num_blocks}
        dropout_rate: 0.1
        positional_dropout_rate: 0.1
        attention_dropout_rate: 0.1
        normalize_before: True
        input_layer: 'linear'
        pos_enc_layer_type: 'rel_pos_espnet'
        selfattention_layer_type: 'rel_selfattn'
        input_size: {flow_input_size}
        use_cnn_module: False
        macaron_style: False
        static_chunk_size: !ref <chunk_size>
    decoder: !new:cosyvoice.flow.flow_matching.CausalConditionalCFM
        in_channels: 240
        n_spks: 1
        spk_emb_dim: 80
        cfm_params: !new:omegaconf.DictConfig
            content:
                sigma_min: 1e-06
                solver: 'euler'
                t_scheduler: 'cosine'
                training_cfg_rate: 0.2
                inference_cfg_rate: 0.7
                reg_loss_type: 'l1'
        estimator: !new:cosyvoice.flow.decoder.CausalConditionalDecoder
            in_channels: 320
            out_channels: 80
            channels: [{est_channels}]
            dropout: 0.0
            attention_head_dim: {est_head_dim}
            n_blocks: {est_n_blocks}
            num_mid_blocks: {est_mid_blocks}
            num_heads: {est_heads}
            act_fn: 'gelu'
            static_chunk_size: !ref <chunk_size> * <token_mel_ratio>
            num_decoding_left_chunks: !ref <num_decoding_left_chunks>

hift: !new:cosyvoice.hifigan.generator.HiFTGenerator
    in_channels: 80
    base_channels: {hift_base_channels}
    nb_harmonics: 8
    sampling_rate: !ref <sample_rate>
    nsf_alpha: 0.1
    nsf_sigma: 0.003
    nsf_voiced_threshold: 10
    upsample_rates: [8, 5, 3]
    upsample_kernel_sizes: [16, 11, 7]
    istft_params:
        n_fft: 16
        hop_len: 4
    resblock_kernel_sizes: [3, 7, 11]
    resblock_dilation_sizes: [[1, 3, 5], [1, 3, 5], [1, 3, 5]]
    source_resblock_kernel_sizes: [7, 7, 11]
    source_resblock_dilation_sizes: [[1, 3, 5], [1, 3, 5], [1, 3, 5]]
    lrelu_slope: 0.1
    audio_limit: 0.99
    f0_predictor: !new:cosyvoice.hifigan.f0_predictor.ConvRNNF0Predictor
        num_class: 1
        in_channels: 80
        cond_channels: {f0_cond_channels}

# gan related module
mel_spec_transform1: !name:matcha.utils.audio.mel_spectrogram
    n_fft: 1024
    num_mels: 80
    sampling_rate: !ref <sample_rate>
    hop_size: 256
    win_size: 1024
    fmin: 0
    fmax: null
    center: False
hifigan: !new:cosyvoice.hifigan.hifigan.HiFiGan
    generator: !ref <hift>
    discriminator: !new:cosyvoice.hifigan.discriminator.MultipleDiscriminator
        mpd: !new:matcha.hifigan.models.MultiPeriodDiscriminator
        mrd: !new:cosyvoice.hifigan.discriminator.MultiResolutionDiscriminator
    mel_spec_transform: [
        !ref <mel_spec_transform1>
    ]

# processor functions
get_tokenizer: !name:cosyvoice.tokenizer.tokenizer.get_qwen_tokenizer
    token_path: !ref <qwen_pretrain_path>
    skip_special_tokens: True
allowed_special: 'all'
tokenize: !name:cosyvoice.dataset.processor.tokenize
    get_tokenizer: !ref <get_tokenizer>
    allowed_special: !ref <allowed_special>
feat_extractor: !name:matcha.utils.audio.mel_spectrogram
    n_fft: 1920
    num_mels: 80
    sampling_rate: !ref <sample_rate>
    hop_size: 480
    win_size: 1920
    fmin: 0
    fmax: 8000
    center: False
compute_fbank: !name:cosyvoice.dataset.processor.compute_fbank
    feat_extractor: !ref <feat_extractor>
parse_embedding: !name:cosyvoice.dataset.processor.parse_embedding
    normalize: True
data_pipeline: [
    !ref <tokenize>,
    !ref <compute_fbank>,
    !ref <parse_embedding>,
]

# llm flow train conf
train_conf:
    optim: adam
    optim_conf:
        lr: 1e-5
    scheduler: constantlr
    max_epoch: 200
    grad_clip: 5
    accum_grad: 2
"""


def yaml_text(preset: str) -> str:
    p = PRESETS[preset]
    return _YAML.format(
        preset=preset,
        hidden=p["qwen"]["hidden_size"],
        **{k: v for k, v in p.items() if k != "qwen"},
    )
