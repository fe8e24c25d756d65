#!/usr/bin/env python3
"""The daemon on a (big) card held to a small card's memory: what tools/release/gpu-check.sh's `serve` step measures.

    python tools/release/gpu_serve_check.py --daemon bin/cosyvoiced --bundle DIR [--device cuda|cpu] [--cap-mb 3276]
                                    [--torch-lib DIR] [--out serve.json] [--log-dir DIR] [--quick]

DESIGN: the promise is "CosyVoice2 in fp16 on a 4 GB card". A 4 GB card leaves the daemon about 3.2 GiB
after a desktop's share and the CUDA context, so the daemon runs with ``cuda_memory_limit_mb`` (libtorch's
per-process memory fraction, set before the model loads): past the cap the caching allocator fails as a
small card would. Under that cap, through HTTP as a client sees it:

1. every format and mode: WAV, Ogg Opus, streamed PCM; short/medium/long zh/en texts (tools/bench/bench_cases.json);
2. one long utterance (about 30 s of audio with random weights, which run to the LLM's maximum length);
3. the memory guard's model (``memory_base_bytes`` + a*T + b*T^2 over mel frames T, from /metrics) against
   the allocator's measured peak after the long utterance: both are reported, and the peak must stay under
   the cap;
4. a real out-of-memory (cuda, full mode): a second daemon capped just above its own weights with the guard
   off gets the long text: that request fails (500, counted in engine_out_of_memory_total), the daemon stays
   ready and serves the next request.

Every check is a pass/fail line; the JSON holds the figures. Exit status 1 when any check failed.
HTTP and the daemon process come from tools/bench/bench.py (plain sockets: chunked trailers are kept).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from typing import List, Optional

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench"))
import bench  # noqa: E402  (tools/bench/bench.py: Daemon, http, parse_metrics)

MIB = 1 << 20
MEL_FPS = 50.0  # mel frames per second of 24 kHz audio (hop 480)
LONG_S = 25.0  # seconds of audio the long-utterance check looks for
LONG_TRIES = 8
GUARD_MARGIN = 1.25  # measured peak / prediction above this: the guard under-predicts
LONG_TEXT = ("The quiet harbour town woke slowly under a pale grey sky, as fishing boats drifted home and the "
             "bakery on the corner filled the narrow streets with the smell of warm bread.")


class Checks:
    def __init__(self):
        self.items: List[dict] = []

    def add(self, name: str, ok: bool, detail: str = "") -> bool:
        self.items.append({"check": name, "ok": bool(ok), "detail": detail})
        print(f"{'PASS' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}", flush=True)
        return ok

    @property
    def ok(self) -> bool:
        return all(c["ok"] for c in self.items)


def metrics(port: int) -> dict:
    r = bench.http(port, "GET", "/metrics", keep_body=True, timeout=30)
    m = bench.parse_metrics(r.body.decode("utf-8", "replace"))
    return {k[len("cosyvoiced_"):]: v for k, v in m.items() if k.startswith("cosyvoiced_") and "{" not in k}


def tts(port: int, text: str, fmt: str = "wav", stream: bool = False, seed: int = 1) -> dict:
    r = bench.http(port, "POST", "/tts", {"text": text, "format": fmt, "stream": stream, "seed": seed},
                   keep_body=True)
    out = {"status": r.status, "error": r.error, "format": fmt, "stream": stream, "bytes": r.nbytes,
           "wall_ms": round(r.t_total * 1e3, 1), "first_byte_ms": round((r.t_first or r.t_total) * 1e3, 1),
           "audio_s": bench.fnum(r.get("x-audio-duration")), "rtf": bench.fnum(r.get("x-real-time-factor")),
           "server_timing": bench.server_timing(r.get("server-timing"))}
    magic = {"wav": b"RIFF", "opus": b"OggS"}.get(fmt)
    out["magic_ok"] = r.body[:4] == magic if magic else r.nbytes > 0
    if r.status != 200:
        out["body"] = r.body[:300].decode("utf-8", "replace")
    return out


def predicted(m: dict, audio_s: float) -> Optional[float]:
    base = m.get("engine_memory_base_bytes")
    a = m.get("engine_memory_workspace_bytes_per_frame")
    b = m.get("engine_memory_workspace_bytes_per_frame_squared", 0.0)
    if base is None or a is None:
        return None
    t = audio_s * MEL_FPS
    return base + a * t + b * t * t


def start(args, log_name: str, extra: List[str]) -> bench.Daemon:
    env = {"COSYVOICED_TORCH_LIB": args.torch_lib} if args.torch_lib else {}
    d = bench.Daemon(args.daemon, args.bundle, args.device, os.path.join(args.log_dir, log_name), extra, env)
    why = d.wait_ready(900)
    if why:
        d.stop()
        raise RuntimeError(f"daemon not ready: {why}")
    return d


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--daemon", required=True)
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--cap-mb", type=int, default=3276)
    ap.add_argument("--torch-lib", default="")
    ap.add_argument("--out", default="serve.json")
    ap.add_argument("--log-dir", default="serve-logs")
    ap.add_argument("--quick", action="store_true", help="one case (en_short), no long utterance, no OOM")
    ap.add_argument("--case-ids", help="comma-separated case ids of tools/bench/bench_cases.json (default: all)")
    args = ap.parse_args(argv)
    os.makedirs(args.log_dir, exist_ok=True)
    cuda = args.device == "cuda"
    ck = Checks()
    doc: dict = {"device": args.device, "cap_mb": args.cap_mb if cuda else None, "requests": []}
    cases = json.load(open(os.path.join(bench.HERE, "bench_cases.json"), encoding="utf-8"))
    cases = cases["cases"] if isinstance(cases, dict) else cases
    want = ["en_short"] if args.quick else (args.case_ids.split(",") if args.case_ids else None)
    if want:
        cases = [c for c in cases if c["id"] in want]

    extra = [f"--cuda-memory-limit-mb={args.cap_mb}"] if cuda else ["--cpu-half=true"]
    t0 = time.perf_counter()
    d = start(args, "serve-capped.log", extra)
    doc["ready_s"] = round(d.ready_s or 0, 2)
    try:
        m0 = metrics(d.port)
        doc["start"] = m0
        if cuda:
            lim = m0.get("engine_gpu_memory_limit_bytes", 0)
            ck.add("allocator capped", abs(lim - args.cap_mb * MIB) < 2 * MIB, f"limit {lim / MIB:.0f} MiB")
        for fmt, stream, text in (("wav", False, "Hello from the smart mirror."), ("opus", False, "你好，世界。"),
                                  ("pcm", True, "Streamed as it is made, one chunk at a time.")):
            r = tts(d.port, text, fmt, stream)
            doc["requests"].append(dict(r, text=text))
            ck.add(f"{fmt}{' streamed' if stream else ''}", r["status"] == 200 and r["magic_ok"],
                   f"HTTP {r['status']}, {r['audio_s']} s audio, first byte {r['first_byte_ms']} ms")
        for c in cases:
            r = tts(d.port, c["text"], "pcm", False, seed=2)
            doc["requests"].append(dict(r, case=c["id"]))
            ck.add(f"case {c['id']}", r["status"] == 200,
                   f"HTTP {r['status']}, {r['audio_s']} s audio, RTF {r['rtf']}")
        if not args.quick:
            # Random weights decide the length: the first seed whose audio reaches LONG_S (or the longest).
            r = {}
            for seed in range(3, 3 + LONG_TRIES):
                x = tts(d.port, LONG_TEXT, "wav", False, seed=seed)
                if not r or x["status"] != 200 or (x["audio_s"] or 0) > (r["audio_s"] or 0):
                    r = dict(x, seed=seed)
                if x["status"] != 200 or (x["audio_s"] or 0) >= LONG_S:
                    break
            doc["long"] = r
            m1 = metrics(d.port)
            doc["after_long"] = m1
            ok = r["status"] == 200 and (r["audio_s"] or 0) > 0
            ck.add("long utterance", ok, f"HTTP {r['status']}, {r['audio_s']} s audio, wall {r['wall_ms']} ms")
            peak = m1.get("engine_gpu_memory_peak_bytes") if cuda else m1.get("process_resident_memory_bytes")
            pred = predicted(m1, r["audio_s"] or 0)
            doc["guard"] = {"audio_s": r["audio_s"], "predicted_bytes": pred, "measured_peak_bytes": peak,
                            "budget_bytes": m1.get("engine_memory_budget_bytes")}
            if pred is not None and peak:
                # On cuda both are caching-allocator bytes and the guard must not under-predict by more
                # than its margin; on the CPU the peak is the whole process's resident set (reported only).
                ck.add("memory guard vs peak", not cuda or peak <= pred * GUARD_MARGIN,
                       f"predicted {pred / MIB:.0f} MiB, measured peak {peak / MIB:.0f} MiB "
                       f"({(peak - pred) / pred * 100:+.1f}%){'' if cuda else ' (cpu: resident set, info)'}")
            else:
                ck.add("memory guard vs peak", False, f"no figures (predicted {pred}, peak {peak})")
            if cuda:
                ck.add("peak under the cap", peak is not None and peak <= args.cap_mb * MIB,
                       f"peak {(peak or 0) / MIB:.0f} MiB, cap {args.cap_mb} MiB, "
                       f"NVML used {(m1.get('engine_gpu_nvml_memory_used_bytes') or 0) / MIB:.0f} MiB")
        m2 = metrics(d.port)
        doc["end"] = m2
        ck.add("no engine errors", not m2.get("engine_errors_total") and not m2.get("engine_out_of_memory_total"),
               f"errors {m2.get('engine_errors_total')}, oom {m2.get('engine_out_of_memory_total')}")
    finally:
        rc = d.stop()
    ck.add("clean exit on SIGTERM", rc == 0, f"exit {rc}")

    if cuda and not args.quick:
        # Cap just above the weights: half the workspace the guard predicts for the long utterance.
        base = doc["start"].get("engine_memory_base_bytes") or doc["start"].get("engine_gpu_memory_allocated_bytes")
        pred = (doc.get("guard") or {}).get("predicted_bytes")
        extra = (pred - base) / 2 if pred and base and pred > base else 160 * MIB
        cap = int(math.ceil(((base or 0) + extra) / MIB))
        seed = (doc.get("long") or {}).get("seed", 3)
        doc["oom"] = {"cap_mb": cap, "seed": seed}
        try:
            d = start(args, "serve-oom.log", [f"--cuda-memory-limit-mb={cap}", "--memory-budget-mb=0"])
        except RuntimeError as e:
            ck.add("out-of-memory survived", False, f"capped daemon ({cap} MiB) did not start: {e}")
        else:
            try:
                big = tts(d.port, LONG_TEXT, "wav", False, seed=seed)
                m = metrics(d.port)
                after = tts(d.port, "Still here.", "wav", False, seed=5)
                ready = bench.http(d.port, "GET", "/readyz", timeout=10).status
                doc["oom"].update({"long_status": big["status"], "long_body": big.get("body"),
                                   "oom_total": m.get("engine_out_of_memory_total"),
                                   "next_status": after["status"], "readyz": ready})
                ck.add("out-of-memory survived",
                       big["status"] == 500 and (m.get("engine_out_of_memory_total") or 0) >= 1
                       and after["status"] == 200 and ready == 200,
                       f"cap {cap} MiB: long text HTTP {big['status']}, oom_total "
                       f"{m.get('engine_out_of_memory_total')}, next HTTP {after['status']}, readyz {ready}")
            finally:
                d.stop()
    doc["seconds"] = round(time.perf_counter() - t0, 1)
    doc["checks"] = ck.items
    doc["ok"] = ck.ok
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1)
    print(f"serve: {sum(c['ok'] for c in ck.items)} passed, {sum(not c['ok'] for c in ck.items)} failed")
    return 0 if ck.ok else 1


if __name__ == "__main__":
    sys.exit(main())
