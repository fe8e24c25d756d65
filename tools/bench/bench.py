#!/usr/bin/env python3
"""`make bench`: the daemon's CosyVoice2 engine against the eager PyTorch pipeline, same bundle, same device.

    python tools/bench/bench.py --bundle DIR [--device cpu|cuda] [--runs N] [--case-ids a,b] [--out build/bench.json]
                          [--concurrency 1,2,4] [--conc-runs N] [--daemon build/cosyvoiced] [--no-eager]
                          [--no-engine] [--with-script] [--log-dir DIR] [--daemon-arg=--flag=value ...]

DESIGN: one run measures both sides one after the other (never at the same time: they would share the
cores or the card), in this order, and writes one JSON document plus a printed table:

1. eager: tools/bench/bench_eager.py in a child process (its own RSS, its own CUDA context, memory freed before
   the daemon starts); ``--with-script`` adds the same Python pipeline over the scripted model.ts.
2. engine: build/cosyvoiced with ``--model-dir <bundle> --device <dev>`` on 127.0.0.1 and a free port;
   start-up time is spawn -> ``/readyz`` 200. If the process exits first (e.g. "cosyvoice2 engine not built
   yet") or never gets ready, the engine column is reported as unavailable with the daemon's last error
   line as the reason, and the eager results are still written: the harness stays usable before the
   engine exists.
3. per case, N buffered requests (``format: pcm``, a fixed ``seed``, the eager run's speaker): client wall
   time, ``Server-Timing`` stages, ``X-Audio-Duration``, ``X-Real-Time-Factor``; one streamed request per
   case: time to the first body byte (pcm has no header, so that is the first audio) and the trailers.
4. concurrency 1, 2, 4 on one case: buffered (RTF per request, throughput = audio s / wall s) and
   streamed (time to first audio per request).
5. ``/metrics`` (engine load/warm-up seconds, engine gauges such as GPU memory, resident memory) and the
   daemon's VmHWM from /proc before SIGTERM.
6. memory growth: after the first request and again after ``--growth-requests`` more (buffered; prefixes of
   the short case in 9 lengths, so new input shapes keep coming, as in service), the engine's memory as the
   daemon reports it (CUDA caching allocator: allocated and reserved bytes; CPU: resident set): steady
   state means no growth per request.

HTTP is spoken over a plain socket (HTTP/1.1, ``Connection: close``) because the standard library's
client drops chunked trailers, which carry the streamed ``Server-Timing``.

The engine's per-stage names are read generically; LLM figures are taken from stages named
``llm_prefill`` (ms) and ``llm_token`` (ms per decoded token) or the aliases in ``STAGE_ALIASES``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from typing import Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import chart  # noqa: E402  (tools/bench/chart.py: the SVG beside the JSON)

STAGE_ALIASES = {
    "prefill_ms": ["llm_prefill", "prefill", "llm_prefill_ms"],
    "decode_ms_per_token": ["llm_token", "llm_per_token", "llm_ms_per_token", "decode_per_token", "llm_decode_per_token",
                            "llm_tok"],
    "decode_ms_per_token_graph": ["llm_token_graph"],
    "decode_ms_per_token_eager": ["llm_token_eager"],
}


def summarize(xs: List[float]) -> dict:
    xs = [x for x in xs if x is not None and x == x]
    if not xs:
        return {"n": 0}
    return {"n": len(xs), "mean": statistics.fmean(xs), "median": statistics.median(xs),
            "stdev": statistics.stdev(xs) if len(xs) > 1 else 0.0, "min": min(xs), "max": max(xs)}


# ------------------------------------------------------------------------------------------ HTTP
class Resp:
    def __init__(self):
        self.status = 0
        self.headers: Dict[str, str] = {}
        self.trailers: Dict[str, str] = {}
        self.body = b""
        self.nbytes = 0
        self.t_first: Optional[float] = None  # seconds from send to the first body byte
        self.t_total = 0.0
        self.error: Optional[str] = None

    def get(self, name: str) -> Optional[str]:
        name = name.lower()
        return self.trailers.get(name) or self.headers.get(name)


def _read_headers(f) -> Dict[str, str]:
    h: Dict[str, str] = {}
    while True:
        line = f.readline()
        if not line or line in (b"\r\n", b"\n"):
            return h
        k, _, v = line.decode("latin-1").partition(":")
        k = k.strip().lower()
        h[k] = (h[k] + ", " + v.strip()) if k in h else v.strip()


def http(port: int, method: str, path: str, body: Optional[dict] = None, timeout: float = 900.0,
         keep_body: bool = False) -> Resp:
    r = Resp()
    data = json.dumps(body, ensure_ascii=False).encode() if body is not None else b""
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nTE: trailers\r\n"
    if body is not None:
        head += f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
    t0 = time.perf_counter()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(head.encode() + b"\r\n" + data)
            f = s.makefile("rb")
            status = f.readline().decode("latin-1").split()
            r.status = int(status[1]) if len(status) > 1 else 0
            r.headers = _read_headers(f)
            chunks: List[bytes] = []

            def got(b: bytes) -> None:
                if b and r.t_first is None:
                    r.t_first = time.perf_counter() - t0
                r.nbytes += len(b)
                if keep_body:
                    chunks.append(b)

            if "chunked" in r.headers.get("transfer-encoding", "").lower():
                while True:
                    line = f.readline()
                    if not line:
                        raise ConnectionError("connection closed inside a chunked body")
                    size = int(line.split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        r.trailers = _read_headers(f)
                        break
                    got(f.read(size))
                    f.readline()
            elif "content-length" in r.headers:
                n = int(r.headers["content-length"])
                while n > 0:
                    b = f.read1(min(n, 1 << 16)) if hasattr(f, "read1") else f.read(min(n, 1 << 16))
                    if not b:
                        break
                    got(b)
                    n -= len(b)
            else:
                while True:
                    b = f.read1(1 << 16)
                    if not b:
                        break
                    got(b)
            r.body = b"".join(chunks)
    except (OSError, ValueError) as e:
        r.error = f"{type(e).__name__}: {e}"
    r.t_total = time.perf_counter() - t0
    return r


def server_timing(v: Optional[str]) -> Dict[str, float]:
    out: Dict[str, float] = {}
    for part in (v or "").split(","):
        m = re.match(r"\s*([A-Za-z0-9_.\-]+)\s*(?:;.*?dur=([0-9.eE+\-]+))?", part)
        if m and m.group(2) is not None:
            try:
                out[m.group(1)] = float(m.group(2))
            except ValueError:
                pass
    return out


def fnum(v: Optional[str]) -> Optional[float]:
    try:
        return float(v) if v is not None else None
    except ValueError:
        return None


def parse_metrics(text: str) -> Dict[str, float]:
    out: Dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        parts = line.rsplit(" ", 1)
        if len(parts) == 2:
            try:
                out[parts[0]] = float(parts[1])
            except ValueError:
                pass
    return out


def vm_hwm(pid: int) -> Optional[int]:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------------------------------ daemon
class Daemon:
    def __init__(self, exe: str, bundle: Optional[str], device: str, log_path: str, extra: List[str],
                 env: Optional[Dict[str, str]] = None):
        self.port = free_port()
        self.log_path = log_path
        args = [exe, "--listen", "127.0.0.1", "--port", str(self.port), "--deadline-ms", "3600000",
                "--max-audio-seconds", "3600", "--queue-capacity", "64", "--connection-timeout-s", "3600",
                "--http-threads", "4", "--log-level", "info"]
        if bundle:
            args += ["--model-dir", bundle, "--device", device]
        self.args = args + extra
        self.log = open(log_path, "wb")
        self.t0 = time.perf_counter()
        self.env = dict(env or {})
        self.proc = subprocess.Popen(self.args, stdout=self.log, stderr=subprocess.STDOUT, cwd=ROOT,
                                     env={**os.environ, **self.env})
        self.ready_s: Optional[float] = None

    def last_error(self) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                lines = f.read().splitlines()
        except OSError:
            return "no log"
        errs = [ln for ln in lines if "level=error" in ln or "level=fatal" in ln or "error:" in ln]
        line = (errs or lines or ["(empty log)"])[-1]
        m = re.search(r'msg="(.*)"\s*$', line)
        return m.group(1) if m else line

    def wait_ready(self, timeout: float) -> Optional[str]:
        """None when ready, else the reason it is not."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                return f"daemon exited with status {rc}: {self.last_error()}"
            r = http(self.port, "GET", "/readyz", timeout=5, keep_body=True)
            if r.status == 200:
                self.ready_s = time.perf_counter() - self.t0
                return None
            if r.status == 503 and b'"failed"' in r.body:
                return f"engine failed: {self.last_error()}"
            time.sleep(0.1)
        return f"not ready after {timeout:.0f} s"

    def stop(self) -> Optional[int]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


