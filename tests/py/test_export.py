"""Tiny random model directory -> bundle, end to end: files, manifest hashes, TorchScript round trip
against the eager modules, speakers, tokenizer, errors for incomplete model directories."""

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from safetensors import safe_open

from cosyvoice2 import bundle, config, load, randmodel, speakers

from conftest import REPO, tokenizer_dir

pytestmark = pytest.mark.usefixtures("unoptimized_jit")


def eager_modules(model_dir):
    cfg = config.load_model_dir(model_dir)
    states = {
        "llm": load.llm_module_state(load.read_state_dict(os.path.join(model_dir, "llm.pt")), cfg),
        "flow": load.flow_module_state(load.read_state_dict(os.path.join(model_dir, "flow.pt")), cfg),
        "hift": load.hift_module_state(load.read_state_dict(os.path.join(model_dir, "hift.pt")), cfg),
    }
    return cfg, bundle.build_modules(cfg, states)


def test_random_model_dir_has_the_official_layout(tiny_model_dir):
    for f in bundle.REQUIRED_FILES + ["spk2info.pt", "CosyVoice-BlankEN/tokenizer_config.json"]:
        assert os.path.isfile(os.path.join(tiny_model_dir, f)), f
    total = sum(os.path.getsize(os.path.join(tiny_model_dir, f)) for f in ("llm.pt", "flow.pt", "hift.pt"))
    assert total < 20e6  # "a few MB"
    with open(os.path.join(tiny_model_dir, "cosyvoice2.yaml")) as f:
        y = f.read()
    assert "!new:cosyvoice.llm.llm.Qwen2LM" in y and "!ref <chunk_size> * <token_mel_ratio>" in y


def test_bundle_files_and_manifest(tiny_bundle, tiny_model_dir):
    out, m, logs = tiny_bundle
    assert any(l.startswith("[1/9]") for l in logs) and any(l.startswith("done:") for l in logs)
    with open(os.path.join(out, "manifest.json")) as f:
        disk = json.load(f)
    assert disk == json.loads(json.dumps(m))
    assert m["format"] == "cosyvoiced-bundle" and m["format_version"] == 2
    assert m["text_embedding"] == {"file": "llm_text_embedding.safetensors",
                                   "tensor": "llm.model.model.embed_tokens.weight", "dtype": "fp32",
                                   "shape": [151936, 16]}
    assert m["dtype"] == "fp32" and m["sample_rate"] == 24000
    assert m["torch_version"] == torch.__version__
    t = m["tokens"]
    assert (t["speech_token_size"], t["eos"], t["fill"], t["stop"]) == (6561, 6561, 6563, [6561, 6562, 6563])
    assert t["llm_embedding_rows"] == {"sos": 0, "task_id": 1}
    assert t["text_special"]["<|endofprompt|>"] == 151646
    assert m["llm"]["num_layers"] == 2 and m["llm"]["sampling"]["top_k"] == 25
    assert m["streaming"]["source_cache_len"] == 3840 and m["flow"]["max_mel_frames"] == 15000
    assert set(m["entry_points"]) >= {"llm_prefill", "llm_decode_one", "flow_inference", "hift_inference"}
    # every file is listed with its sha256; the sources too
    listed = set(m["files"])
    assert {"model.ts", "tokenizer/vocab.json", "tokenizer/merges.txt", "tokenizer/special_tokens.json"} <= listed
    for rel, info in m["files"].items():
        assert info["sha256"] == bundle.sha256_file(os.path.join(out, rel)), rel
    for rel in ("llm.pt", "flow.pt", "hift.pt", "cosyvoice2.yaml", "CosyVoice-BlankEN/config.json"):
        assert m["source"]["files"][rel]["sha256"] == bundle.sha256_file(os.path.join(tiny_model_dir, rel))
    assert m["source"]["random"] == "tiny"
    assert m["tn"] is None and "no text-normalization" in m["tn_note"]
    assert bundle.verify_bundle(out) == []


