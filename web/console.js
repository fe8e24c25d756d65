// console.js — the built-in console page (GET /), on top of the client module /cosyvoiced.js.
// Speaker list from /v1/speakers (grouped by language, cross-lingual variants marked), buffered and
// streamed playback, a timing chart from Server-Timing, TTFA measured here (request sent -> first sound),
// the last 10 requests, a status strip from /readyz and /metrics, text preview from /v1/text/normalize.
// For the browser test, window.cvConsole exposes the last result and a log of events.
import { speak, voices, normalize } from "/cosyvoiced.js";

const $ = (id) => document.getElementById(id);
const state = { handle: null, history: [], events: [], last: null, maxChars: 0 };
window.cvConsole = state;

const keyField = $("apikey");
keyField.value = localStorage.getItem("cosyvoiced.apiKey") || "";
keyField.addEventListener("change", () => {
  localStorage.setItem("cosyvoiced.apiKey", keyField.value);
  loadSpeakers();
});
const opts = () => ({ apiKey: keyField.value.trim() });

function showError(e) {
  const box = $("error");
  document.querySelectorAll(".field-error").forEach((el) => el.classList.remove("field-error"));
  if (!e) {
    box.hidden = true;
    return;
  }
  const err = e.error || { message: String(e) };
  box.textContent = `${e.status || err.code || ""} ${err.type || ""}: ${err.message}` + (err.field ? ` (field: ${err.field})` : "");
  box.hidden = false;
  const fieldMap = { text: "text", input: "text", speaker: "speaker", voice: "speaker", format: "format",
                     sample_rate: "rate", speed: "speed", seed: "seed" };
  if (err.field && fieldMap[err.field]) $(fieldMap[err.field]).classList.add("field-error");
  if ((e.status || err.code) === 401) keyField.classList.add("field-error");
  state.events.push({ type: "error", status: e.status || err.code, field: err.field || null });
}

async function loadSpeakers() {
  const sel = $("speaker");
  try {
    const v = await voices(opts());
    sel.textContent = "";
    const groups = {};
    for (const s of v.speakers) (groups[s.language || "other"] = groups[s.language || "other"] || []).push(s);
    for (const [lang, list] of Object.entries(groups).sort()) {
      const og = document.createElement("optgroup");
      og.label = lang;
      for (const s of list) {
        const o = document.createElement("option");
        o.value = s.id;
        const xl = s.id.endsWith("/cross-lingual");
        o.textContent = (xl ? "↔ " : "") + s.id + (s.id === v.default ? " (default)" : "");
        if (s.id === v.default) o.selected = true;
        og.appendChild(o);
      }
      sel.appendChild(og);
    }
    state.speakers = v.speakers.length;
    showError(null);
  } catch (e) {
    showError(e);
  }
}

function updateCount() {
  const n = [...$("text").value].length;
  $("count").textContent = state.maxChars ? `${n} / ${state.maxChars} characters` : `${n} characters`;
}
$("text").addEventListener("input", updateCount);

async function refreshStatus() {
  const el = $("status");
  try {
    const r = await fetch("/readyz");
    const j = await r.json();
    if (j.max_text_chars) state.maxChars = j.max_text_chars;
    let extra = "";
    try {
      const m = await (await fetch("/metrics")).text();
      const get = (name) => {
        const mm = new RegExp("^" + name + "(?:\\{[^}]*\\})? ([0-9.e+-]+)$", "m").exec(m);
        return mm ? parseFloat(mm[1]) : null;
      };
      const req = m.split("\n").filter((l) => l.startsWith("cosyvoiced_requests_total{route=\"tts\"")).reduce((a, l) => a + parseFloat(l.split(" ").pop()), 0);
      const gpu = get("cosyvoiced_engine_gpu_nvml_memory_used_bytes") ?? get("cosyvoiced_engine_gpu_memory_allocated_bytes");
      extra = ` · queue ${get("cosyvoiced_queue_depth")}/${get("cosyvoiced_queue_capacity")} · ${req} /tts requests` +
              (gpu !== null ? ` · GPU ${(gpu / 2 ** 30).toFixed(2)} GiB` : "");
    } catch (_) {
      /* metrics unreachable: the strip shows readiness only */
    }
    el.textContent = `${j.status} · engine ${j.engine}${j.reason ? " (" + j.reason + ")" : ""}${extra}`;
    el.className = "status " + (j.status === "ready" ? "ok" : "bad");
  } catch (e) {
    el.textContent = "daemon unreachable";
    el.className = "status bad";
  }
  updateCount();
}

