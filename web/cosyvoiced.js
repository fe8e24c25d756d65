// cosyvoiced.js — browser client of the cosyvoiced daemon (served by it at GET /cosyvoiced.js).
//
//   import { speak, voices, normalize } from "http://mirror.local:8080/cosyvoiced.js";
//   const h = speak("Good morning.", { speaker: "zero_shot_0" });
//   h.on("first-audio", (e) => console.log("first sound after", e.ttfaMs, "ms"));
//   h.on("error", (e) => console.warn(e.status, e.error));   // the daemon's JSON envelope
//   await h.done;                                            // the whole reply received and scheduled
//   await h.ended;                                           // playback finished
//
// Streaming by default: POST /tts with format "pcm" and stream true; the body (16-bit little-endian mono
// at the reply's X-Sample-Rate) is read chunk by chunk and scheduled gap-free on a Web Audio clock, so
// sound starts with the first chunk. stop() aborts the fetch (the daemon cancels the job). Buffered
// (stream: false) fetches a WAV and plays it once decoded. No dependencies; ES2020.

const DEFAULTS = { baseUrl: "", apiKey: "", stream: true, format: "wav" };

function url(opts, path) {
  const base = opts.baseUrl || "";
  return base.replace(/\/+$/, "") + path;
}

function headers(opts, json) {
  const h = {};
  if (json) h["Content-Type"] = "application/json";
  if (opts.apiKey) h["Authorization"] = "Bearer " + opts.apiKey;
  return h;
}

async function envelope(resp) {
  let body = null;
  try {
    body = await resp.json();
  } catch (_) {
    /* not JSON: libmicrohttpd's own errors */
  }
  const err = (body && body.error) || { code: resp.status, message: resp.statusText || "HTTP " + resp.status };
  return { status: resp.status, error: err, requestId: body && body.request_id };
}

async function getJson(opts, path, init) {
  const resp = await fetch(url(opts, path), init || { headers: headers(opts, false) });
  if (!resp.ok) {
    const e = await envelope(resp);
    const ex = new Error(e.error.message);
    Object.assign(ex, e);
    throw ex;
  }
  return resp.json();
}

/** The daemon's voices: {engine, default, sample_rate, speakers: [{id, language, name, source}]}. */
export function voices(options = {}) {
  const opts = { ...DEFAULTS, ...options };
  return getJson(opts, "/v1/speakers");
}

/** What /tts would speak: {sentences: [{text, ids}], lang}. */
export function normalize(text, options = {}) {
  const opts = { ...DEFAULTS, ...options };
  return getJson(opts, "/v1/text/normalize", {
    method: "POST",
    headers: headers(opts, true),
    body: JSON.stringify({ text, normalize: opts.normalize !== false }),
  });
}

/** Server-Timing "a;dur=1.2, b;dur=3" -> [{name, ms}]. */
export function parseServerTiming(value) {
  if (!value) return [];
  return value
    .split(",")
    .map((part) => {
      const m = /^\s*([\w-]+)\s*;\s*dur=([\d.]+)/.exec(part);
      return m ? { name: m[1], ms: parseFloat(m[2]) } : null;
    })
    .filter(Boolean);
}

let sharedContext = null;
function audioContext() {
  if (!sharedContext) sharedContext = new (window.AudioContext || window.webkitAudioContext)();
  return sharedContext;
}

/**
 * Speak `text`. Options: speaker, speed, seed, normalize, sampleRate, stream (default true), format
 * (buffered only: wav, mp3, opus, flac), baseUrl, apiKey, audioContext, play (default true; false =
 * fetch and count only). Returns a handle: {on(event, cb), stop(), done, ended, stats}: `done` resolves
 * with the stats once the whole reply is received (and scheduled), `ended` once playback is over. Events:
 * "response" (headers arrived: {status, headers}), "first-audio" ({ttfaMs}), "chunk" ({samples}), "done"
 * (stats), "ended", "error" ({status, error: {code, type, message, field?}, requestId}).
 */