def test_text_table_lives_beside_model_ts(tiny_bundle, tiny_model_dir, loaded):
    """model.ts holds a (0, hidden) placeholder; the table is the checkpoint's embed_tokens, in its own
    file; without it prefill says what is missing; attached (even on another device than the module's
    compute), prefill is the eager module's."""
    out = tiny_bundle[0]
    raw = torch.jit.load(os.path.join(out, "model.ts"), map_location="cpu")
    assert tuple(raw.llm.llm.model.model.embed_tokens.weight.shape) == (0, 16)
    k, v = raw.llm_new_cache(16)
    text, prompt = torch.tensor([[5, 151646, 9]]), torch.tensor([[1, 2]])
    with pytest.raises(Exception, match="llm_attach_text_table"):
        raw.llm_prefill(text, prompt, k, v)
    _, cfg, llm, _, _ = loaded
    with safe_open(os.path.join(out, "llm_text_embedding.safetensors"), "pt") as f:
        table = f.get_tensor("llm.model.model.embed_tokens.weight")
        assert f.metadata() == {"format": "cosyvoiced-text-embedding", "dtype": "fp32"}
    assert torch.equal(table, llm.llm.model.model.embed_tokens.weight)
    with pytest.raises(Exception, match="in the LLM's dtype"):
        raw.llm_attach_text_table(table.to(torch.float16))
    raw.llm_attach_text_table(table)
    with torch.no_grad():
        ke, ve = llm.new_cache(16)
        torch.testing.assert_close(raw.llm_prefill(text, prompt, k, v), llm.prefill(text, prompt, ke, ve),
                                   rtol=0, atol=0)


def test_verify_detects_tampering(tiny_bundle, tmp_path):
    out = str(tmp_path / "copy")
    shutil.copytree(tiny_bundle[0], out)
    assert bundle.verify_bundle(out) == []
    with open(os.path.join(out, "tokenizer", "merges.txt"), "ab") as f:
        f.write(b"x")
    os.remove(os.path.join(out, "speakers", "zero_shot_1.safetensors"))
    open(os.path.join(out, "stray.bin"), "w").close()
    problems = bundle.verify_bundle(out)
    assert "sha256 mismatch: tokenizer/merges.txt" in problems
    assert "missing file: speakers/zero_shot_1.safetensors" in problems
    assert "file not in manifest: stray.bin" in problems


def test_tokenizer_files_and_specials(tiny_bundle):
    out = tiny_bundle[0]
    src = tokenizer_dir()
    for f in ("vocab.json", "merges.txt"):
        assert bundle.sha256_file(os.path.join(out, "tokenizer", f)) == bundle.sha256_file(os.path.join(src, f))
    with open(os.path.join(out, "tokenizer", "special_tokens.json")) as f:
        got = json.load(f)
    with open(os.path.join(src, "special_tokens.json")) as f:
        want = json.load(f)
    assert got == want  # computed from vocab.json + the tokenizer's token list; equals docs/cosyvoice2.md §2.2


def test_speakers_imported_from_spk2info(tiny_bundle, tiny_model_dir):
    out, m, _ = tiny_bundle
    assert set(m["speakers"]) == {"zero_shot_0", "zero_shot_1", "中文女"}
    assert m["default_speaker"] == "zero_shot_0"  # the first voice with a full prompt
    for rel in m["speakers"].values():
        assert os.stat(os.path.join(out, rel)).st_mode & 0o777 == 0o644
    src = torch.load(os.path.join(tiny_model_dir, "spk2info.pt"), weights_only=True)
    for name in ("zero_shot_0", "zero_shot_1"):
        sp = speakers.load(os.path.join(out, m["speakers"][name]))
        e = src[name]
        assert sp.name == name and sp.source == "spk2info"
        assert sp.prompt_text.dtype == torch.int32 and torch.equal(sp.prompt_text, e["prompt_text"][0])
        assert torch.equal(sp.prompt_speech_tokens, e["flow_prompt_speech_token"][0])
        assert torch.equal(sp.prompt_mel, e["prompt_speech_feat"][0])
        assert sp.prompt_mel.shape == (2 * sp.prompt_speech_tokens.shape[0], 80)
        assert torch.equal(sp.embedding, e["flow_embedding"][0]) and sp.embedding.shape == (192,)
    sft = speakers.load(os.path.join(out, m["speakers"]["中文女"]))
    assert sft.name == "中文女" and sft.prompt_speech_tokens.numel() == 0 and sft.prompt_mel.shape == (0, 80)
    assert torch.equal(sft.embedding, src["中文女"]["embedding"][0])


