"""CUDA cases of the exporter's model code (run by tools/release/gpu-check.sh on a GPU machine: pytest tests/gpu).

Not collected by `make test` (tests/py): this machine class has no GPU, and a test that skips is no test.
Here a missing GPU is a failure.

* llm_decode_at, the fixed-shape decode step, captures as a CUDA graph and the replays give the
  log-probabilities of llm_decode_one, for every position of a sequence (one capture, many replays).
* flow_inference (10 CFM steps with CFG, buffered and streaming) runs without a host synchronization
  (torch's sync debug mode "error" raises on any device-to-host copy, .item() or data-dependent shape);
  hift_inference syncs at most once per call: torch.istft's own window-envelope check, at the very end of
  the vocoder, just before the caller copies the waveform to the host anyway.
"""

import os
import sys
import warnings

import pytest
import torch

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tools", "export"))
from cosyvoice2 import bundle  # noqa: E402
BUNDLE = os.environ.get("COSYVOICE2_TEST_BUNDLE") or os.path.join(REPO, "build", "tiny-bundle")


@pytest.fixture(scope="module")
def model():
    assert torch.cuda.is_available(), "tests/gpu needs a CUDA device (torch.cuda.is_available() is False)"
    path = os.path.join(BUNDLE, "model.ts")
    assert os.path.exists(path), f"{path} missing: export the tiny bundle first (make tiny-bundle)"
    torch._C._set_graph_executor_optimize(False)  # as the daemon runs it
    m = bundle.load_model(BUNDLE, "cuda")  # the text table stays on the host, as in the daemon
    m.eval()
    return m


def test_cuda_graph_decode_at_equals_decode_one(model):
    g = torch.Generator().manual_seed(3)
    text = torch.randint(0, 151646, (1, 9), generator=g).cuda()
    prompt = torch.randint(0, 6561, (1, 12), generator=g).cuda()
    toks = torch.randint(0, 6561, (1, 20), generator=g).cuda()
    with torch.inference_mode():
        k, v = model.llm_new_cache(256)
        ke, ve = model.llm_new_cache(256)
        model.llm_prefill(text, prompt, k, v)
        model.llm_prefill(text, prompt, ke, ve)
        pos0 = 9 + 12 + 2
        tok_t = torch.zeros(1, 1, dtype=torch.int64, device="cuda")
        pos_t = torch.zeros(1, dtype=torch.int64, device="cuda")
        tok_t.fill_(int(toks[0, 0]))
        pos_t.fill_(pos0)
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            for _ in range(3):
                model.llm_decode_at(tok_t, pos_t, k, v)
        torch.cuda.current_stream().wait_stream(s)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = model.llm_decode_at(tok_t, pos_t, k, v)
        got, want = [], []
        for j in range(20):
            tok_t.fill_(int(toks[0, j]))
            pos_t.fill_(pos0 + j)
            graph.replay()
            got.append(out.clone())
            want.append(model.llm_decode_one(toks[:, j: j + 1], pos0 + j, ke, ve))
    torch.testing.assert_close(torch.stack(got), torch.stack(want), rtol=1e-4, atol=1e-4)


def test_flow_and_hift_have_no_host_syncs(model):
    g = torch.Generator().manual_seed(4)
    tok = torch.randint(0, 6561, (1, 60), generator=g).cuda()
    ptok = torch.randint(0, 6561, (1, 10), generator=g).cuda()
    dt = next(model.parameters()).dtype
    pfeat = (torch.randn(1, 20, 80, generator=g) - 5.0).cuda()
    emb = torch.randn(1, 192, generator=g).cuda()
    empty = torch.zeros(1, 1, 0, device="cuda")
    with torch.inference_mode():
        model.flow_inference(tok, ptok, pfeat, emb, False, True)  # first call: allocator, cuBLAS handles
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            mel = model.flow_inference(tok, ptok, pfeat, emb, False, True)
            mel_s = model.flow_inference(tok, ptok, pfeat, emb, True, False)
        finally:
            torch.cuda.set_sync_debug_mode("default")
        model.hift_inference(mel, empty)
        torch.cuda.synchronize()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                wav, _ = model.hift_inference(mel, empty)
            finally:
                torch.cuda.set_sync_debug_mode("default")
    syncs = [w for w in caught if "synchroniz" in str(w.message)]
    assert len(syncs) <= 1, [str(w.message) for w in syncs]
    assert mel.shape == (1, 80, 120) and wav.shape == (1, 120 * 480) and mel_s.shape[2] == 2 * (60 - 3)
    assert torch.isfinite(wav).all(), f"non-finite waveform ({dt})"
