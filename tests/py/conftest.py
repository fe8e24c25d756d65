"""Shared fixtures of the exporter tests (run: make test-export, or $(tools/dev/torch-venv.sh) -m pytest tests/py).

The tiny random model directory and its bundles are built once per session; everything else is
generated inside the tests. The BlankEN tokenizer files come from models/CosyVoice-BlankEN
(relative to the repository root), or from $CV_TOKENIZER_DIR.
"""

import os
import sys
import warnings

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tools", "export"))

from cosyvoice2 import bundle, config, hyperyaml, presets, randmodel  # noqa: E402


def pytest_configure(config):
    # torch 2.x marks torch.jit.script/load as deprecated (still supported); keep the output readable
    # (a FutureWarning in torch 2.15, a DeprecationWarning in 2.11)
    config.addinivalue_line("filterwarnings", "ignore:.*is deprecated:FutureWarning")
    config.addinivalue_line("filterwarnings", "ignore:.*is deprecated:DeprecationWarning")


@pytest.fixture
def unoptimized_jit():
    """The profiling graph executor re-profiles and re-optimizes every new input shape, which costs seconds
    per call on this 2-core machine; tests that only check numerics of the same graphs run unoptimized.
    (Freezing needs the optimizing executor: turn it back on around torch.jit.freeze.)"""
    import torch

    old = torch._C._get_graph_executor_optimize()
    torch._C._set_graph_executor_optimize(False)
    yield
    torch._C._set_graph_executor_optimize(old)


def tokenizer_dir():
    return randmodel.default_tokenizer_dir()


def preset_config(preset, tmp_path_factory):
    """ModelConfig of a preset, read through the same files a model dir has (no weights)."""
    d = tmp_path_factory.mktemp(f"cfg_{preset}")
    q = os.path.join(str(d), "CosyVoice-BlankEN")
    os.makedirs(q)
    with open(os.path.join(q, "config.json"), "w") as f:
        f.write(presets.qwen_config_json(preset))
    with open(os.path.join(str(d), "cosyvoice2.yaml"), "w") as f:
        f.write(presets.yaml_text(preset))
    return config.load_model_dir(str(d))


@pytest.fixture(scope="session")
def full_config(tmp_path_factory):
    return preset_config("full", tmp_path_factory)


@pytest.fixture(scope="session")
def tiny_config(tmp_path_factory):
    return preset_config("tiny", tmp_path_factory)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("tiny_model"))
    randmodel.make(d, "tiny", seed=7, log=lambda s: None)
    return d


@pytest.fixture(scope="session")
def tiny_bundle(tiny_model_dir, tmp_path_factory):
    out = os.path.join(str(tmp_path_factory.mktemp("bundles")), "tiny-fp32")
    logs = []
    m = bundle.export(tiny_model_dir, out, "fp32", random_preset="tiny", log=logs.append)
    return out, m, logs


@pytest.fixture(scope="session")
def tiny_bundle_fp16(tiny_model_dir, tmp_path_factory):
    out = os.path.join(str(tmp_path_factory.mktemp("bundles16")), "tiny-fp16")
    m = bundle.export(tiny_model_dir, out, "fp16", random_preset="tiny", log=lambda s: None)
    return out, m


@pytest.fixture(scope="session")
def tiny_bundle_bf16(tiny_model_dir, tmp_path_factory):
    out = os.path.join(str(tmp_path_factory.mktemp("bundlesbf16")), "tiny-bf16")
    m = bundle.export(tiny_model_dir, out, "bf16", random_preset="tiny", log=lambda s: None)
    return out, m