def test_speaker_alignment_and_validation(tmp_path):
    sp = speakers.Speaker("a b/c", torch.tensor([1, 2]), torch.arange(10), torch.zeros(1, 17, 80), torch.ones(1, 192))
    idx = speakers.write_all([sp], str(tmp_path))
    assert idx == {"a b/c": "spkabc.safetensors"}
    back = speakers.load(str(tmp_path / "spkabc.safetensors"))
    assert back.prompt_speech_tokens.shape == (8,) and back.prompt_mel.shape == (16, 80)  # §7.5: L = min(17//2, 10)
    with pytest.raises(speakers.SpeakerError, match="embedding has 100 values"):
        speakers.normalize(speakers.Speaker("x", torch.zeros(0), torch.zeros(0), torch.zeros(0, 80), torch.zeros(100)))
    with pytest.raises(speakers.SpeakerError, match="outside"):
        speakers.normalize(speakers.Speaker("x", torch.zeros(0), torch.tensor([7000]), torch.zeros(2, 80), torch.zeros(192)))


@pytest.fixture(scope="module")
def loaded(tiny_bundle, tiny_model_dir):
    m = bundle.load_model(tiny_bundle[0])
    cfg, (llm, flow, hift) = eager_modules(tiny_model_dir)
    return m, cfg, llm, flow, hift


def test_scripted_llm_equals_eager(loaded):
    m, cfg, llm, _, _ = loaded
    g = torch.Generator().manual_seed(1)
    text = torch.randint(0, 151646, (1, 9), generator=g)
    prompt = torch.randint(0, 6561, (1, 12), generator=g)
    toks = torch.randint(0, 6561, (1, 5), generator=g)
    with torch.no_grad():
        k, v = m.llm_new_cache(64)
        ke, ve = llm.new_cache(64)
        a = [m.llm_prefill(text.to(torch.int32), prompt, k, v)]
        b = [llm.prefill(text, prompt, ke, ve)]
        for j in range(5):
            a.append(m.llm_decode_one(toks[:, j: j + 1], 23 + j, k, v))
            b.append(llm.decode_one(toks[:, j: j + 1], 23 + j, ke, ve))
    torch.testing.assert_close(torch.stack(a), torch.stack(b), rtol=1e-5, atol=1e-5)
    assert a[0].shape == (1, 6564) and k.shape == (2, 1, 1, 64, 8)


def test_decode_at_equals_decode_one(loaded):
    """llm_decode_at (tensor position, whole-cache attention: the CUDA-graph form) gives the logits of
    llm_decode_one, including over a cache that still holds a longer earlier request's entries."""
    m, _, llm, _, _ = loaded
    g = torch.Generator().manual_seed(5)
    text = torch.randint(0, 151646, (1, 7), generator=g)
    prompt = torch.randint(0, 6561, (1, 4), generator=g)
    toks = torch.randint(0, 6561, (1, 8), generator=g)
    with torch.no_grad():
        k, v = m.llm_new_cache(48)
        ks, vs = m.llm_new_cache(48)
        k.normal_(generator=g)  # stale entries from an "earlier request": must be masked
        v.normal_(generator=g)
        a = [m.llm_prefill(text, prompt, k, v)]
        b = [m.llm_prefill(text, prompt, ks, vs)]
        pos = 7 + 4 + 2
        for j in range(8):
            a.append(m.llm_decode_at(toks[:, j: j + 1], torch.tensor([pos + j]), k, v))
            b.append(m.llm_decode_one(toks[:, j: j + 1], pos + j, ks, vs))
        e = [llm.decode_at(toks[:, 0:1], torch.tensor([pos + 8]), k.clone(), v.clone())]
    torch.testing.assert_close(torch.stack(a), torch.stack(b), rtol=1e-5, atol=1e-5)
    assert torch.isfinite(e[0]).all()