def engine_request(port: int, text: str, speaker: Optional[str], seed: int, stream: bool) -> dict:
    body = {"text": text, "format": "pcm", "seed": seed, "stream": stream}
    if speaker:
        body["speaker"] = speaker
    r = http(port, "POST", "/tts", body, keep_body=False)
    if r.error or r.status != 200:
        msg = r.error or f"HTTP {r.status}"
        return {"ok": False, "error": msg}
    st = server_timing(r.get("server-timing"))
    audio = fnum(r.get("x-audio-duration"))
    rate = fnum(r.headers.get("x-sample-rate")) or 24000.0
    if audio is None:
        audio = r.nbytes / 2.0 / rate
    return {"ok": True, "wall_ms": r.t_total * 1e3, "first_byte_ms": (r.t_first or r.t_total) * 1e3,
            "audio_s": audio, "rtf": fnum(r.get("x-real-time-factor")), "stages": st, "bytes": r.nbytes,
            "trailers": bool(r.trailers)}


def memory_reading(port: int) -> dict:
    """What the daemon says about its memory now: CUDA allocator gauges when on a GPU, resident set always."""
    r = http(port, "GET", "/metrics", keep_body=True)
    met = parse_metrics(r.body.decode("utf-8", "replace"))
    keys = {"gpu_allocated_bytes": "cosyvoiced_engine_gpu_memory_allocated_bytes",
            "gpu_reserved_bytes": "cosyvoiced_engine_gpu_memory_reserved_bytes",
            "gpu_peak_bytes": "cosyvoiced_engine_gpu_memory_peak_bytes",
            "rss_bytes": "cosyvoiced_process_resident_memory_bytes"}
    return {k: met.get(v) for k, v in keys.items() if met.get(v) is not None}


