"""Machine description, targets, the printed table, the JSON file and the PNG plot."""

from __future__ import annotations

import contextlib
import json
import os
import platform
from pathlib import Path
from typing import Any

TARGETS = {
    "launch_vs_floor": ("launch→dashboard / (token exchange + slowest query) at 50 ms", "<=", 1.25),
    "ratio_vs_fhirclient": ("faster than fhirclient at 50 ms (x)", ">=", 3.0),
    "big_patient_ms": ("10k-observation patient (ms)", "<", 2000),
    "big_patient_rss_mb": ("10k-observation patient RSS growth (MB)", "<", 100),
    "warm_overhead_ms_p50": ("warm reload app overhead p50 (ms)", "<", 20),
    "big_patient_vs_small": ("10k patient's dashboard / pat-chen's, every measure present (x)", "<=", 1.3),
}


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem_kb = int(Path("/proc/meminfo").read_text().split("\n", 1)[0].split()[1])
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg": _loadavg(),
    }


def _loadavg() -> list[float]:
    """Other work on the machine skews every figure: recorded at start and end of a run."""
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except (OSError, ValueError):
        return []


def _compare(value: float, op: str, limit: float) -> bool:
    return {"<=": value <= limit, ">=": value >= limit, "<": value < limit}[op]


def evaluate(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Each target against the 50 ms record (or the first record when 50 ms was not run)."""
    rec = next((r for r in records if r["latency_ms"] == 50), records[0])
    out = {}
    for key, (label, op, limit) in TARGETS.items():
        value = rec.get(key)
        ok = None if value is None else _compare(value, op, limit)
        out[key] = {"label": label, "value": value, "target": f"{op} {limit}", "met": ok}
    return out


ROWS = [
    ("launch→dashboard (ms)", "launch_to_dashboard_ms"),
    ("  token exchange (ms)", "token_exchange_ms"),
    ("  slowest single FHIR query (ms)", "slowest_single_query_ms"),
    ("  ratio to (token + slowest)", "launch_vs_floor"),
    ("  FHIR requests", "fhir_requests"),
    ("  sequential waves", "waves"),
    ("warm reload wall p50 (ms)", "warm_reload_ms_p50"),
    ("  FHIR wait p50 (ms)", "warm_fhir_ms_p50"),
    ("  overhead p50 (wall - FHIR) (ms)", "warm_overhead_ms_p50"),
    ("  in-app time outside FHIR p50 (ms)", "warm_app_ms_p50"),
    ("same data: ours parallel (ms)", "parallel_ms"),
    ("same data: ours sequential (ms)", "sequential_ms"),
    ("same data: fhirclient (ms)", "fhirclient_ms"),
    ("  fhirclient / ours parallel (x)", "ratio_vs_fhirclient"),
    ("10k patient launch→dashboard (ms)", "big_patient_ms"),
    ("  its dashboard request (ms)", "big_patient_dashboard_ms"),
    ("  ÷ pat-chen's dashboard request (x)", "big_patient_vs_small"),
    ("  worker peak RSS growth (MB)", "big_patient_rss_mb"),
    ("  FHIR requests / waves", "big_patient_requests_waves"),
]


def table(records: list[dict[str, Any]], targets: dict[str, Any]) -> str:
    head = ["metric"] + [f"{r['latency_ms']} ms" for r in records]
    lines = []
    for label, key in ROWS:
        cells = [label]
        for r in records:
            if key == "big_patient_requests_waves":
                value = f"{r.get('big_patient_fhir_requests')} / {r.get('big_patient_waves')}"
            else:
                value = r.get(key)
            cells.append("—" if value is None else f"{value:g}" if isinstance(value, float) else str(value))
        lines.append(cells)
    widths = [max(len(row[i]) for row in [head, *lines]) for i in range(len(head))]
    fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    out = [fmt.format(*head), fmt.format(*("-" * w for w in widths))]
    out += [fmt.format(*row) for row in lines]
    out.append("")
    out.append("targets (at 50 ms):")
    for t in targets.values():
        mark = {True: "MET", False: "MISSED", None: "n/a"}[t["met"]]
        out.append(f"  [{mark:>6}] {t['label']}: {t['value']} (target {t['target']})")
    return "\n".join(out)


def write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")


def plot(path: Path, records: list[dict[str, Any]]) -> None:
    """Time to fetch the dashboard's data vs injected latency: ours parallel, ours sequential, fhirclient."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [r["latency_ms"] for r in records]
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for key, label, style in (
        ("parallel_ms", "ours, parallel (as the dashboard runs)", "o-"),
        ("sequential_ms", "ours, forced sequential", "s--"),
        ("fhirclient_ms", "fhirclient 4.4.0", "^:"),
        ("launch_to_dashboard_ms", "full launch→dashboard (app)", "d-."),
    ):
        ax.plot(xs, [r.get(key) for r in records], style, label=label)
    ax.set_xlabel("injected FHIR latency per request (ms)")
    ax.set_ylabel("time (ms, median)")
    ax.set_title("Dashboard data vs EHR latency")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