def _flow_inputs(seed, n=30, p=10):
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(0, 6561, (1, n), generator=g), torch.randint(0, 6561, (1, p), generator=g),
            torch.randn(1, 2 * p, 80, generator=g) - 5.0, torch.randn(1, 192, generator=g))


@pytest.mark.parametrize("streaming, finalize", [(False, True), (True, False), (True, True)])
def test_scripted_flow_equals_eager(loaded, streaming, finalize):
    m, _, _, flow, _ = loaded
    tok, ptok, pfeat, emb = _flow_inputs(2)
    with torch.no_grad():
        a = m.flow_inference(tok, ptok, pfeat, emb, streaming, finalize)
        b = flow.inference(tok, ptok, pfeat, emb, streaming, finalize)
    n = tok.shape[1] - (0 if finalize else 3)
    assert a.shape == (1, 80, 2 * n) and a.dtype == torch.float32
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_streaming_chunks_reproduce_emitted_frames(loaded):
    """docs/cosyvoice2.md §6.3: rerunning the prefix with chunk masks + lookahead context recomputes emitted frames."""
    m, _, _, _, _ = loaded
    tok, ptok, pfeat, emb = _flow_inputs(3, n=100, p=10)
    with torch.no_grad():
        # P = 10 prompt tokens -> pad 15, first hop 25 + 15 = 40 tokens (+3 lookahead): ends on a chunk boundary
        first = m.flow_inference(tok[:, :43], ptok, pfeat, emb, True, False)
        second = m.flow_inference(tok[:, :93], ptok, pfeat, emb, True, False)  # next hop: 50 tokens
        final = m.flow_inference(tok, ptok, pfeat, emb, False, True)
    assert first.shape[2] == 80 and second.shape[2] == 180
    torch.testing.assert_close(second[:, :, :80], first, rtol=1e-5, atol=1e-5)
    # the final full-attention call is allowed to differ (docs/cosyvoice2.md §6.3) -- and with random weights it does
    assert not torch.allclose(final[:, :, :80], first, atol=1e-3)


def test_cfm_noise_is_seed_zero(loaded):
    m = loaded[0]
    noise = m.flow.decoder.rand_noise
    torch.manual_seed(0)
    want = torch.randn(1, 80, 15000)
    assert torch.equal(noise, want)


def test_scripted_hift_equals_eager_with_fixed_noise(loaded):
    m, _, _, _, hift = loaded
    g = torch.Generator().manual_seed(4)
    mel = torch.randn(1, 80, 12, generator=g) - 4.0
    noise = torch.randn(1, 12 * 480, 9, generator=g)
    cache = torch.randn(1, 1, 960, generator=g) * 0.1
    with torch.no_grad():
        a, sa = m.hift_inference_noise(mel, cache, noise)
        b, sb = hift.inference(mel, cache, noise)
    assert a.shape == (1, 12 * 480) and sa.shape == (1, 1, 12 * 480)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(sa[:, :, :960], cache)
    assert a.abs().max() <= 0.99


def test_forward_is_token2wav(loaded):
    m = loaded[0]
    tok, ptok, pfeat, emb = _flow_inputs(5, n=8, p=4)
    with torch.no_grad():
        wav = m(tok, ptok, pfeat, emb)
    assert wav.shape == (1, 8 * 2 * 480) and torch.isfinite(wav).all()