def pick_stage(stages: Dict[str, float], key: str) -> Optional[float]:
    for name in STAGE_ALIASES[key]:
        if name in stages:
            return stages[name]
    return None


def engine_case(port: int, case: dict, speaker: Optional[str], seed: int, runs: int) -> dict:
    buffered = [engine_request(port, case["text"], speaker, seed, False) for _ in range(runs)]
    errs = [b["error"] for b in buffered if not b["ok"]]
    ok = [b for b in buffered if b["ok"]]
    streams = [engine_request(port, case["text"], speaker, seed, True) for _ in range(max(1, runs))]
    streamed = streams[-1]
    stage_names = sorted({k for b in ok for k in b["stages"]})
    for b in ok:
        print(f"bench: engine {case['id']}: {b['wall_ms']:.0f} ms, {b['audio_s']:.2f} s audio", file=sys.stderr,
              flush=True)
    return {
        "id": case["id"], "runs": buffered, "errors": errs,
        "total_ms": summarize([b["wall_ms"] for b in ok]),
        "synth_ms": summarize([b["stages"].get("synth") for b in ok]),
        "rtf": summarize([b["rtf"] for b in ok]),
        "audio_s": summarize([b["audio_s"] for b in ok]),
        "stages_ms": {n: summarize([b["stages"].get(n) for b in ok]) for n in stage_names},
        "prefill_ms": summarize([pick_stage(b["stages"], "prefill_ms") for b in ok]),
        "decode_ms_per_token": summarize([pick_stage(b["stages"], "decode_ms_per_token") for b in ok]),
        "decode_ms_per_token_graph": summarize([pick_stage(b["stages"], "decode_ms_per_token_graph") for b in ok]),
        "decode_ms_per_token_eager": summarize([pick_stage(b["stages"], "decode_ms_per_token_eager") for b in ok]),
        "stream": streamed,
        "ttfa_ms": summarize([x.get("first_byte_ms") for x in streams if x.get("ok")]),
    }


def concurrency(port: int, text: str, speaker: Optional[str], seed: int, level: int, per_client: int,
                stream: bool) -> dict:
    results: List[dict] = []
    lock = threading.Lock()

    def client(i: int) -> None:
        for j in range(per_client):
            r = engine_request(port, text, speaker, seed + 1000 * i + j, stream)
            with lock:
                results.append(r)

    t0 = time.perf_counter()
    th = [threading.Thread(target=client, args=(i,)) for i in range(level)]
    for t in th:
        t.start()
    for t in th:
        t.join()
    wall = time.perf_counter() - t0
    ok = [r for r in results if r["ok"]]
    audio = sum(r["audio_s"] for r in ok)
    out = {"concurrency": level, "stream": stream, "requests": len(results), "errors": len(results) - len(ok),
           "wall_s": wall, "throughput_audio_s_per_s": audio / wall if wall > 0 else None,
           "latency_ms": summarize([r["wall_ms"] for r in ok])}
    if stream:
        out["ttfa_ms"] = summarize([r["first_byte_ms"] for r in ok])
        out["ttfa_server_ms"] = summarize([r["stages"].get("ttfa") for r in ok])
    else:
        out["rtf"] = summarize([r["rtf"] for r in ok])
    return out


