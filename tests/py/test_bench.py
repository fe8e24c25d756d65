"""Self-test of the benchmark harness (tools/bench/bench.py, tools/bench/bench_eager.py) on the tiny random bundle.

The eager baseline must compute what the bundle's TorchScript computes (same weights, same algorithm),
the sampler must follow docs/cosyvoice2.md §3.5, and tools/bench/bench.py must produce its JSON both when the daemon's
engine serves and when it cannot load the bundle. Runs in seconds.
"""

import json
import os
import xml.etree.ElementTree as ET
import shutil
import subprocess
import sys

import pytest
import torch

from conftest import REPO

sys.path.insert(0, os.path.join(REPO, "tools", "bench"))

import bench_eager as BE  # noqa: E402

DAEMON = os.environ.get("CVTEST_BIN") or os.path.join(REPO, "build", "cosyvoiced")


def test_eager_equals_script_greedy(tiny_bundle, unoptimized_jit):
    path = tiny_bundle[0]
    eager = BE.Pipeline(path, "cpu", "eager", greedy=True)
    script = BE.Pipeline(path, "cpu", "script", greedy=True)
    assert not isinstance(eager.model, torch.jit.ScriptModule)
    assert isinstance(script.model, torch.jit.ScriptModule)
    text = "The weather is lovely today."
    ue = eager.synthesize(text, seed=3)
    us = script.synthesize(text, seed=3)
    n_ids = len(eager.front.encode(text))
    assert ue.speech_tokens == us.speech_tokens
    assert 0 < ue.tokens <= 20 * n_ids
    assert ue.wav.numel() == ue.tokens * 2 * 480
    assert torch.allclose(ue.wav, us.wav, atol=1e-4)


def test_eager_sampling_is_seeded(tiny_bundle):
    p = BE.Pipeline(tiny_bundle[0], "cpu", "eager")
    ids = p.front.encode("你好，世界。")
    a = p.llm_tokens(ids, seed=5)
    b = p.llm_tokens(ids, seed=5)
    c = p.llm_tokens(ids, seed=6)
    assert a == b
    assert a != c
    # only EOS is masked below 2n (docs/cosyvoice2.md §3.5): 6562/6563 may still stop early; never emitted, at most 20n
    assert 0 < len(a) <= 20 * len(ids)
    assert all(0 <= t < 6561 for t in a + c)


def test_nucleus_and_ras():
    g = torch.Generator().manual_seed(0)
    s = {"top_p": 0.8, "top_k": 25, "win_size": 10, "tau_r": 0.1}
    # one token holds 90 %: the nucleus is that token alone
    p = torch.full((10,), 0.1 / 9)
    p[4] = 0.9
    logp = p.log()
    assert {BE.nucleus(logp, 0.8, 25, g) for _ in range(50)} == {4}
    # top-k 1 is the arg-max
    q = torch.softmax(torch.randn(100, generator=g), 0).log()
    assert BE.nucleus(q, 0.8, 1, g) == int(q.argmax())
    # the repetition fallback never returns the repeated token (HEAD: it is removed)
    picks = {BE.ras_sample(logp.clone(), [4], s, g) for _ in range(50)}
    assert 4 not in picks and picks <= set(range(10))


def test_split_paragraph():
    zh, lang = BE.normalize("第一句话。第二句话！第三句")
    assert lang == "zh"
    assert BE.split_paragraph(zh, lang, len, token_max_n=4, token_min_n=3, merge_len=1) == ["第一句话。", "第二句话！",
                                                                                          "第三句。"]
    en, lang = BE.normalize("  Hello there. How are you")
    assert lang == "en"
    assert BE.split_paragraph(en, lang, len) == ["Hello there. How are you."]


def _bench(args, tmp_path):
    out = tmp_path / "bench.json"
    cmd = [sys.executable, os.path.join(REPO, "tools", "bench", "bench.py"), "--out", str(out), "--daemon", DAEMON] + args
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    with open(out, encoding="utf-8") as f:
        return json.load(f), p.stdout


