#!/usr/bin/env python3
"""SVG chart of one or more ``make bench`` results (no plotting package: plain SVG text).

    tools/bench/chart.py build/bench-fp32.json build/bench-bf16.json -o docs/bench-cpu.svg

Two panels, one group of bars per case (short/medium/long x zh/en, in the cases file's order):
  * real-time factor (processing time / audio time; below the dashed line at 1 = faster than real time)
    of the engine and of the eager PyTorch pipeline, per result file (dtype, device);
  * time to first audio of the engine, streamed (ms).
Medians of the runs. ``make bench`` writes the chart of its own run next to its JSON (bench.py calls
:func:`write_svg`); this script combines several runs (e.g. fp32 and bf16) into one picture.
"""
import argparse
import html
import json
import sys
from typing import List, Optional, Tuple

# one colour per series: engine dark, eager light, per result file
PALETTE = [("#1f5fa8", "#9dbfe6"), ("#c0561b", "#f2b38f"), ("#2e7d32", "#a5d6a7"), ("#6a3d9a", "#cab2d6")]
W, LEFT, RIGHT, TOP, PANEL_H, GAP = 960, 70, 20, 70, 230, 70


def _median(s: Optional[dict]) -> Optional[float]:
    if not s or not s.get("n"):
        return None
    return s.get("median", s.get("mean"))


def _series(docs: List[dict], tags: Optional[List[str]] = None) -> Tuple[List[str], List[dict]]:
    """-> (case ids in order, series [{label, color, rtf{case}, ttfa{case}}]); ``tags`` name the runs
    (default: dtype, flow dtype and device from each file)."""
    cases: List[str] = []
    for d in docs:
        for c in d.get("cases", []):
            if c["id"] not in cases:
                cases.append(c["id"])
    series = []
    for i, d in enumerate(docs):
        dark, light = PALETTE[i % len(PALETTE)]
        b = d["bundle"]
        flow = b.get("flow_dtype") or b.get("dtype")
        tag = f"{b.get('dtype')}{'' if flow == b.get('dtype') else f' (flow {flow})'} {d.get('device')}"
        if tags and i < len(tags) and tags[i]:
            tag = tags[i]
        eng = {c["id"]: c.get("engine") or {} for c in d.get("cases", [])}
        eag = {c["id"]: c.get("eager") or {} for c in d.get("cases", [])}
        if d.get("engine", {}).get("available"):
            series.append({"label": f"engine {tag}", "color": dark,
                           "rtf": {k: _median(v.get("rtf")) for k, v in eng.items()},
                           "ttfa": {k: _median(v.get("ttfa_ms")) for k, v in eng.items()}})
        if d.get("eager", {}).get("available"):
            series.append({"label": f"eager PyTorch {tag}", "color": light,
                           "rtf": {k: _median(v.get("rtf")) for k, v in eag.items()}, "ttfa": {}})
    return cases, series


def _nice_max(v: float) -> float:
    for m in (0.5, 1, 1.5, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000):
        if v <= m:
            return float(m)
    return v * 1.1