def test_fp16_bundle(tiny_bundle_fp16, loaded):
    out, man = tiny_bundle_fp16
    assert man["dtype"] == "fp16" and man["hift_dtype"] == "fp32"
    m16 = bundle.load_model(out)
    assert m16.llm.speech_embedding.weight.dtype == torch.float16
    assert m16.flow.input_embedding.weight.dtype == torch.float16
    assert m16.hift.conv_pre.weight.dtype == torch.float32
    assert m16.llm.llm.model.model.inv_freq_fp32.dtype == torch.float32
    assert bundle.verify_bundle(out) == []
    # the LLM in fp16 on this CPU stays within 0.05 nats of fp32 (stated tolerance; random weights)
    m32 = loaded[0]
    g = torch.Generator().manual_seed(6)
    text, prompt = torch.randint(0, 151646, (1, 6), generator=g), torch.randint(0, 6561, (1, 4), generator=g)
    with torch.no_grad():
        k, v = m16.llm_new_cache(16)
        k2, v2 = m32.llm_new_cache(16)
        torch.testing.assert_close(m16.llm_prefill(text, prompt, k, v), m32.llm_prefill(text, prompt, k2, v2),
                                   rtol=0, atol=5e-2)
    # flow in fp16: mel within 1% relative L2 and 0.05 absolute of fp32 (stated tolerance); HiFT is fp32 in both
    tok, ptok, pfeat, emb = _flow_inputs(9, n=20, p=6)
    with torch.no_grad():
        a = m32.flow_inference(tok, ptok, pfeat, emb, False, True)
        b = m16.flow_inference(tok, ptok, pfeat, emb, False, True)
        assert b.dtype == torch.float32
        assert float((a - b).norm() / a.norm()) < 1e-2 and float((a - b).abs().max()) < 5e-2
        noise = torch.randn(1, a.shape[2] * 480, 9, generator=g)
        w32, _ = m32.hift_inference_noise(a, torch.zeros(1, 1, 0), noise)
        w16, _ = m16.hift_inference_noise(a, torch.zeros(1, 1, 0), noise)
    assert torch.equal(w32, w16)


def test_incomplete_model_dir_names_the_missing_file(tiny_model_dir, tmp_path):
    d = str(tmp_path / "m")
    shutil.copytree(tiny_model_dir, d)
    os.remove(os.path.join(d, "flow.pt"))
    os.remove(os.path.join(d, "CosyVoice-BlankEN", "merges.txt"))
    with pytest.raises(bundle.ExportError) as e:
        bundle.export(d, str(tmp_path / "out"), log=lambda s: None)
    msg = str(e.value)
    assert f"missing file: {d}/flow.pt" in msg and f"missing file: {d}/CosyVoice-BlankEN/merges.txt" in msg
    assert not os.path.exists(str(tmp_path / "out")) and not os.path.exists(str(tmp_path / "out.partial"))
    with pytest.raises(bundle.ExportError, match="model directory not found"):
        bundle.export(str(tmp_path / "nowhere"), str(tmp_path / "out"), log=lambda s: None)


def test_mismatched_checkpoint_fails_before_writing(tiny_model_dir, tmp_path):
    d = str(tmp_path / "m")
    shutil.copytree(tiny_model_dir, d)
    sd = torch.load(os.path.join(d, "flow.pt"), weights_only=True)
    sd["encoder_proj.weight"] = torch.zeros(80, 33)
    torch.save(sd, os.path.join(d, "flow.pt"))
    with pytest.raises(bundle.ExportError, match=r"key 'encoder_proj.weight' has shape \[80, 33\], expected \[80, 32\]"):
        bundle.export(d, str(tmp_path / "out"), log=lambda s: None)
    assert not os.path.exists(str(tmp_path / "out"))


def test_refuses_to_replace_a_non_bundle_directory(tiny_model_dir, tmp_path):
    out = tmp_path / "precious"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(bundle.ExportError, match="not a bundle"):
        bundle.export(tiny_model_dir, str(out), log=lambda s: None)
    assert (out / "notes.txt").read_text() == "keep me"