def test_bench_harness_with_espeak_daemon(tiny_bundle, tmp_path):
    doc, text = _bench(["--bundle", tiny_bundle[0], "--case-ids", "en_short", "--runs", "2", "--concurrency", "1,2",
                        "--conc-runs", "1", "--growth-requests", "3", "--engine-espeak"], tmp_path)
    assert doc["eager"]["available"] and doc["engine"]["available"]
    case = doc["cases"][0]
    assert case["id"] == "en_short"
    assert case["eager"]["total_ms"]["n"] == 2 and case["engine"]["total_ms"]["n"] == 2
    assert case["eager"]["audio_s"]["mean"] > 0 and case["engine"]["audio_s"]["mean"] > 0
    assert case["speedup"] == pytest.approx(case["eager"]["total_ms"]["mean"] / case["engine"]["total_ms"]["mean"])
    assert case["engine"]["stream"]["ok"] and case["engine"]["stream"]["trailers"]
    assert "synth" in case["engine"]["stages_ms"]
    assert [(c["concurrency"], c["stream"], c["requests"], c["errors"]) for c in doc["engine"]["concurrency"]] == [
        (1, False, 1, 0), (1, True, 1, 0), (2, False, 2, 0), (2, True, 2, 0)]
    assert doc["engine"]["rss_peak_bytes"] > 0 and doc["eager"]["rss_peak_bytes"] > 0
    assert "en_short" in text and "speed-up" in text
    mg = doc["engine"]["memory_growth"]
    assert mg["requests"] == 3 and mg["errors"] == 0
    assert mg["after_first_request"]["rss_bytes"] > 0 and mg["after"]["rss_bytes"] > 0
    assert "memory growth (en_short, 0 errors)" in text
    # the machine, the decode floor and the streamed TTFA median are recorded; the chart is beside the JSON
    m = doc["machine"]
    with open("/proc/cpuinfo", encoding="utf-8") as f:
        flags = next(ln for ln in f if ln.startswith("flags")).split(":", 1)[1].split()
    assert set(m["cpu_flags"]) <= set(flags) and ("avx512_bf16" in m["cpu_flags"]) == ("avx512_bf16" in flags)
    assert m["cores_usable"] >= 1 and m["memory_bytes"] > 2**30 and m["torch"] == torch.__version__
    fl = doc["eager"]["weight_stream_floor"]
    n_bytes = sum(p.numel() * p.element_size() for n, p in BE.load_model(tiny_bundle[0])[0].llm.named_parameters()
                  if "embed" not in n)
    assert fl["bytes"] == n_bytes and fl["ms"] > 0 and "decode floor:" in text
    assert case["engine"]["ttfa_ms"]["n"] == 2
    svg = ET.parse(str(tmp_path / "bench.svg")).getroot()
    bars = [r for r in svg.iter("{http://www.w3.org/2000/svg}rect") if r.find("{http://www.w3.org/2000/svg}title")
            is not None]
    titles = sorted(r.find("{http://www.w3.org/2000/svg}title").text.split(":")[0] for r in bars)
    assert titles == ["eager PyTorch fp32 cpu en_short", "engine fp32 cpu en_short", "engine fp32 cpu en_short"]


def test_chart_bars_scale_with_values(tmp_path):
    """Two result files in one chart: one bar per series and case, heights proportional to the medians."""
    def doc(dtype, rtfs):
        return {"date": "d", "runs": 3, "device": "cpu", "machine": {"description": "m"},
                "bundle": {"dtype": dtype, "size": "random full"}, "engine": {"available": True},
                "eager": {"available": True},
                "cases": [{"id": cid, "engine": {"rtf": {"n": 3, "median": r}, "ttfa_ms": {"n": 3, "median": 1000 * r}},
                           "eager": {"rtf": {"n": 3, "median": 2 * r}}} for cid, r in rtfs.items()]}
    sys.path.insert(0, os.path.join(REPO, "tools", "bench"))
    import chart
    out = tmp_path / "c.svg"
    chart.write_svg([doc("fp32", {"en_short": 2.0, "zh_short": 1.0}), doc("bf16", {"en_short": 1.0})], str(out))
    ns = "{http://www.w3.org/2000/svg}"
    bars = {r.find(ns + "title").text: float(r.get("height")) for r in ET.parse(str(out)).getroot().iter(ns + "rect")
            if r.find(ns + "title") is not None}
    rtf = {k.split(": ")[0]: v for k, v in bars.items() if not k.endswith("ms") and float(k.split(": ")[1]) < 10}
    assert rtf["engine fp32 cpu en_short"] == pytest.approx(2 * rtf["engine fp32 cpu zh_short"])
    assert rtf["eager PyTorch fp32 cpu en_short"] == pytest.approx(2 * rtf["engine fp32 cpu en_short"])
    assert rtf["engine bf16 cpu en_short"] == pytest.approx(rtf["engine fp32 cpu zh_short"])
    assert "engine bf16 cpu zh_short" not in rtf  # not measured: no bar
    assert len(bars) == 6 + 3  # RTF: 2 cases x 2 sides in fp32, 1 x 2 in bf16; TTFA: engines only


def test_bench_reports_engine_unavailable(tiny_bundle, tmp_path):
    bad = tmp_path / "bad-bundle"
    shutil.copytree(tiny_bundle[0], bad)
    with open(bad / "model.ts", "r+b") as f:  # a corrupt model: no engine can load it
        f.write(b"\0" * 64)
    doc, text = _bench(["--bundle", str(bad), "--case-ids", "zh_short", "--runs", "1", "--no-eager"], tmp_path)
    assert doc["engine"]["available"] is False
    assert doc["engine"]["reason"].startswith("daemon exited with status") or "failed" in doc["engine"]["reason"]
    assert doc["cases"][0]["engine"] is None
    assert "engine: unavailable:" in text
