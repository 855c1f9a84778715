#!/usr/bin/env python3
"""Prints the rows written by run.py as one Markdown table, then what looked wrong.

  table.py --header "line" [--header "line"...] ROW.json...
"""
import argparse
import json


def cell(s):
    return str(s).replace("|", "\\|").replace("\n", " ")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--header", action="append", default=[])
    ap.add_argument("rows", nargs="*")
    a = ap.parse_args()
    rows = []
    for path in a.rows:
        try:
            with open(path) as f:
                rows.append(json.load(f))
        except (OSError, ValueError) as e:
            rows.append({"attack": path, "requests": "-", "statuses": "-", "notes": [f"no result: {e}"],
                         "wrong": [["the attack produced no result", path]]})
    out = [*a.header, ""] if a.header else []
    out.append("| attack | requests sent | statuses seen | peak RSS MB | probe p50/p99 ms | peak fds | notes |")
    out.append("| --- | --- | --- | --- | --- | --- | --- |")
    rss_missed, p99_missed = [], []
    for r in rows:
        rss = r.get("peak_rss_mb")
        p50, p99 = r.get("probe_p50_ms"), r.get("probe_p99_ms")
        rss_s = "-" if rss is None else f"{rss:.0f}" + (" (over 300)" if rss >= 300 else "")
        if rss is not None and rss >= 300:
            rss_missed.append(r["attack"])
        if p99 is None:
            probe = "-"
        else:
            probe = f"{p50:.1f} / {p99:.1f}" + (" (over 50)" if p99 >= 50 else "")
            if p99 >= 50:
                p99_missed.append(r["attack"])
        notes = list(r.get("notes", []))
        if r.get("rss_before_mb") is not None:
            notes.insert(0, f"RSS {r['rss_before_mb']:.0f} MB before, VmHWM {r.get('hwm_mb', 0):.0f} MB; "
                            f"probe n={r.get('probe_n')}, max {r.get('probe_max_ms') or 0:.0f} ms; "
                            f"{r.get('seconds')} s")
        out.append("| " + " | ".join(cell(x) for x in (
            r.get("attack"), r.get("requests"), r.get("statuses"), rss_s, probe,
            r.get("peak_fds", "-"), "; ".join(notes))) + " |")
    out.append("")
    out.append("Targets (issue 9): peak RSS under 300 MB: "
               + ("met in every attack" if not rss_missed else "MISSED in " + ", ".join(rss_missed))
               + "; cached GET p99 under 50 ms: "
               + ("met in every attack" if not p99_missed else "MISSED in " + ", ".join(p99_missed)) + ".")
    wrong = [(r.get("attack"), w) for r in rows for w in r.get("wrong", [])]
    if wrong:
        out.append("")
        out.append("Looks wrong (exact requests):")
        for attack, (what, req) in wrong:
            out.append(f"- {attack}: {what} -- {req}")
    else:
        out.append("Nothing flagged.")
    print("\n".join(out))


if __name__ == "__main__":
    main()