def _panel(out: List[str], y0: float, title: str, cases: List[str], series: List[dict], key: str, unit: str,
           ref: Optional[float]) -> None:
    shown = [s for s in series if any(s[key].get(c) is not None for c in cases)]
    vals = [s[key][c] for s in shown for c in cases if s[key].get(c) is not None]
    top = _nice_max(max(vals + ([ref * 1.2] if ref else []) or [1.0]))
    x0, x1, h = LEFT, W - RIGHT, PANEL_H
    out.append(f'<text x="{x0}" y="{y0 - 12}" font-size="14" font-weight="bold">{html.escape(title)}</text>')
    for j in range(5):  # grid and y labels
        v = top * j / 4
        y = y0 + h - h * j / 4
        out.append(f'<line x1="{x0}" y1="{y:.1f}" x2="{x1}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{x0 - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end">{v:g}{unit}</text>')
    if ref is not None:
        y = y0 + h - h * ref / top
        out.append(f'<line x1="{x0}" y1="{y:.1f}" x2="{x1}" y2="{y:.1f}" stroke="#444" stroke-dasharray="6,4"/>')
        out.append(f'<text x="{x1}" y="{y - 4:.1f}" font-size="11" text-anchor="end">real time</text>')
    if not shown:
        out.append(f'<text x="{(x0 + x1) / 2}" y="{y0 + h / 2}" font-size="12" text-anchor="middle">not measured</text>')
        return
    gw = (x1 - x0) / max(1, len(cases))
    bw = min(40.0, gw * 0.8 / len(shown))
    for ci, c in enumerate(cases):
        gx = x0 + gw * ci + (gw - bw * len(shown)) / 2
        for si, s in enumerate(shown):
            v = s[key].get(c)
            if v is None:
                continue
            bh = h * min(v, top) / top
            x = gx + bw * si
            out.append(f'<rect x="{x:.1f}" y="{y0 + h - bh:.1f}" width="{bw - 2:.1f}" height="{bh:.1f}" '
                       f'fill="{s["color"]}"><title>{html.escape(s["label"])} {html.escape(c)}: {v:.3g}{unit}'
                       f'</title></rect>')
            label = f"{v:.0f}" if v >= 100 else f"{v:.3g}"
            out.append(f'<text x="{x + (bw - 2) / 2:.1f}" y="{y0 + h - bh - 3:.1f}" font-size="9" '
                       f'text-anchor="middle">{label}</text>')
        out.append(f'<text x="{x0 + gw * ci + gw / 2:.1f}" y="{y0 + h + 16}" font-size="12" '
                   f'text-anchor="middle">{html.escape(c)}</text>')
    out.append(f'<line x1="{x0}" y1="{y0 + h}" x2="{x1}" y2="{y0 + h}" stroke="#000"/>')


def render(docs: List[dict], tags: Optional[List[str]] = None) -> str:
    cases, series = _series(docs, tags)
    # legend rows: as many entries per row as fit the width
    rows, lx = 1, LEFT
    for s in series:
        w = 26 + 6.5 * len(s["label"])
        if lx + w > W - RIGHT and lx > LEFT:
            rows, lx = rows + 1, LEFT
        lx += w
    top_extra = 16 * (rows - 1)
    height = TOP + top_extra + 2 * PANEL_H + GAP + 60
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{height}" viewBox="0 0 {W} {height}" '
           f'font-family="sans-serif">', f'<rect width="{W}" height="{height}" fill="#fff"/>']
    d0 = docs[0]
    out.append(f'<text x="{LEFT}" y="22" font-size="16" font-weight="bold">cosyvoiced: CosyVoice2 engine vs eager '
               f'PyTorch ({html.escape(d0["bundle"].get("size") or "")})</text>')
    out.append(f'<text x="{LEFT}" y="40" font-size="11" fill="#444">{html.escape(d0["machine"]["description"])}; '
               f'{html.escape(d0["date"])}; medians of {d0.get("runs")} run(s) per case</text>')
    lx, ly = LEFT, 50
    for s in series:  # legend
        w = 26 + 6.5 * len(s["label"])
        if lx + w > W - RIGHT and lx > LEFT:
            lx, ly = LEFT, ly + 16
        out.append(f'<rect x="{lx}" y="{ly}" width="12" height="12" fill="{s["color"]}"/>')
        out.append(f'<text x="{lx + 16}" y="{ly + 10}" font-size="11">{html.escape(s["label"])}</text>')
        lx += w
    _panel(out, TOP + top_extra + 28, "Real-time factor (lower is faster; below 1 = faster than real time)", cases,
           series, "rtf", "", 1.0)
    _panel(out, TOP + top_extra + 28 + PANEL_H + GAP, "Time to first audio, streamed (ms)", cases, series, "ttfa",
           "", None)
    out.append("</svg>")
    return "\n".join(out) + "\n"


def write_svg(docs: List[dict], path: str, tags: Optional[List[str]] = None) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(render(docs, tags))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="SVG chart of bench.py results")
    ap.add_argument("json", nargs="+", help="bench.py result files (make bench BENCH_OUT=...)")
    ap.add_argument("-o", "--out", required=True)
    ap.add_argument("--labels", help="comma-separated names of the runs, in file order (default: dtype, device)")
    a = ap.parse_args(argv)
    docs = []
    for p in a.json:
        with open(p, encoding="utf-8") as f:
            docs.append(json.load(f))
    write_svg(docs, a.out, [x.strip() for x in a.labels.split(",")] if a.labels else None)
    print(f"chart: wrote {a.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
