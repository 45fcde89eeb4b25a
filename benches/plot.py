#!/usr/bin/env python3
"""Draws the load comparison from the CSV `benches/load.sh` writes.

    python3 benches/plot.py benches/results/load.csv benches/results/load.svg

Two panels of grouped bars, one group per scenario and one bar per server:
requests per second, and the server's CPU time per request (µs). The rows
where users pay (the hot token beside the seed's Go design, the HTTPS edge,
logins) go to a second figure beside the first, `<name>-edge.svg`, since a
handshake's CPU would flatten a keep-alive request's bar. Standard library
only: the SVG is written by hand.
"""

import csv
import sys
from html import escape

SCENARIOS = ["hot token", "100k tokens", "public route", "1k conns", "10k conns", "forward-auth"]
EDGE_SCENARIOS = ["hot token", "TLS keep-alive", "h2 over TLS", "TLS resumed", "TLS full handshake",
                  "login burst", "refresh"]
# The servers of the first figure: the rows of the seed's design are drawn in
# the second.
EDGE_ONLY_SERVERS = ("seed-go",)
PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1"]


def number(v):
    try:
        return float(v)
    except ValueError:
        return None


def panel(out, rows, servers, key, title, x0, y0, w, h, order):
    values = [number(r[key]) for r in rows]
    top = max([v for v in values if v is not None] or [1.0]) * 1.1
    scenarios = [s for s in order if any(r["scenario"] == s for r in rows)]
    out.append(f'<text x="{x0 + w / 2}" y="{y0 - 12}" text-anchor="middle" '
               f'font-weight="bold">{escape(title)}</text>')
    out.append(f'<line x1="{x0}" y1="{y0 + h}" x2="{x0 + w}" y2="{y0 + h}" stroke="#333"/>')
    for i in range(6):
        v = top * i / 5
        y = y0 + h - h * i / 5
        out.append(f'<line x1="{x0}" y1="{y}" x2="{x0 + w}" y2="{y}" stroke="#ddd"/>')
        out.append(f'<text x="{x0 - 6}" y="{y + 4}" text-anchor="end" font-size="11">'
                   f'{v:,.0f}</text>')
    group = w / max(len(scenarios), 1)
    bar = group * 0.8 / max(len(servers), 1)
    for g, s in enumerate(scenarios):
        gx = x0 + g * group + group * 0.1
        for k, server in enumerate(servers):
            row = next((r for r in rows if r["scenario"] == s and r["server"] == server), None)
            v = number(row[key]) if row else None
            if v is None:
                continue
            bh = h * v / top
            x = gx + k * bar
            out.append(f'<rect x="{x:.1f}" y="{y0 + h - bh:.1f}" width="{bar - 1:.1f}" '
                       f'height="{bh:.1f}" fill="{PALETTE[k % len(PALETTE)]}">'
                       f'<title>{escape(s)}, {escape(server)}: {v:,.1f}</title></rect>')
            out.append(f'<text x="{x + bar / 2:.1f}" y="{y0 + h - bh - 3:.1f}" '
                       f'text-anchor="middle" font-size="8">{v:,.0f}</text>')
        out.append(f'<text x="{gx + group * 0.4:.1f}" y="{y0 + h + 16}" text-anchor="middle" '
                   f'font-size="11">{escape(s)}</text>')


def figure(rows, order, dst):
    servers = []
    for r in rows:
        if r["server"] not in servers:
            servers.append(r["server"])
    width, ph = 1100, 260
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{2 * ph + 170}" '
           f'font-family="sans-serif">',
           f'<rect width="100%" height="100%" fill="white"/>']
    panel(out, rows, servers, "rps", "requests per second (higher is better)",
          70, 40, width - 100, ph, order)
    panel(out, rows, servers, "cpu_us_per_req",
          "server CPU time per request, µs (lower is better)", 70, ph + 110, width - 100, ph,
          order)
    for k, server in enumerate(servers):
        x = 70 + k * 150
        y = 2 * ph + 150
        out.append(f'<rect x="{x}" y="{y - 10}" width="12" height="12" '
                   f'fill="{PALETTE[k % len(PALETTE)]}"/>')
        out.append(f'<text x="{x + 16}" y="{y}" font-size="12">{escape(server)}</text>')
    out.append("</svg>")
    with open(dst, "w") as f:
        f.write("\n".join(out) + "\n")


def main():
    src, dst = sys.argv[1], sys.argv[2]
    with open(src, newline="") as f:
        rows = list(csv.DictReader(f))
    figure([r for r in rows if r["scenario"] in SCENARIOS
            and not r["server"].startswith(EDGE_ONLY_SERVERS)], SCENARIOS, dst)
    edge = [r for r in rows if r["scenario"] in EDGE_SCENARIOS]
    if any(r["scenario"] != "hot token" for r in edge):
        figure(edge, EDGE_SCENARIOS, dst.removesuffix(".svg") + "-edge.svg")


if __name__ == "__main__":
    main()
