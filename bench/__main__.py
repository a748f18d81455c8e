"""`python -m bench [--quick] [--json PATH] [--plot PATH] [--profile PATH]`.

Starts the sandbox EHR and the app (gunicorn, one worker, production-like settings) on loopback,
injects per-request FHIR latency in the sandbox and measures; see docs/performance.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import report, runner
from bench.timeline import median
from tests.stack import start_stack


def _median_of(samples: list[runner.LaunchSample], attr: str) -> float:
    return round(median([getattr(s, attr) for s in samples]), 2)


def measure(stack, latency: int, cfg: runner.Settings, log) -> dict[str, Any]:
    stack.sandbox.set_faults(stack.client_id, latency_ms=latency)
    record: dict[str, Any] = {"latency_ms": latency}
    samples = [runner.timed_launch(stack, runner.PATIENT, runner.ENCOUNTER) for _ in range(cfg.launches)]
    record.update(
        launch_to_dashboard_ms=_median_of(samples, "wall_ms"),
        token_exchange_ms=_median_of(samples, "token_exchange_ms"),
        slowest_single_query_ms=_median_of(samples, "slowest_single_query_ms"),
        fhir_requests=int(median([s.fhir_requests for s in samples])),
        waves=int(median([s.waves for s in samples])),
        launch_hops_ms={
            hop: round(median([s.hops_ms.get(hop, 0.0) for s in samples]), 2) for hop in samples[0].hops_ms
        },
        launches=cfg.launches,
        ehr_requests_per_launch=samples[-1].requests_by_kind,  # warm caches: no discovery, no JWKS
    )
    floor = record["token_exchange_ms"] + record["slowest_single_query_ms"]
    record["launch_vs_floor"] = round(record["launch_to_dashboard_ms"] / floor, 2) if floor else None
    log(f"  launch→dashboard {record['launch_to_dashboard_ms']} ms")
    record.update(runner.warm_reloads(samples[-1], cfg.reloads))
    log(f"  warm reload overhead p50 {record['warm_overhead_ms_p50']} ms")
    token = runner.launch_token(stack, runner.PATIENT, runner.ENCOUNTER)
    record.update(runner.side_by_side(stack, token, cfg.peer_runs))
    log(f"  fhirclient / ours {record['ratio_vs_fhirclient']}x")
    record.update(runner.big_patient(stack, cfg.big_runs))
    small = record["launch_hops_ms"].get("dashboard") or 0.0
    record["big_patient_vs_small"] = round(record["big_patient_dashboard_ms"] / small, 2) if small else None
    log(f"  10k patient {record['big_patient_ms']} ms, +{record['big_patient_rss_mb']} MB")
    return record


def profile_dashboards(stack, path: Path) -> None:
    """pyinstrument profiles (0 ms latency, in this process) of what a dashboard request does:
    each panel's query and build run inline (so the profiled thread sees them), then the render.
    """
    from types import SimpleNamespace

    from django.template.loader import render_to_string
    from pyinstrument import Profiler

    from clinical.dashboard import PANELS, build_dashboard
    from clinical.fhir import FhirClient

    stack.sandbox.set_faults(stack.client_id, latency_ms=0)
    out = []
    launch = SimpleNamespace(ehr=SimpleNamespace(name="Sandbox EHR"), handle="h")
    for patient, encounter in ((runner.PATIENT, runner.ENCOUNTER), (runner.BIG_PATIENT, "")):
        token = runner.launch_token(stack, patient, encounter)

        def once(patient=patient, encounter=encounter, token=token) -> str:
            d = None
            for panel in PANELS:
                part = build_dashboard(
                    FhirClient(stack.sandbox.fhir_base, token), patient, encounter, panels=[panel]
                )
                d = part if d is None else replace_panel(d, part, panel)
            context = {"d": d, "launch": launch, "handle": "h", "show_banner": True, "style_css": ""}
            return render_to_string("clinical/dashboard.html", context)

        once()  # warm
        profiler = Profiler(interval=0.0005)
        with profiler:
            once()
        out.append(f"=== {patient} ===\n" + profiler.output_text(unicode=True, color=False))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(out))


def replace_panel(dashboard, part, panel: str):
    import dataclasses

    return dataclasses.replace(dashboard, **{panel: getattr(part, panel)})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one latency (50 ms), few repeats, < 2 minutes")
    parser.add_argument("--latency", type=int, action="append", help="injected latency in ms (repeatable)")
    parser.add_argument("--json", type=Path, default=Path("bench-results/bench.json"))
    parser.add_argument("--plot", type=Path, default=None, help="PNG path (default: beside the JSON)")
    parser.add_argument(
        "--profile", type=Path, default=None, help="write pyinstrument profiles of dashboard builds"
    )
    parser.add_argument(
        "--app-env", action="append", default=[], metavar="KEY=VALUE",
        help="extra app setting for the run, e.g. FHIR_PAGE_SIZE=1000 (repeatable)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    app_env = dict(item.split("=", 1) for item in args.app_env)
    cfg = runner.QUICK if args.quick else runner.FULL
    if args.latency:
        cfg = runner.Settings(args.latency, cfg.launches, cfg.reloads, cfg.big_runs, cfg.peer_runs)
    plot_path = args.plot or args.json.with_suffix(".png")

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    started = time.monotonic()
    load_before = report.machine()["loadavg"]
    records = []
    with tempfile.TemporaryDirectory(prefix="bench-") as workdir:
        log("starting the sandbox EHR and the app (gunicorn, 1 worker)…")
        with start_stack(Path(workdir), workers=1, app_env=app_env) as stack:
            runner.setup_django(stack)
            stack.sandbox.set_faults(stack.client_id, latency_ms=0)
            for _ in range(2):  # warm: discovery, JWKS and style caches, imports in the worker
                runner.warm_reloads(runner.timed_launch(stack, runner.PATIENT, runner.ENCOUNTER), 3)
            for latency in cfg.latencies:
                log(f"latency {latency} ms")
                records.append(measure(stack, latency, cfg, log))
            if args.profile:
                profile_dashboards(stack, args.profile)
                log(f"profile written to {args.profile}")
            stack.sandbox.reset_faults(stack.client_id)
    targets = report.evaluate(records)
    payload = {
        "machine": {**report.machine(), "loadavg_at_start": load_before},
        "mode": "quick" if args.quick else "full",
        "app_env": app_env,
        "duration_s": round(time.monotonic() - started, 1),
        "records": records,
        "targets": targets,
    }
    report.write_json(args.json, payload)
    report.plot(plot_path, records)
    print(report.table(records, targets))
    print(f"\nJSON: {args.json}  plot: {plot_path}  ({payload['duration_s']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