# ------------------------------------------------------------------------------------------ report
def fmt(v, unit="", digits=1) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return "-"
    if isinstance(v, dict):
        if not v.get("n"):
            return "-"
        return f"{v['mean']:.{digits}f}{unit}"
    return f"{v:.{digits}f}{unit}"


def med(s: Optional[dict], unit="", digits=0) -> str:
    if not s or not s.get("n"):
        return "-"
    return f"{s['median']:.{digits}f}{unit}"


def msd(s: Optional[dict], digits=0) -> str:
    if not s or not s.get("n"):
        return "-"
    return f"{s['mean']:.{digits}f} / {s['median']:.{digits}f} ± {s['stdev']:.{digits}f}"


def table(rows: List[List[str]], head: List[str]) -> str:
    w = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    line = lambda r: "  ".join(str(x).ljust(w[i]) for i, x in enumerate(r))  # noqa: E731
    return "\n".join([line(head), "  ".join("-" * x for x in w)] + [line(r) for r in rows])


def report(doc: dict) -> str:
    out = []
    eng = doc["engine"]
    eag = doc["eager"]
    out.append(f"cosyvoiced bench {doc['date']} on {doc['machine']['description']}; bundle {doc['bundle']['path']} "
               f"({doc['bundle']['dtype']}, {doc['bundle']['size']}), device {doc['device']}, {doc['runs']} runs")
    if not eng.get("available"):
        out.append(f"engine: unavailable: {eng.get('reason')}")
    if not eag.get("available"):
        out.append(f"eager: unavailable: {eag.get('reason')}")
    rows = []
    for c in doc["cases"]:
        e = c.get("eager") or {}
        g = c.get("engine") or {}
        s = c.get("script") or {}
        rows.append([c["id"], str(c["chars"]), msd(e.get("total_ms")), msd(s.get("total_ms")) if s else "",
                     msd(g.get("total_ms")), fmt(c.get("speedup"), "x", 2), fmt(c.get("speedup_rtf"), "x", 2),
                     fmt(e.get("rtf"), "", 3), fmt(g.get("rtf"), "", 3), fmt(e.get("audio_s"), " s", 1),
                     fmt(g.get("audio_s"), " s", 1), med(g.get("ttfa_ms"), " ms")])
    out.append("")
    out.append("end to end, ms: mean / median ± stdev (speed-up = eager mean / engine mean; _rtf: per audio second)")
    out.append(table(rows, ["case", "chars", "eager", "script" if doc.get("script") else "", "engine", "speed-up",
                            "speed-up_rtf", "rtf eager", "rtf engine", "audio eager", "audio engine",
                            "ttfa stream (median)"]))
    rows = []
    for c in doc["cases"]:
        e = c.get("eager") or {}
        g = c.get("engine") or {}
        rows.append([c["id"], fmt(e.get("prefill_ms"), "", 1), fmt(e.get("decode_ms_per_token"), "", 2),
                     fmt(g.get("prefill_ms"), "", 1), fmt(g.get("decode_ms_per_token"), "", 2),
                     fmt(g.get("decode_ms_per_token_graph"), "", 2), fmt(g.get("decode_ms_per_token_eager"), "", 2)])
    out.append("")
    out.append("LLM, ms (prefill; decode per token)")
    out.append(table(rows, ["case", "eager prefill", "eager ms/tok", "engine prefill", "engine ms/tok",
                            "engine graph ms/tok", "engine no-graph ms/tok"]))
    fl = eag.get("weight_stream_floor")
    if fl:
        per = [(c["id"], (c.get("engine") or {}).get("decode_ms_per_token")) for c in doc["cases"]]
        ratios = ", ".join(f"{i} {v['median'] / fl['ms']:.2f}x" for i, v in per if v and v.get("n"))
        out.append(f"decode floor: streaming the decode step's {fl['bytes'] / 1e6:.0f} MB of weights once takes "
                   f"{fl['ms']:.1f} ms ({fl['gb_per_s']:.1f} GB/s, {doc['machine'].get('torch_threads')} threads); "
                   f"engine ms/token over the floor: {ratios or '-'}")
    if eng.get("concurrency"):
        rows = []
        for c in eng["concurrency"]:
            rows.append([str(c["concurrency"]), "stream" if c["stream"] else "buffered", str(c["requests"]),
                         str(c["errors"]), msd(c.get("latency_ms")),
                         fmt(c.get("ttfa_ms"), " ms", 0) if c["stream"] else fmt(c.get("rtf"), "", 3),
                         fmt(c.get("throughput_audio_s_per_s"), "", 2)])
        out.append("")
        out.append(f"engine through HTTP, case {eng.get('concurrency_case')}")
        out.append(table(rows, ["clients", "mode", "requests", "errors", "latency ms", "ttfa / rtf",
                                "audio s per s"]))
    out.append("")
    mib = lambda b: f"{b / 2**20:.0f} MiB" if b else "-"  # noqa: E731
    out.append(f"eager: load {fmt(eag.get('load_s'), ' s', 2)}, warm-up {fmt(eag.get('warmup_s'), ' s', 2)}, "
               f"RSS peak {mib(eag.get('rss_peak_bytes'))}, GPU peak {mib(eag.get('gpu_peak_bytes'))}")
    if eng.get("available"):
        out.append(f"engine: start-up to ready {fmt(eng.get('startup_s'), ' s', 2)} (load "
                   f"{fmt(eng.get('load_s'), ' s', 2)}, warm-up {fmt(eng.get('warmup_s'), ' s', 2)}), RSS peak "
                   f"{mib(eng.get('rss_peak_bytes'))}, GPU peak {mib(eng.get('gpu_peak_bytes'))}")
        mg = eng.get("memory_growth")
        if mg:
            f, b, z = mg.get("after_first_request") or {}, mg.get("before") or {}, mg.get("after") or {}
            parts = []
            for k, name in (("gpu_allocated_bytes", "GPU allocated"), ("gpu_reserved_bytes", "GPU reserved"),
                            ("rss_bytes", "RSS")):
                if k in z and k in f:
                    parts.append(f"{name} {mib(f[k])} after the first request, {mib(b.get(k))} before and "
                                 f"{mib(z[k])} after {mg['requests']} more ({(z[k] - b.get(k, z[k])) / 2**20:+.1f} MiB)")
            out.append(f"memory growth ({mg['case']}, {mg['errors']} errors): " + "; ".join(parts))
    return "\n".join(out)