def test_documented_command_line(tmp_path):
    """`python tools/export/export.py --random tiny --out DIR` and `--verify DIR` (what `make bundle` runs)."""
    out = str(tmp_path / "b")
    env = dict(os.environ, CV_TOKENIZER_DIR=tokenizer_dir())
    r = subprocess.run([sys.executable, os.path.join(REPO, "tools", "export", "export.py"), "--random", "tiny", "--out", out,
                        "--default", "zero_shot_1"], capture_output=True, text=True, env=env, timeout=300,
                       preexec_fn=lambda: os.umask(0o077))
    assert r.returncode == 0, r.stderr
    # readable by the service user whatever the exporting user's umask: files 0644, directories 0755
    for root, dirs, names in os.walk(out):
        assert os.stat(root).st_mode & 0o777 == 0o755, root
        for n in names:
            assert os.stat(os.path.join(root, n)).st_mode & 0o777 == 0o644, os.path.join(root, n)
    with open(os.path.join(out, "manifest.json")) as f:
        assert json.load(f)["default_speaker"] == "zero_shot_1"
    assert "[9/9] writing manifest.json" in r.stderr and os.path.isfile(os.path.join(out, "model.ts"))
    assert not [p for p in os.listdir(str(tmp_path)) if p.startswith("cosyvoice2-random-")]  # temp model dir removed
    r = subprocess.run([sys.executable, os.path.join(REPO, "tools", "export", "export.py"), "--verify", out],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "OK" in r.stderr
    r = subprocess.run([sys.executable, os.path.join(REPO, "tools", "export", "export.py"), "--src", str(tmp_path / "none"),
                        "--out", str(tmp_path / "x")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "model directory not found" in r.stderr


def _encoder_zip(flow, path, perturb=0.0, dtype=torch.float32):
    """What the reference's export_jit.py does: script -> freeze -> optimize_for_inference, saved as a zip."""
    import copy

    enc = copy.deepcopy(flow.encoder).to(dtype)
    if perturb:
        with torch.no_grad():
            for p in enc.parameters():
                p.add_(perturb)
    opt = torch._C._get_graph_executor_optimize()
    torch._C._set_graph_executor_optimize(True)  # freezing inlines only with the optimizing executor on
    try:
        s = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.script(enc.eval())))
        s.save(path)
    finally:
        torch._C._set_graph_executor_optimize(opt)
    return path


def test_official_encoder_zip_accepted_when_it_matches(loaded, tiny_model_dir, tmp_path):
    m, _, _, flow, _ = loaded
    z = _encoder_zip(flow, str(tmp_path / "flow.encoder.fp32.zip"))
    out = str(tmp_path / "b")
    man = bundle.export(tiny_model_dir, out, "fp32", flow_encoder_zip=z, log=lambda s: None)
    fe = man["flow_encoder"]
    assert fe["source"] == "flow.encoder.fp32.zip" and fe["sha256"] == bundle.sha256_file(z)
    assert fe["max_rel_diff"] <= fe["tolerance"]
    mz = bundle.load_model(out)
    assert not list(mz.flow.encoder.parameters())  # the frozen zip, not the own encoder
    tok, ptok, pfeat, emb = _flow_inputs(8, n=12, p=4)
    with torch.no_grad():
        torch.testing.assert_close(mz.flow_inference(tok, ptok, pfeat, emb, True, False),
                                   m.flow_inference(tok, ptok, pfeat, emb, True, False), rtol=1e-5, atol=1e-5)
    assert bundle.verify_bundle(out) == []


def test_encoder_zip_from_other_weights_is_rejected(loaded, tiny_model_dir, tmp_path):
    flow = loaded[3]
    z = _encoder_zip(flow, str(tmp_path / "other.zip"), perturb=0.01)
    with pytest.raises(bundle.ExportError, match="does not match flow.pt"):
        bundle.export(tiny_model_dir, str(tmp_path / "b"), "fp32", flow_encoder_zip=z, log=lambda s: None)


def test_encoder_zip_with_old_signature_is_rejected(tiny_model_dir, tmp_path):
    class Old(torch.nn.Module):  # Release-era forward: no context / streaming parameters
        def forward(self, xs: torch.Tensor, xs_lens: torch.Tensor):
            return xs, xs_lens

    z = str(tmp_path / "old.zip")
    torch.jit.script(Old()).save(z)
    with pytest.raises(bundle.ExportError, match="cannot be used: calling it as the reference does"):
        bundle.export(tiny_model_dir, str(tmp_path / "b"), "fp32", flow_encoder_zip=z, log=lambda s: None)
    with pytest.raises(bundle.ExportError, match="missing file"):
        bundle.export(tiny_model_dir, str(tmp_path / "b"), "fp32", flow_encoder_zip=str(tmp_path / "no.zip"),
                      log=lambda s: None)