export function speak(text, options = {}) {
  const opts = { ...DEFAULTS, ...options };
  const listeners = {};
  const ctrl = new AbortController();
  const stats = {
    requestId: null,
    sampleRate: 0,
    samples: 0,
    bytes: 0,
    ttfaMs: null,
    totalMs: null,
    audioSeconds: 0,
    serverTiming: [],
    blob: null,
    stopped: false,
  };
  const emit = (ev, data) => (listeners[ev] || []).forEach((cb) => cb(data));
  let sources = [];
  let ctx = null;

  const handle = {
    stats,
    on(ev, cb) {
      (listeners[ev] = listeners[ev] || []).push(cb);
      return handle;
    },
    stop() {
      stats.stopped = true;
      ctrl.abort();
      sources.forEach((s) => {
        try {
          s.stop();
        } catch (_) {
          /* not started */
        }
      });
    },
  };

  const body = { text, stream: !!opts.stream, format: opts.stream ? "pcm" : opts.format };
  for (const k of ["speaker", "speed", "seed", "normalize"]) if (opts[k] !== undefined && opts[k] !== "") body[k] = opts[k];
  if (opts.sampleRate) body.sample_rate = Number(opts.sampleRate);

  handle.done = (async () => {
    const t0 = performance.now();
    let resp;
    try {
      resp = await fetch(url(opts, "/tts"), {
        method: "POST",
        headers: headers(opts, true),
        body: JSON.stringify(body),
        signal: ctrl.signal,
      });
    } catch (e) {
      if (stats.stopped) return stats;
      const err = { status: 0, error: { code: 0, message: String(e) } };
      emit("error", err);
      throw Object.assign(new Error(err.error.message), err);
    }
    stats.requestId = resp.headers.get("X-Request-Id");
    emit("response", { status: resp.status, headers: resp.headers });
    if (!resp.ok) {
      const err = await envelope(resp);
      emit("error", err);
      throw Object.assign(new Error(err.error.message), err);
    }
    stats.serverTiming = parseServerTiming(resp.headers.get("Server-Timing"));
    stats.sampleRate = parseInt(resp.headers.get("X-Sample-Rate") || "0", 10);
    if (opts.play !== false) {
      ctx = opts.audioContext || audioContext();
      if (ctx.state === "suspended") await ctx.resume();
    }
    const parts = [];
    if (opts.stream) {
      // PCM s16le mono: schedule each chunk right after the previous one.
      const reader = resp.body.getReader();
      let carry = null;
      let next = ctx ? ctx.currentTime + 0.05 : 0;
      for (;;) {
        let r;
        try {
          r = await reader.read();
        } catch (e) {
          if (stats.stopped) break;
          throw e;
        }
        if (r.done) break;
        let bytes = r.value;
        parts.push(bytes);
        stats.bytes += bytes.length;
        if (carry) {
          const joined = new Uint8Array(carry.length + bytes.length);
          joined.set(carry);
          joined.set(bytes, carry.length);
          bytes = joined;
          carry = null;
        }
        if (bytes.length % 2) {
          carry = bytes.slice(bytes.length - 1);
          bytes = bytes.slice(0, bytes.length - 1);
        }
        const n = bytes.length / 2;
        if (!n) continue;
        const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
        const f = new Float32Array(n);
        for (let i = 0; i < n; i++) f[i] = view.getInt16(2 * i, true) / 32768;
        if (stats.samples === 0) {
          stats.ttfaMs = performance.now() - t0;
          emit("first-audio", { ttfaMs: stats.ttfaMs });
        }
        stats.samples += n;
        emit("chunk", { samples: n, total: stats.samples });
        if (ctx) {
          const buf = ctx.createBuffer(1, n, stats.sampleRate);
          buf.copyToChannel(f, 0);
          const src = ctx.createBufferSource();
          src.buffer = buf;
          src.connect(ctx.destination);
          next = Math.max(next, ctx.currentTime);
          src.start(next);
          next += buf.duration;
          sources.push(src);
        }
      }
      stats.blob = new Blob(parts, { type: "audio/L16" });
    } else {
      const data = await resp.arrayBuffer();
      stats.bytes = data.byteLength;
      stats.blob = new Blob([data], { type: resp.headers.get("Content-Type") || "application/octet-stream" });
      stats.ttfaMs = performance.now() - t0;
      if (ctx) {
        const audio = await ctx.decodeAudioData(data.slice(0));
        stats.samples = audio.length;
        stats.sampleRate = audio.sampleRate;
        const src = ctx.createBufferSource();
        src.buffer = audio;
        src.connect(ctx.destination);
        src.start();
        sources.push(src);
        emit("first-audio", { ttfaMs: stats.ttfaMs });
      }
    }
    stats.totalMs = performance.now() - t0;
    stats.audioSeconds = stats.sampleRate ? stats.samples / stats.sampleRate : 0;
    if (!opts.stream) {
      const d = parseFloat(resp.headers.get("X-Audio-Duration") || "0");
      if (!ctx) stats.audioSeconds = d;
    }
    emit("done", stats);
    return stats;
  })();
  handle.done.catch(() => {});
  handle.ended = handle.done.then(
    () =>
      new Promise((res) => {
        const last = sources[sources.length - 1];
        if (!last || stats.stopped) return res(stats);
        last.onended = () => res(stats);
      }).then((st) => {
        emit("ended", st);
        return st;
      }),
    () => stats,
  );
  return handle;
}

export default { speak, voices, normalize, parseServerTiming };