# ------------------------------------------------------------------------------------------ main
def machine() -> dict:
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    os_name = ""
    try:
        with open("/etc/os-release", encoding="utf-8") as f:
            kv = dict(ln.rstrip("\n").split("=", 1) for ln in f if "=" in ln)
            os_name = kv.get("PRETTY_NAME", "").strip('"')
    except OSError:
        pass
    gpu = None
    if shutil.which("nvidia-smi"):
        try:
            gpu = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=20).stdout.strip() or None
        except (OSError, subprocess.TimeoutExpired):
            gpu = None
    cores = os.cpu_count()
    flags: List[str] = []
    mem = None
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            have = next((ln.split(":", 1)[1].split() for ln in f if ln.startswith("flags")), [])
        flags = [x for x in CPU_FLAGS if x in have]
        with open("/proc/meminfo", encoding="utf-8") as f:
            mem = next((int(ln.split()[1]) * 1024 for ln in f if ln.startswith("MemTotal:")), None)
    except OSError:
        pass
    try:
        import torch  # the venv's torch: the version the bundle and the engine use
        tv, threads = torch.__version__, torch.get_num_threads()
    except ImportError:
        tv, threads = None, None
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    desc = (f"{'GPU ' + gpu.splitlines()[0] + ', ' if gpu else ''}{cpu or 'CPU'}, {usable} cores"
            f"{f', {mem / 2**30:.0f} GiB' if mem else ''}, {os_name}, torch {tv}")
    return {"cpu": cpu, "cores": cores, "cores_usable": usable, "cpu_flags": flags, "memory_bytes": mem,
            "os": os_name, "gpu": gpu, "torch": tv, "torch_threads": threads, "description": desc}


# CPU features that decide which kernels libtorch/oneDNN use (bf16/fp16 units in particular)
CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16",
             "amx_int8", "amx_fp16")


