#!/usr/bin/env python3
"""Turns the runs `benches/faults.sh` writes into a table and timelines.

    python3 benches/faults.py benches/results/faults benches/results/faults.md

For each scenario RUN/NAME.csv (mixload's answers per second and kind),
RUN/NAME.json (its totals), RUN/NAME.events (`unix_ms label`, the faults
made) and RUN/NAME.facts (`key=value`, what the script measured): a row of
the table, and RUN/../faults-NAME.svg, the answers per second with the
failures in red and the events as vertical lines. The network scenario also
gets a row per phase (delay, loss, partition); the soak a plot of its
samples. Standard library only: the SVG is written by hand.
"""

import csv
import json
import os
import sys
from html import escape

KINDS = ["proxy", "login", "refresh"]
COLORS = {"proxy": "#4e79a7", "login": "#59a14f", "refresh": "#f28e2b"}


def read_rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def read_events(path):
    if not os.path.exists(path):
        return []
    out = []
    for line in open(path):
        ms, label = line.rstrip("\n").split(" ", 1)
        out.append((int(ms) / 1000.0, label))
    return out


def read_facts(path):
    if not os.path.exists(path):
        return {}
    facts = {}
    for line in open(path):
        if "=" in line:
            k, v = line.rstrip("\n").split("=", 1)
            facts[k] = v
    return facts


def failed(r):
    return int(r["total"]) - int(r["s200"])


def tally(rows, lo=None, hi=None):
    """Totals by kind of the rows with lo <= t < hi."""
    out = {k: {"total": 0, "failed": 0, "s503": 0, "s500": 0, "no_ra": 0, "timeout": 0,
               "connect": 0, "transport": 0, "s502": 0, "s400": 0, "s401": 0, "max_ms": 0,
               "fail_t": []}
           for k in KINDS}
    for r in rows:
        t = int(r["t"])
        if (lo is not None and t < lo) or (hi is not None and t >= hi):
            continue
        k = out[r["kind"]]
        k["total"] += int(r["total"])
        k["failed"] += failed(r)
        for key, col in [("s503", "s503"), ("s500", "s500"), ("no_ra", "s503_no_retry_after"),
                         ("timeout", "timeout"), ("connect", "connect"),
                         ("transport", "transport"), ("s502", "s502"), ("s400", "s400"),
                         ("s401", "s401")]:
            k[key] += int(r[col])
        k["max_ms"] = max(k["max_ms"], int(r["max_ms"]))
        if failed(r):
            k["fail_t"].append(t)
    return out


def how(k):
    """What the failures of one kind were."""
    parts = []
    for key, name in [("s503", "503"), ("s502", "502"), ("s500", "500"), ("s400", "400"),
                      ("s401", "401"),
                      ("timeout", "timeout"), ("connect", "refused"), ("transport", "cut")]:
        if k[key]:
            parts.append(f"{k[key]} {name}")
    rest = k["failed"] - sum(k[key] for key in
                             ["s503", "s502", "s500", "s400", "s401", "timeout", "connect",
                              "transport"])
    if rest:
        parts.append(f"{rest} other")
    return ", ".join(parts)


def cell(k):
    if not k["total"]:
        return "–"
    if not k["failed"]:
        return f"0 of {k['total']}"
    return f"**{k['failed']}** of {k['total']} ({how(k)})"


def window(t, start):
    fails = sorted(set(t["proxy"]["fail_t"] + t["login"]["fail_t"] + t["refresh"]["fail_t"]))
    if not fails:
        return "none"
    return f"{fails[-1] - fails[0] + 1} s (s {fails[0] - start}–{fails[-1] - start})"


