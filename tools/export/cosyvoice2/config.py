"""Model sizes and constants of a CosyVoice2 model directory, read the way the reference reads them.

DESIGN: every size comes from the model directory (``cosyvoice2.yaml`` for the CosyVoice parts,
``CosyVoice-BlankEN/config.json`` for the Qwen2 backbone), so a fine-tuned or smaller CosyVoice2-shaped
checkpoint exports with the same code. What the reference hard-codes in its classes (not in the yaml) is
kept here as the reference's defaults, named once (docs/cosyvoice2.md §11): up-encoder depth 4, upsample stride 2, the
3-token pre-lookahead, 10 CFM steps. The strict loader then cross-checks every size against the
checkpoint shapes (keys.py lists what the sizes imply; load.py compares).

The parsed sections are also kept as plain dicts (``ModelConfig.flow_args`` / ``hift_args``) so the flow
and HiFT modules can take exactly the yaml constructor arguments.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any

from . import hyperyaml
from .hyperyaml import Tagged

YAML_NAME = "cosyvoice2.yaml"
QWEN_DIR = "CosyVoice-BlankEN"

# Reference class defaults that are not in the yaml (docs/cosyvoice2.md §4.2, §4.3, §11).
UP_ENCODER_BLOCKS = 4
UPSAMPLE_STRIDE = 2
CFM_STEPS = 10
CFM_NOISE_FRAMES = 15000
CFM_NOISE_SEED = 0


class ConfigError(ValueError):
    pass


def _req(d: Any, key: str, where: str) -> Any:
    if isinstance(d, Tagged):
        d = d.args
    if not isinstance(d, dict) or key not in d:
        raise ConfigError(f"{where}: missing '{key}'")
    return d[key]


def _args(v: Any, where: str) -> dict:
    if isinstance(v, Tagged):
        v = v.args
    if not isinstance(v, dict):
        raise ConfigError(f"{where}: expected a mapping")
    return v


@dataclass(frozen=True)
class QwenConfig:
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    rms_norm_eps: float
    rope_theta: float
    max_position_embeddings: int
    tie_word_embeddings: bool

    @staticmethod
    def from_json(path: str) -> "QwenConfig":
        try:
            with open(path, encoding="utf-8") as f:
                j = json.load(f)
        except FileNotFoundError:
            raise ConfigError(f"missing file: {path}") from None
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path}: not JSON: {e}") from None
        where = os.path.basename(os.path.dirname(path)) + "/config.json"
        act = j.get("hidden_act", "silu")
        if act != "silu":
            raise ConfigError(f"{where}: hidden_act {act!r} (Qwen2LM uses silu)")
        if j.get("use_sliding_window", False):
            raise ConfigError(f"{where}: use_sliding_window is set (not supported; CosyVoice2 does not use it)")
        hidden = int(_req(j, "hidden_size", where))
        heads = int(_req(j, "num_attention_heads", where))
        kv = int(j.get("num_key_value_heads", heads))
        head_dim = int(j.get("head_dim") or hidden // heads)
        if heads % kv:
            raise ConfigError(f"{where}: num_attention_heads {heads} not a multiple of num_key_value_heads {kv}")
        if head_dim % 2:
            raise ConfigError(f"{where}: head_dim {head_dim} is odd (RoPE needs even)")
        rope_scaling = j.get("rope_scaling")
        if rope_scaling not in (None, {}):
            raise ConfigError(f"{where}: rope_scaling {rope_scaling!r} not supported")
        return QwenConfig(
            hidden_size=hidden,
            num_layers=int(_req(j, "num_hidden_layers", where)),
            num_heads=heads,
            num_kv_heads=kv,
            head_dim=head_dim,
            intermediate_size=int(_req(j, "intermediate_size", where)),
            vocab_size=int(_req(j, "vocab_size", where)),
            rms_norm_eps=float(j.get("rms_norm_eps", 1e-6)),
            rope_theta=float(j.get("rope_theta", 10000.0)),
            max_position_embeddings=int(j.get("max_position_embeddings", 32768)),
            tie_word_embeddings=bool(j.get("tie_word_embeddings", True)),
        )


@dataclass(frozen=True)
class LLMConfig:
    qwen: QwenConfig
    llm_input_size: int
    llm_output_size: int
    speech_token_size: int
    mix_ratio: tuple
    top_p: float
    top_k: int
    win_size: int
    tau_r: float

    @property
    def speech_vocab(self) -> int:
        """Rows of speech_embedding / classes of llm_decoder: codes + EOS + unused + fill."""
        return self.speech_token_size + 3


@dataclass(frozen=True)
class FlowConfig:
    input_size: int
    output_size: int  # mel bins
    spk_embed_dim: int
    vocab_size: int
    token_mel_ratio: int
    pre_lookahead_len: int
    enc_input_size: int
    enc_output_size: int
    enc_heads: int
    enc_linear_units: int
    enc_num_blocks: int
    enc_up_blocks: int
    enc_static_chunk_size: int
    est_in_channels: int
    est_out_channels: int
    est_channels: tuple
    est_attention_head_dim: int
    est_n_blocks: int
    est_num_mid_blocks: int
    est_num_heads: int
    est_act_fn: str
    est_static_chunk_size: int
    inference_cfg_rate: float
    sigma_min: float
    t_scheduler: str


@dataclass(frozen=True)
class HiftConfig:
    in_channels: int
    base_channels: int
    nb_harmonics: int
    sampling_rate: int
    nsf_alpha: float
    nsf_sigma: float
    nsf_voiced_threshold: float
    upsample_rates: tuple
    upsample_kernel_sizes: tuple
    istft_n_fft: int
    istft_hop_len: int
    resblock_kernel_sizes: tuple
    resblock_dilation_sizes: tuple
    source_resblock_kernel_sizes: tuple
    source_resblock_dilation_sizes: tuple
    lrelu_slope: float
    audio_limit: float
    f0_num_class: int
    f0_in_channels: int
    f0_cond_channels: int

    @property
    def samples_per_frame(self) -> int:
        n = self.istft_hop_len
        for r in self.upsample_rates:
            n *= r
        return n


@dataclass(frozen=True)
class MelConfig:
    n_fft: int
    num_mels: int
    sampling_rate: int
    hop_size: int
    win_size: int
    fmin: float
    fmax: float | None
    center: bool


@dataclass
class ModelConfig:
    sample_rate: int
    token_frame_rate: int
    token_mel_ratio: int
    chunk_size: int  # streaming chunk in tokens (token_hop_len must equal it)
    llm: LLMConfig
    flow: FlowConfig
    hift: HiftConfig
    mel: MelConfig
    # yaml constructor arguments (Tagged records left in place for nested objects)
    flow_args: dict = field(repr=False, default_factory=dict)
    hift_args: dict = field(repr=False, default_factory=dict)
    llm_args: dict = field(repr=False, default_factory=dict)

    def as_json(self) -> dict:
        d = {
            "sample_rate": self.sample_rate,
            "token_frame_rate": self.token_frame_rate,
            "token_mel_ratio": self.token_mel_ratio,
            "chunk_size": self.chunk_size,
            "llm": asdict(self.llm),
            "flow": asdict(self.flow),
            "hift": asdict(self.hift),
            "mel": asdict(self.mel),
        }
        return json.loads(json.dumps(d))  # tuples -> lists


def _ints(v: Any, where: str) -> tuple:
    if not isinstance(v, (list, tuple)):
        raise ConfigError(f"{where}: expected a list")
    return tuple(int(x) for x in v)


def from_yaml_data(y: dict, qwen: QwenConfig) -> ModelConfig:
    where = YAML_NAME
    for key in ("llm", "flow", "hift"):
        if key not in y:
            raise ConfigError(f"{where}: missing top-level '{key}'")
    sample_rate = int(_req(y, "sample_rate", where))
    token_frame_rate = int(y.get("token_frame_rate", 25))
    token_mel_ratio = int(y.get("token_mel_ratio", 2))
    chunk_size = int(y.get("chunk_size", token_frame_rate))

    # --- LLM ---------------------------------------------------------------------------------------
    llm = _args(y["llm"], f"{where}: llm")
    samp = _args(_req(llm, "sampling", f"{where}: llm"), f"{where}: llm.sampling")
    lcfg = LLMConfig(
        qwen=qwen,
        llm_input_size=int(_req(llm, "llm_input_size", f"{where}: llm")),
        llm_output_size=int(_req(llm, "llm_output_size", f"{where}: llm")),
        speech_token_size=int(_req(llm, "speech_token_size", f"{where}: llm")),
        mix_ratio=_ints(llm.get("mix_ratio", [5, 15]), f"{where}: llm.mix_ratio"),
        top_p=float(samp.get("top_p", 0.8)),
        top_k=int(samp.get("top_k", 25)),
        win_size=int(samp.get("win_size", 10)),
        tau_r=float(samp.get("tau_r", 0.1)),
    )
    if lcfg.llm_input_size != qwen.hidden_size or lcfg.llm_output_size != qwen.hidden_size:
        raise ConfigError(
            f"{where}: llm_input_size/llm_output_size {lcfg.llm_input_size}/{lcfg.llm_output_size} "
            f"differ from {QWEN_DIR}/config.json hidden_size {qwen.hidden_size}"
        )

    # --- flow --------------------------------------------------------------------------------------
    fw = f"{where}: flow"
    flow = _args(y["flow"], fw)
    enc = _args(_req(flow, "encoder", fw), f"{fw}.encoder")
    dec = _args(_req(flow, "decoder", fw), f"{fw}.decoder")
    cfm = _req(dec, "cfm_params", f"{fw}.decoder")
    cfm = _args(cfm, f"{fw}.decoder.cfm_params")
    if "content" in cfm and isinstance(cfm["content"], dict):  # !new:omegaconf.DictConfig {content: ...}
        cfm = cfm["content"]
    est = _args(_req(dec, "estimator", f"{fw}.decoder"), f"{fw}.decoder.estimator")
    enc_out = int(_req(enc, "output_size", f"{fw}.encoder"))
    fcfg = FlowConfig(
        input_size=int(_req(flow, "input_size", fw)),
        output_size=int(_req(flow, "output_size", fw)),
        spk_embed_dim=int(_req(flow, "spk_embed_dim", fw)),
        vocab_size=int(_req(flow, "vocab_size", fw)),
        token_mel_ratio=int(flow.get("token_mel_ratio", token_mel_ratio)),
        pre_lookahead_len=int(flow.get("pre_lookahead_len", 3)),
        enc_input_size=int(enc.get("input_size", enc_out)),
        enc_output_size=enc_out,
        enc_heads=int(enc.get("attention_heads", 4)),
        enc_linear_units=int(enc.get("linear_units", 2048)),
        enc_num_blocks=int(enc.get("num_blocks", 6)),
        enc_up_blocks=UP_ENCODER_BLOCKS,
        enc_static_chunk_size=int(enc.get("static_chunk_size", chunk_size)),
        est_in_channels=int(_req(est, "in_channels", f"{fw}.estimator")),
        est_out_channels=int(_req(est, "out_channels", f"{fw}.estimator")),
        est_channels=_ints(est.get("channels", [256]), f"{fw}.estimator.channels"),
        est_attention_head_dim=int(est.get("attention_head_dim", 64)),
        est_n_blocks=int(est.get("n_blocks", 1)),
        est_num_mid_blocks=int(est.get("num_mid_blocks", 2)),
        est_num_heads=int(est.get("num_heads", 4)),
        est_act_fn=str(est.get("act_fn", "snake")),
        est_static_chunk_size=int(est.get("static_chunk_size", chunk_size * token_mel_ratio)),
        inference_cfg_rate=float(cfm.get("inference_cfg_rate", 0.7)),
        sigma_min=float(cfm.get("sigma_min", 1e-6)),
        t_scheduler=str(cfm.get("t_scheduler", "cosine")),
    )
    if fcfg.enc_input_size != fcfg.input_size:
        raise ConfigError(f"{fw}: encoder input_size {fcfg.enc_input_size} != flow input_size {fcfg.input_size}")
    if fcfg.enc_input_size != fcfg.enc_output_size:
        raise ConfigError(
            f"{fw}.encoder: input_size {fcfg.enc_input_size} != output_size {fcfg.enc_output_size} "
            "(the up-embedding layer is built with input_size and reads the encoder output)"
        )
    if fcfg.enc_output_size % fcfg.enc_heads:
        raise ConfigError(f"{fw}.encoder: output_size {fcfg.enc_output_size} not divisible by attention_heads")
    if fcfg.est_in_channels != 4 * fcfg.output_size:
        raise ConfigError(
            f"{fw}.estimator: in_channels {fcfg.est_in_channels} != 4 x output_size {fcfg.output_size} "
            "(x, mu, spks, cond are concatenated)"
        )
    if len(fcfg.est_channels) != 1:
        raise ConfigError(f"{fw}.estimator: channels {list(fcfg.est_channels)}: only one level (CosyVoice2 shape)")
    if fcfg.token_mel_ratio != UPSAMPLE_STRIDE:
        raise ConfigError(f"{fw}: token_mel_ratio {fcfg.token_mel_ratio} != encoder upsample stride {UPSAMPLE_STRIDE}")

    # --- HiFT --------------------------------------------------------------------------------------
    hw = f"{where}: hift"
    hift = _args(y["hift"], hw)
    istft = _args(_req(hift, "istft_params", hw), f"{hw}.istft_params")
    f0 = _args(_req(hift, "f0_predictor", hw), f"{hw}.f0_predictor")
    hcfg = HiftConfig(
        in_channels=int(_req(hift, "in_channels", hw)),
        base_channels=int(_req(hift, "base_channels", hw)),
        nb_harmonics=int(_req(hift, "nb_harmonics", hw)),
        sampling_rate=int(_req(hift, "sampling_rate", hw)),
        nsf_alpha=float(hift.get("nsf_alpha", 0.1)),
        nsf_sigma=float(hift.get("nsf_sigma", 0.003)),
        nsf_voiced_threshold=float(hift.get("nsf_voiced_threshold", 10)),
        upsample_rates=_ints(_req(hift, "upsample_rates", hw), f"{hw}.upsample_rates"),
        upsample_kernel_sizes=_ints(_req(hift, "upsample_kernel_sizes", hw), f"{hw}.upsample_kernel_sizes"),
        istft_n_fft=int(_req(istft, "n_fft", f"{hw}.istft_params")),
        istft_hop_len=int(_req(istft, "hop_len", f"{hw}.istft_params")),
        resblock_kernel_sizes=_ints(_req(hift, "resblock_kernel_sizes", hw), f"{hw}.resblock_kernel_sizes"),
        resblock_dilation_sizes=tuple(
            _ints(d, f"{hw}.resblock_dilation_sizes") for d in _req(hift, "resblock_dilation_sizes", hw)
        ),
        source_resblock_kernel_sizes=_ints(
            _req(hift, "source_resblock_kernel_sizes", hw), f"{hw}.source_resblock_kernel_sizes"
        ),
        source_resblock_dilation_sizes=tuple(
            _ints(d, f"{hw}.source_resblock_dilation_sizes")
            for d in _req(hift, "source_resblock_dilation_sizes", hw)
        ),
        lrelu_slope=float(hift.get("lrelu_slope", 0.1)),
        audio_limit=float(hift.get("audio_limit", 0.99)),
        f0_num_class=int(f0.get("num_class", 1)),
        f0_in_channels=int(f0.get("in_channels", 80)),
        f0_cond_channels=int(f0.get("cond_channels", 512)),
    )
    if len(hcfg.upsample_rates) != len(hcfg.upsample_kernel_sizes):
        raise ConfigError(f"{hw}: upsample_rates and upsample_kernel_sizes differ in length")
    if len(hcfg.source_resblock_kernel_sizes) != len(hcfg.upsample_rates):
        raise ConfigError(f"{hw}: one source resblock per upsampling stage expected")
    if hcfg.sampling_rate != sample_rate:
        raise ConfigError(f"{hw}: sampling_rate {hcfg.sampling_rate} != sample_rate {sample_rate}")
    if hcfg.in_channels != fcfg.output_size:
        raise ConfigError(f"{hw}: in_channels {hcfg.in_channels} != flow output_size {fcfg.output_size}")

    # --- prompt mel front end ----------------------------------------------------------------------
    fe = _args(_req(y, "feat_extractor", where), f"{where}: feat_extractor")
    mcfg = MelConfig(
        n_fft=int(_req(fe, "n_fft", "feat_extractor")),
        num_mels=int(_req(fe, "num_mels", "feat_extractor")),
        sampling_rate=int(_req(fe, "sampling_rate", "feat_extractor")),
        hop_size=int(_req(fe, "hop_size", "feat_extractor")),
        win_size=int(_req(fe, "win_size", "feat_extractor")),
        fmin=float(fe.get("fmin", 0)),
        fmax=None if fe.get("fmax") is None else float(fe["fmax"]),
        center=bool(fe.get("center", False)),
    )
    if mcfg.num_mels != fcfg.output_size:
        raise ConfigError(f"{where}: feat_extractor num_mels {mcfg.num_mels} != flow output_size {fcfg.output_size}")
    if mcfg.hop_size != hcfg.samples_per_frame:
        raise ConfigError(
            f"{where}: feat_extractor hop_size {mcfg.hop_size} != HiFT samples per frame {hcfg.samples_per_frame}"
        )
    return ModelConfig(
        sample_rate=sample_rate,
        token_frame_rate=token_frame_rate,
        token_mel_ratio=token_mel_ratio,
        chunk_size=chunk_size,
        llm=lcfg,
        flow=fcfg,
        hift=hcfg,
        mel=mcfg,
        flow_args=flow,
        hift_args=hift,
        llm_args=llm,
    )


def load_model_dir(model_dir: str) -> ModelConfig:
    """Read ``cosyvoice2.yaml`` and ``CosyVoice-BlankEN/config.json`` of a model directory."""
    ypath = os.path.join(model_dir, YAML_NAME)
    if not os.path.isfile(ypath):
        raise ConfigError(f"missing file: {ypath}")
    qdir = os.path.join(model_dir, QWEN_DIR)
    try:
        y = hyperyaml.load(ypath, overrides={"qwen_pretrain_path": qdir})
    except hyperyaml.HyperYamlError as e:
        raise ConfigError(f"{ypath}: {e}") from None
    qwen = QwenConfig.from_json(os.path.join(qdir, "config.json"))
    return from_yaml_data(y, qwen)