def bundle_info(path: str) -> dict:
    with open(os.path.join(path, "manifest.json"), encoding="utf-8") as f:
        m = json.load(f)
    q = m.get("llm", {})
    size = "random " + str(m.get("source", {}).get("random")) if m.get("source", {}).get("random") else "official"
    return {"path": path, "dtype": m.get("dtype"), "flow_dtype": m.get("flow_dtype", m.get("dtype")), "size": size,
            "llm_layers": q.get("num_layers"),
            "llm_hidden": q.get("hidden_size"), "torch_version": m.get("torch_version")}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Benchmark the daemon's CosyVoice2 engine against the eager baseline.")
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--daemon", default=os.path.join(ROOT, "build", "cosyvoiced"))
    ap.add_argument("--cases", default=os.path.join(HERE, "bench_cases.json"))
    ap.add_argument("--case-ids", help="comma-separated case ids (default: all)")
    ap.add_argument("--runs", type=int, default=3, help="measured runs per case and side")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--concurrency", default="1,2,4")
    ap.add_argument("--conc-case", help="case for the concurrency runs (default: the shortest selected)")
    ap.add_argument("--conc-runs", type=int, default=2, help="requests per client in the concurrency runs")
    ap.add_argument("--out", default=os.environ.get("BENCH_OUT") or os.path.join(ROOT, "build", "bench.json"))
    ap.add_argument("--log-dir", help="daemon and eager logs (default: next to --out)")
    ap.add_argument("--no-eager", action="store_true")
    ap.add_argument("--no-engine", action="store_true")
    ap.add_argument("--with-script", action="store_true", help="also run the Python pipeline over model.ts")
    ap.add_argument("--threads", type=int, default=0, help="eager torch threads (0 = torch default)")
    ap.add_argument("--ready-timeout", type=float, default=900.0)
    ap.add_argument("--daemon-arg", action="append", default=[], help="extra daemon argument (repeatable)")
    ap.add_argument("--speaker", help="speaker for both sides (default: the eager run's choice)")
    ap.add_argument("--daemon-env", action="append", default=[], help="NAME=VALUE for the daemon (repeatable)")
    ap.add_argument("--graph-env", help="env switch of the engine's CUDA graphs (e.g. COSYVOICED_CUDA_GRAPH): the "
                    "main pass runs with NAME=1, a second short pass with NAME=0 gives the no-graph LLM figures")
    ap.add_argument("--growth-requests", type=int, default=100,
                    help="requests between the two memory readings of the growth check (0: skip)")
    ap.add_argument("--engine-espeak", action="store_true",
                    help="harness self-test: run the daemon without the bundle (its espeak-ng engine)")
    a = ap.parse_args(argv)

    bundle = os.path.abspath(a.bundle)
    out_path = os.path.abspath(a.out)
    log_dir = os.path.abspath(a.log_dir or os.path.splitext(out_path)[0] + "-logs")
    os.makedirs(log_dir, exist_ok=True)
    with open(a.cases, encoding="utf-8") as f:
        all_cases = json.load(f)["cases"]
    if a.case_ids:
        want = [x.strip() for x in a.case_ids.split(",") if x.strip()]
        by = {c["id"]: c for c in all_cases}
        bad = [w for w in want if w not in by]
        if bad:
            print(f"bench: unknown case id(s) {bad} (have: {', '.join(by)})", file=sys.stderr)
            return 2
        cases = [by[w] for w in want]
    else:
        cases = all_cases
    doc = {"date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "machine": machine(),
           "bundle": bundle_info(bundle), "device": a.device, "runs": a.runs, "seed": a.seed,
           "cases_file": os.path.relpath(os.path.abspath(a.cases), ROOT), "script": a.with_script,
           "eager": {"available": False}, "engine": {"available": False}, "cases": []}
    speaker = a.speaker

    # ---- eager (child process)
    def run_pipeline(impl: str) -> dict:
        jpath = os.path.join(log_dir, f"{impl}.json")
        if os.path.exists(jpath):
            os.remove(jpath)
        cmd = [sys.executable, os.path.join(HERE, "bench_eager.py"), "--bundle", bundle, "--device", a.device,
               "--impl", impl, "--cases", a.cases, "--runs", str(a.runs), "--seed", str(a.seed), "--json", jpath,
               "--threads", str(a.threads)]
        if a.case_ids:
            cmd += ["--case-ids", a.case_ids]
        if speaker:
            cmd += ["--speaker", speaker]
        print(f"bench: {impl} pipeline ...", file=sys.stderr, flush=True)
        with open(os.path.join(log_dir, f"{impl}.log"), "wb") as lf:
            p = subprocess.run(cmd, stdout=lf, stderr=subprocess.STDOUT, cwd=ROOT)
        if p.returncode != 0 or not os.path.exists(jpath):
            with open(os.path.join(log_dir, f"{impl}.log"), encoding="utf-8", errors="replace") as lf:
                tail = lf.read().strip().splitlines()[-1:] or ["?"]
            return {"available": False, "reason": f"bench_eager.py --impl {impl} exited {p.returncode}: {tail[0]}"}
        with open(jpath, encoding="utf-8") as f:
            d = json.load(f)
        d["available"] = True
        return d

    eager_cases: Dict[str, dict] = {}
    script_cases: Dict[str, dict] = {}
    if not a.no_eager:
        doc["eager"] = run_pipeline("eager")
        eager_cases = {c["id"]: c for c in doc["eager"].get("cases", [])}
        if doc["eager"].get("available") and not speaker:
            speaker = doc["eager"].get("speaker")
        if a.with_script:
            doc["script_pipeline"] = run_pipeline("script")
            script_cases = {c["id"]: c for c in doc["script_pipeline"].get("cases", [])}
    else:
        doc["eager"] = {"available": False, "reason": "--no-eager"}

    # ---- engine (daemon)
    engine_cases: Dict[str, dict] = {}
    eng = doc["engine"]
    if a.no_engine:
        eng["reason"] = "--no-engine"
    elif not os.access(a.daemon, os.X_OK):
        eng["reason"] = f"{a.daemon} not built (make)"
    else:
        print("bench: starting the daemon ...", file=sys.stderr, flush=True)
        denv = dict(kv.split("=", 1) for kv in a.daemon_env if "=" in kv)
        if a.graph_env:
            denv[a.graph_env] = "1"
        d = Daemon(a.daemon, None if a.engine_espeak else bundle, a.device, os.path.join(log_dir, "daemon.log"),
                   a.daemon_arg, denv)
        eng["env"] = denv
        eng["command"] = " ".join(d.args)
        try:
            why = d.wait_ready(a.ready_timeout)
            if why:
                eng["reason"] = why
            else:
                eng["available"] = True
                eng["startup_s"] = d.ready_s
                r = http(d.port, "GET", "/v1/speakers", keep_body=True)
                try:
                    spk = json.loads(r.body.decode())
                    ids = [s.get("id") for s in spk.get("speakers", [])]
                    eng["engine_name"] = spk.get("engine")
                except ValueError:
                    ids = []
                eng_speaker = speaker if speaker in ids else None
                if speaker and eng_speaker is None:
                    eng["speaker_note"] = f"speaker {speaker!r} not offered by the daemon; its default was used"
                eng["speaker"] = eng_speaker
                engine_request(d.port, cases[0]["text"][:12], eng_speaker, a.seed, False)  # warm-up (a few words)
                mem_first = memory_reading(d.port)
                for c in cases:
                    engine_cases[c["id"]] = engine_case(d.port, c, eng_speaker, a.seed, a.runs)
                levels = [int(x) for x in a.concurrency.split(",") if x.strip()]
                cc = next((c for c in cases if c["id"] == a.conc_case), None) or min(cases, key=lambda c: len(c["text"]))
                eng["concurrency_case"] = cc["id"]
                eng["concurrency"] = []
                for lvl in levels:
                    for stream in (False, True):
                        print(f"bench: concurrency {lvl} {'stream' if stream else 'buffered'} ...", file=sys.stderr,
                              flush=True)
                        eng["concurrency"].append(concurrency(d.port, cc["text"], eng_speaker, a.seed, lvl,
                                                              a.conc_runs, stream))
                if a.growth_requests > 0:
                    print(f"bench: memory growth over {a.growth_requests} requests ...", file=sys.stderr, flush=True)
                    short = min(cases, key=lambda c: len(c["text"]))
                    mem_before = memory_reading(d.port)
                    t0 = time.monotonic()
                    errors = 0
                    for i in range(a.growth_requests):
                        text = short["text"][: max(4, len(short["text"]) * (8 + i % 9) // 16)]
                        rr = engine_request(d.port, text, eng_speaker, a.seed + i, False)
                        errors += 0 if rr.get("ok") else 1
                    mem_after = memory_reading(d.port)
                    eng["memory_growth"] = {"case": short["id"], "requests": a.growth_requests, "errors": errors,
                                            "seconds": time.monotonic() - t0, "after_first_request": mem_first,
                                            "before": mem_before, "after": mem_after}
                r = http(d.port, "GET", "/metrics", keep_body=True)
                met = parse_metrics(r.body.decode("utf-8", "replace"))
                eng["load_s"] = met.get("cosyvoiced_engine_load_seconds")
                eng["warmup_s"] = met.get("cosyvoiced_engine_warmup_seconds")
                eng["gauges"] = {k: v for k, v in met.items() if k.startswith("cosyvoiced_engine_")
                                 and k not in ("cosyvoiced_engine_load_seconds", "cosyvoiced_engine_warmup_seconds",
                                               "cosyvoiced_engine_ready", "cosyvoiced_engine_errors_total")
                                 and not k.startswith("cosyvoiced_engine_info")}
                peaks = [v for k, v in eng["gauges"].items() if "gpu" in k and "memory" in k and
                         ("peak" in k or "max" in k)]
                eng["gpu_peak_bytes"] = max(peaks) if peaks else None
                eng["rss_bytes_metrics"] = met.get("cosyvoiced_process_resident_memory_bytes")
                eng["rss_peak_bytes"] = vm_hwm(d.proc.pid)
        finally:
            eng["exit_status"] = d.stop()
    if eng.get("available") and a.graph_env:
        denv[a.graph_env] = "0"
        print(f"bench: no-graph pass ({a.graph_env}=0) ...", file=sys.stderr, flush=True)
        d2 = Daemon(a.daemon, bundle, a.device, os.path.join(log_dir, "daemon-nograph.log"), a.daemon_arg, denv)
        ng: dict = {"env": dict(denv)}
        try:
            why = d2.wait_ready(a.ready_timeout)
            if why:
                ng["reason"] = why
            else:
                cc = next(c for c in cases if c["id"] == eng["concurrency_case"])
                engine_request(d2.port, cc["text"][:12], eng.get("speaker"), a.seed, False)
                ng["case"] = engine_case(d2.port, cc, eng.get("speaker"), a.seed, a.runs)
        finally:
            d2.stop()
        eng["no_graph"] = ng
        g = engine_cases.get(eng["concurrency_case"])
        if g and ng.get("case"):
            g["decode_ms_per_token_graph"] = g["decode_ms_per_token"]
            g["decode_ms_per_token_eager"] = ng["case"]["decode_ms_per_token"]
    if not eng.get("available"):
        print(f"bench: engine unavailable: {eng.get('reason')}", file=sys.stderr)

    # ---- merge per case
    for c in cases:
        e = eager_cases.get(c["id"])
        g = engine_cases.get(c["id"])
        row = {"id": c["id"], "lang": c.get("lang"), "chars": len(c["text"]), "eager": None, "engine": g,
               "script": None, "speedup": None, "speedup_rtf": None}
        if e:
            row["eager"] = {k: e[k] for k in ("total_ms", "rtf", "prefill_ms", "decode_ms_per_token")}
            row["eager"]["audio_s"] = summarize([r["audio_s"] for r in e["runs"]])
            row["eager"]["tokens"] = summarize([r["tokens"] for r in e["runs"]])
            row["eager"]["stages_ms"] = {k: summarize([r[k + "_ms"] for r in e["runs"]])
                                         for k in ("frontend", "prefill", "decode", "flow", "hift")}
        s = script_cases.get(c["id"])
        if s:
            row["script"] = {k: s[k] for k in ("total_ms", "rtf", "prefill_ms", "decode_ms_per_token")}
        if e and g and g["total_ms"].get("n") and e["total_ms"].get("n"):
            row["speedup"] = e["total_ms"]["mean"] / g["total_ms"]["mean"]
            er, gr = e["rtf"].get("mean"), g["rtf"].get("mean")
            if er and gr:
                row["speedup_rtf"] = er / gr
        doc["cases"].append(row)
    if doc["eager"].get("available"):
        doc["eager"] = {k: v for k, v in doc["eager"].items() if k != "cases"}

    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1, ensure_ascii=False)
        f.write("\n")
    text = report(doc)
    with open(os.path.splitext(out_path)[0] + ".txt", "w", encoding="utf-8") as f:
        f.write(text + "\n")
    chart.write_svg([doc], os.path.splitext(out_path)[0] + ".svg")
    print(text)
    print(f"\nbench: wrote {out_path} (and .txt, .svg); logs in {log_dir}", file=sys.stderr)
    ok_eager = a.no_eager or doc["eager"].get("available")
    return 0 if ok_eager else 1


if __name__ == "__main__":
    sys.exit(main())