def plot(name, rows, events, start, path):
    seconds = sorted({int(r["t"]) for r in rows})
    if not seconds:
        return
    t0, t1 = seconds[0], seconds[-1] + 1
    w, h, x0, y0 = 900, 260, 60, 40
    per = {}
    for r in rows:
        per.setdefault(int(r["t"]), {})[r["kind"]] = r
    top = max(sum(int(v["total"]) for v in d.values()) for d in per.values()) * 1.15 or 1
    sx = lambda t: x0 + (t - t0) / max(t1 - t0, 1) * w
    sy = lambda v: y0 + h - v / top * h
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w + 180}" height="{h + 110}" '
           f'font-family="sans-serif" font-size="12">',
           f'<rect width="100%" height="100%" fill="white"/>',
           f'<text x="{x0 + w / 2}" y="22" text-anchor="middle" font-weight="bold">'
           f'{escape(name)}: answers per second (failures in red)</text>']
    for i in range(5):
        v = top * i / 4
        out.append(f'<line x1="{x0}" y1="{sy(v)}" x2="{x0 + w}" y2="{sy(v)}" stroke="#ddd"/>')
        out.append(f'<text x="{x0 - 6}" y="{sy(v) + 4}" text-anchor="end">{v:.0f}</text>')
    for kind in KINDS:
        pts = " ".join(f"{sx(t + 0.5):.1f},{sy(int(per[t][kind]['s200'])):.1f}"
                       for t in seconds if kind in per[t])
        out.append(f'<polyline fill="none" stroke="{COLORS[kind]}" stroke-width="1.5" points="{pts}"/>')
    for t in seconds:
        f = sum(failed(r) for r in per[t].values())
        if f:
            out.append(f'<rect x="{sx(t):.1f}" y="{sy(f):.1f}" width="{max(w / (t1 - t0), 1):.1f}" '
                       f'height="{y0 + h - sy(f):.1f}" fill="#e15759" opacity="0.8"/>')
    for i, (at, label) in enumerate(events):
        if label == "load":
            continue
        x = sx(at)
        out.append(f'<line x1="{x:.1f}" y1="{y0}" x2="{x:.1f}" y2="{y0 + h}" stroke="#333" '
                   f'stroke-dasharray="4 3"/>')
        out.append(f'<text x="{x + 3:.1f}" y="{y0 + 12 + 13 * (i % 4)}">{escape(label)}</text>')
    for i in range(0, t1 - t0 + 1, max((t1 - t0) // 10, 1)):
        out.append(f'<text x="{sx(t0 + i):.1f}" y="{y0 + h + 16}" text-anchor="middle">'
                   f'{t0 + i - start}</text>')
    out.append(f'<text x="{x0 + w / 2}" y="{y0 + h + 34}" text-anchor="middle">seconds of load</text>')
    for i, kind in enumerate(KINDS + ["failed"]):
        color = COLORS.get(kind, "#e15759")
        out.append(f'<rect x="{x0 + w + 15}" y="{y0 + 18 * i}" width="12" height="12" fill="{color}"/>')
        out.append(f'<text x="{x0 + w + 32}" y="{y0 + 10 + 18 * i}">{kind}</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def plot_soak(samples, path):
    rows = read_rows(samples)
    if len(rows) < 2:
        return
    series = [("g1_rss_kb", "gateway 1 RSS (MiB)", 1 / 1024, "#4e79a7"),
              ("g2_rss_kb", "gateway 2 RSS (MiB)", 1 / 1024, "#76b7b2"),
              ("g1_fds", "gateway 1 open fds", 1, "#59a14f"),
              ("g2_fds", "gateway 2 open fds", 1, "#8cd17d"),
              ("redis_used_memory", "Redis used memory (MiB)", 1 / 1048576, "#f28e2b")]
    w, h, x0 = 900, 120, 70
    xs = [int(r["second"]) for r in rows]
    sx = lambda s: x0 + (s - xs[0]) / max(xs[-1] - xs[0], 1) * w
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w + 120}" '
           f'height="{len(series) * (h + 40) + 60}" font-family="sans-serif" font-size="12">',
           '<rect width="100%" height="100%" fill="white"/>',
           f'<text x="{x0 + w / 2}" y="20" text-anchor="middle" font-weight="bold">'
           f'soak: samples every {xs[1] - xs[0]} s over {xs[-1]} s</text>']
    for i, (key, title, scale, color) in enumerate(series):
        y0 = 40 + i * (h + 40)
        vals = [float(r[key]) * scale for r in rows]
        top = max(vals) * 1.2 or 1
        sy = lambda v: y0 + h - v / top * h
        out.append(f'<text x="{x0}" y="{y0 - 4}">{escape(title)}</text>')
        out.append(f'<line x1="{x0}" y1="{y0 + h}" x2="{x0 + w}" y2="{y0 + h}" stroke="#333"/>')
        for j in (0, 0.5, 1):
            out.append(f'<text x="{x0 - 6}" y="{sy(top * j) + 4}" text-anchor="end">{top * j:.1f}</text>')
        pts = " ".join(f"{sx(x):.1f},{sy(v):.1f}" for x, v in zip(xs, vals))
        out.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{pts}"/>')
    y = 40 + len(series) * (h + 40) - 20
    for j in range(0, 11):
        s = xs[0] + (xs[-1] - xs[0]) * j / 10
        out.append(f'<text x="{sx(s):.1f}" y="{y}" text-anchor="middle">{s:.0f} s</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def check_cell(facts):
    c = facts.get("check")
    if not c:
        return ""
    try:
        v = json.loads(c)
    except ValueError:
        return f"check: {c}"
    return (f"reuse at other replica → {v['reuse_at_b']}, the session's next token → "
            f"{v['next_token_after_reuse']}, its access token refused there after "
            f"{v['reuse_revocation_seen_at_b_ms']} ms; logout → {v['logout_at_a']}, "
            f"seen by the other after {v['logout_seen_at_b_ms']} ms")


def main():
    run, md = sys.argv[1], sys.argv[2]
    results = os.path.dirname(os.path.abspath(md))
    lines = ["| scenario | proxied failed | logins failed | refreshes failed | failure window | "
             "503 without Retry-After | slowest answer | measured |",
             "|---|---|---|---|---|---|---|---|"]
    phases = []
    for name in ["failover", "network", "killed", "drain", "disk", "soak"]:
        path = os.path.join(run, name + ".csv")
        if not os.path.exists(path):
            continue
        rows = read_rows(path)
        summary = json.load(open(os.path.join(run, name + ".json")))
        start = summary["start"]
        events = read_events(os.path.join(run, name + ".events"))
        facts = read_facts(os.path.join(run, name + ".facts"))
        plot(name, rows, events, start, os.path.join(results, f"faults-{name}.svg"))
        t = tally(rows)
        no_ra = sum(t[k]["no_ra"] for k in KINDS)
        slowest = max(t[k]["max_ms"] for k in KINDS)
        for at, label in events:
            if label in ("healed", "replica promoted"):
                after = [x for x in t["login"]["fail_t"] + t["refresh"]["fail_t"] if x >= int(at)]
                facts[f"last failure after '{label}'"] = (
                    f"{max(after) + 1 - at:.1f} s" if after else "none")
        measured = "; ".join(f"{k} {v}" for k, v in facts.items() if k != "check")
        if check_cell(facts):
            measured += "; " + check_cell(facts)
        lines.append(f"| {name} | {cell(t['proxy'])} | {cell(t['login'])} | {cell(t['refresh'])} | "
                     f"{window(t, start)} | {no_ra} | {slowest} ms | {measured} |")
        if name == "network":
            marks = [e for e in events if e[1] != "load"]
            bounds = [start] + [int(at) + 1 for at, _ in marks] + [10 ** 12]
            labels = ["clean"] + [label for _, label in marks]
            for i, label in enumerate(labels):
                lo, hi = bounds[i], bounds[i + 1]
                pt = tally(rows, lo, hi)
                secs = max(min(hi, int(rows[-1]["t"]) + 1) - lo, 0)
                rss = []
                rss_path = os.path.join(run, "network.rss")
                if os.path.exists(rss_path):
                    for line in open(rss_path):
                        ms, kb, _ = line.split()
                        if lo <= int(ms) / 1000 < hi:
                            rss.append(int(kb))
                phases.append(f"| {label} | {secs} s | {cell(pt['proxy'])} | {cell(pt['login'])} | "
                              f"{cell(pt['refresh'])} | {pt['login']['max_ms']} ms | "
                              f"{(max(rss) / 1024 if rss else 0):.1f} MiB |")
    if os.path.exists(os.path.join(run, "soak.samples.csv")):
        plot_soak(os.path.join(run, "soak.samples.csv"), os.path.join(results, "faults-soak.svg"))
    with open(md, "w") as f:
        f.write("\n".join(lines) + "\n")
        if phases:
            f.write("\nnetwork, by phase (each phase from its event to the next; a phase's "
                    "failures include those in flight when it began):\n\n")
            f.write("| phase | length | proxied failed | logins failed | refreshes failed | "
                    "slowest login | gateway peak RSS |\n|---|---|---|---|---|---|---|\n")
            f.write("\n".join(phases) + "\n")


main()