function renderResult(s, params) {
  const dl = $("facts");
  dl.textContent = "";
  const rows = [
    ["request id", s.requestId || "—"],
    ["TTFA (page)", s.ttfaMs !== null ? s.ttfaMs.toFixed(0) + " ms" : "—"],
    ["total", s.totalMs !== null ? s.totalMs.toFixed(0) + " ms" : "—"],
    ["audio", s.audioSeconds.toFixed(2) + " s"],
    ["RTF", s.audioSeconds ? (s.totalMs / 1000 / s.audioSeconds).toFixed(3) : "—"],
    ["mode", params.stream ? "streamed (pcm)" : "buffered (" + params.format + ")"],
  ];
  for (const [k, v] of rows) {
    const dt = document.createElement("dt");
    dt.textContent = k;
    const dd = document.createElement("dd");
    dd.textContent = v;
    dl.append(dt, dd);
  }
  const tm = $("timing");
  tm.textContent = "";
  const max = Math.max(1, ...s.serverTiming.map((t) => t.ms));
  for (const t of s.serverTiming) {
    const row = document.createElement("div");
    row.className = "bar";
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = t.name;
    const fill = document.createElement("span");
    fill.className = "fill";
    fill.style.width = Math.round((200 * t.ms) / max) + "px";
    const val = document.createElement("span");
    val.textContent = t.ms.toFixed(1) + " ms";
    row.append(name, fill, val);
    tm.appendChild(row);
  }
  if (params.stream) {
    const note = document.createElement("div");
    note.className = "muted";
    note.textContent = "streamed: the full Server-Timing comes in HTTP trailers, which browsers do not expose";
    tm.appendChild(note);
  }
  if (s.blob) {
    const a = $("download");
    a.href = URL.createObjectURL(s.blob);
    a.download = `cosyvoiced-${s.requestId || "audio"}.${params.stream ? "pcm" : params.format}`;
    a.hidden = false;
  }
}

function addHistory(params, s) {
  state.history.unshift({ params, stats: s });
  state.history = state.history.slice(0, 10);
  const ol = $("history");
  ol.textContent = "";
  state.history.forEach((h, i) => {
    const li = document.createElement("li");
    li.textContent = `${h.params.speaker || "default"} · ${h.stats.audioSeconds.toFixed(2)} s · TTFA ${h.stats.ttfaMs ? h.stats.ttfaMs.toFixed(0) : "—"} ms · "${h.params.text.slice(0, 40)}" `;
    const b = document.createElement("button");
    b.textContent = "replay";
    b.addEventListener("click", () => run(state.history[i].params));
    li.appendChild(b);
    ol.appendChild(li);
  });
}

function currentParams() {
  const seed = $("seed").value;
  return {
    text: $("text").value,
    speaker: $("speaker").value || undefined,
    format: $("format").value,
    sampleRate: $("rate").value || undefined,
    speed: parseFloat($("speed").value) || 1,
    seed: seed === "" ? undefined : parseInt(seed, 10),
    normalize: $("normalize").checked,
    stream: $("stream").checked,
  };
}

function run(params) {
  if (state.handle) state.handle.stop();
  showError(null);
  $("play").disabled = true;
  $("stop").disabled = false;
  const h = speak(params.text, { ...opts(), ...params });
  state.handle = h;
  const ev = { type: "start", stream: params.stream, chunks: 0, firstAudioAtChunk: null };
  state.events.push(ev);
  h.on("first-audio", (e) => {
    ev.firstAudioAtChunk = ev.chunks;
    ev.ttfaMs = e.ttfaMs;
  });
  h.on("chunk", () => ev.chunks++);
  h.on("error", showError);
  h.done
    .then((s) => {
      state.last = { params, stats: { ...s, blob: null } };
      ev.type = "done";
      renderResult(s, params);
      addHistory(params, s);
    })
    .catch(() => {
      ev.type = "failed";
    })
    .finally(() => {
      $("play").disabled = false;
      $("stop").disabled = true;
      refreshStatus();
    });
}

$("play").addEventListener("click", () => run(currentParams()));
$("stop").addEventListener("click", () => {
  if (state.handle) state.handle.stop();
  state.events.push({ type: "stopped" });
});
$("preview").addEventListener("click", async () => {
  const ol = $("sentences");
  try {
    const r = await normalize($("text").value, { ...opts(), normalize: $("normalize").checked });
    ol.textContent = "";
    for (const s of r.sentences) {
      const li = document.createElement("li");
      li.textContent = `${s.text}  (${s.ids.length} tokens)`;
      ol.appendChild(li);
    }
    ol.hidden = false;
    showError(null);
  } catch (e) {
    showError(e);
  }
});

loadSpeakers();
refreshStatus();
setInterval(refreshStatus, 5000);
