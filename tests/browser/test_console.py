#!/usr/bin/python3
"""tests/browser/test_console.py — the console page (GET /) and /cosyvoiced.js in a real headless Chromium.

Debian's chromium + chromium-driver + python3-selenium (tools/dev/deps.sh installs them; run with
/usr/bin/python3). Starts the real daemon (espeak-ng engine) on a free port and checks: the page loads
with no console error and no CSP violation, the speaker list is filled, buffered play decodes the
duration the daemon reports, streamed play sounds at the first chunk (before the last one) and plays every
sample the daemon sent, Stop mid-stream cancels the job (cosyvoiced_cancellations_total + 1), a bad input
shows the error with its field highlighted, and with API keys a wrong key shows 401. Saves a screenshot of
the console after a synthesis as build/browser/console.png. Fails (never skips) when Chromium is absent.

    /usr/bin/python3 tests/browser/test_console.py [--daemon build/cosyvoiced] [--out build/browser]
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

CHECKS = []


def check(cond, what):
    CHECKS.append((bool(cond), what))
    print(("PASS " if cond else "FAIL ") + what, flush=True)
    if not cond:
        raise SystemExit(1)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Daemon:
    def __init__(self, binary, args, log):
        self.port = free_port()
        self.log = open(log, "w")
        self.proc = subprocess.Popen([binary, "--listen", "127.0.0.1", "--port", str(self.port)] + args,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        self.base = f"http://127.0.0.1:{self.port}"
        for _ in range(300):
            try:
                with urllib.request.urlopen(self.base + "/readyz", timeout=1) as r:
                    if r.status == 200:
                        return
            except Exception:
                time.sleep(0.1)
        raise SystemExit(f"daemon did not become ready (log: {log})")

    def post(self, path, body, headers=None):
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        req = urllib.request.Request(self.base + path, data=json.dumps(body).encode(), headers=h)
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.headers, r.read()

    def metric(self, name):
        with urllib.request.urlopen(self.base + "/metrics", timeout=5) as r:
            for line in r.read().decode().splitlines():
                if line.startswith(name + " "):
                    return float(line.split()[1])
        return None

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def browser():
    for exe in ("/usr/bin/chromium", "/usr/bin/chromedriver"):
        if not os.access(exe, os.X_OK):
            raise SystemExit(f"FAIL {exe} missing: run bash tools/dev/deps.sh (chromium, chromium-driver)")
    o = Options()
    o.binary_location = "/usr/bin/chromium"
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--autoplay-policy=no-user-gesture-required",
              "--window-size=1280,900", "--disable-dev-shm-usage"):
        o.add_argument(a)
    o.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=o)


def console_errors(drv):
    return [e for e in drv.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]


def wait_js(drv, expr, timeout=30):
    return WebDriverWait(drv, timeout, poll_frequency=0.05).until(lambda d: d.execute_script("return " + expr))


def start_and_wait(drv, done_count):
    drv.find_element(By.ID, "play").click()
    wait_js(drv, f"window.cvConsole.events.filter(e => e.type === 'done' || e.type === 'failed').length >= {done_count}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--daemon", default="build/cosyvoiced")
    ap.add_argument("--out", default="build/browser")
    ap.add_argument("--bundle", help="a CosyVoice2 bundle (the tiny one) for the CosyVoice2-specific checks")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    t0 = time.time()
    d = Daemon(a.daemon, [], os.path.join(a.out, "daemon.log"))
    drv = browser()
    try:
        drv.get(d.base + "/")
        n = wait_js(drv, "document.querySelectorAll('#speaker option').length")
        check(n > 10, f"speaker list filled ({n} espeak-ng voices)")
        check(drv.find_element(By.CSS_SELECTOR, "#speaker option:checked").get_attribute("value") == "en",
              "the default voice is selected")
        check(console_errors(drv) == [], "page loads with no console error or CSP violation")
        text = "The quick brown fox jumps over the lazy dog."
        drv.find_element(By.ID, "text").clear()
        drv.find_element(By.ID, "text").send_keys(text)

        # buffered: the decoded duration is the daemon's X-Audio-Duration
        drv.execute_script("document.getElementById('stream').checked = false")
        start_and_wait(drv, 1)
        got = drv.execute_script("return window.cvConsole.last.stats.audioSeconds")
        hdr, _ = d.post("/tts", {"text": text})
        want = float(hdr["X-Audio-Duration"])
        check(abs(got - want) < 0.002, f"buffered play decodes {got:.4f} s, the daemon reports {want:.4f} s")

        # streamed: sound at the first chunk, every sample played (a text long enough for several chunks)
        text = " ".join(["Streaming starts the sound with the first chunk of audio."] * 12)
        drv.execute_script("document.getElementById('text').value = arguments[0]; "
                           "document.getElementById('stream').checked = true", text)
        start_and_wait(drv, 2)
        ev = drv.execute_script("return window.cvConsole.events.filter(e => e.type === 'done').pop()")
        stats = drv.execute_script("return window.cvConsole.last.stats")
        _, pcm = d.post("/tts", {"text": text, "format": "pcm", "stream": True})
        check(ev["stream"] and ev["chunks"] > 1 and ev["firstAudioAtChunk"] == 0,
              f"streamed play starts at the first of {ev['chunks']} chunks (TTFA {ev['ttfaMs']:.0f} ms)")
        check(stats["samples"] == len(pcm) // 2, f"streamed play received {stats['samples']} samples = the reply's {len(pcm) // 2}")
        timing = drv.find_elements(By.CSS_SELECTOR, "#timing .bar")
        check(len(timing) >= 2, f"timing chart drawn ({len(timing)} bars from Server-Timing)")
        drv.save_screenshot(os.path.join(a.out, "console.png"))

        # stop mid-stream: the job is cancelled
        before = d.metric("cosyvoiced_cancellations_total")
        # ~4000 characters at half speed: minutes of audio, seconds of synthesis, so the job is still running
        long_text = " ".join(["This sentence keeps the engine busy for a little while."] * 70)
        drv.execute_script("document.getElementById('text').value = arguments[0]; "
                           "document.getElementById('speed').value = '0.5'", long_text)
        drv.find_element(By.ID, "play").click()
        wait_js(drv, "(window.cvConsole.events.at(-1) || {}).chunks >= 1")
        drv.find_element(By.ID, "stop").click()
        after = before
        for _ in range(150):
            after = d.metric("cosyvoiced_cancellations_total")
            if after > before:
                break
            time.sleep(0.1)
        check(after == before + 1, f"Stop mid-stream cancels the job (cancellations_total {before:.0f} -> {after:.0f})")

        # a bad input: the error and its field
        drv.execute_script("document.getElementById('text').value = 'Hello.'; document.getElementById('speed').value = '5'")
        busy = d.metric("cosyvoiced_worker_busy")
        check(busy == 0, "the cancelled job left the worker")
        start_and_wait(drv, 4)
        err = drv.find_element(By.ID, "error")
        cls = drv.find_element(By.ID, "speed").get_attribute("class")
        check(err.is_displayed() and "speed" in err.text and "field-error" in cls,
              f"a bad input shows the error with its field: {err.text!r}")
    finally:
        drv.quit()
        d.stop()

    # API keys: a wrong key shows 401
    d = Daemon(a.daemon, ["--api-keys", "right-key-1234"], os.path.join(a.out, "daemon-keys.log"))
    drv = browser()
    try:
        drv.get(d.base + "/")
        drv.execute_script("localStorage.setItem('cosyvoiced.apiKey', 'wrong-key-9999')")
        drv.get(d.base + "/")
        wait_js(drv, "!document.getElementById('error').hidden")
        err = drv.find_element(By.ID, "error").text
        check(err.startswith("401"), f"a wrong API key shows 401: {err!r}")
        drv.execute_script("localStorage.setItem('cosyvoiced.apiKey', 'right-key-1234')")
        drv.get(d.base + "/")
        n = wait_js(drv, "document.querySelectorAll('#speaker option').length")
        check(n > 10, "the right key loads the speakers")
    finally:
        drv.quit()
        d.stop()
    if a.bundle:
        # CosyVoice2: cross-lingual variants are marked, buffered play of a 24 kHz voice works
        d = Daemon(a.daemon, ["--model-dir", a.bundle, "--device", "cpu"], os.path.join(a.out, "daemon-cv2.log"))
        drv = browser()
        try:
            drv.get(d.base + "/")
            wait_js(drv, "document.querySelectorAll('#speaker option').length")
            labels = [o.text for o in drv.find_elements(By.CSS_SELECTOR, "#speaker option")]
            check(any(t.startswith("↔ zero_shot_0/cross-lingual") for t in labels)
                  and any(t == "zero_shot_0 (default)" for t in labels), f"CosyVoice2 voices listed: {labels}")
            drv.execute_script("document.getElementById('text').value = 'Hello there.'; "
                               "document.getElementById('stream').checked = false; "
                               "document.getElementById('seed').value = '1'")
            start_and_wait(drv, 1)
            got = drv.execute_script("return window.cvConsole.last.stats.audioSeconds")
            hdr, _ = d.post("/tts", {"text": "Hello there.", "seed": 1})
            want = float(hdr["X-Audio-Duration"])
            check(abs(got - want) < 0.002 and console_errors(drv) == [],
                  f"CosyVoice2 buffered play decodes {got:.4f} s, the daemon reports {want:.4f} s")
        finally:
            drv.quit()
            d.stop()
    print(f"browser: {len(CHECKS)} checks passed in {time.time() - t0:.1f} s; screenshot {a.out}/console.png")


if __name__ == "__main__":
    main()
