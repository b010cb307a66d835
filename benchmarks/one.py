"""`python -m benchmarks.one OPERATION JSON`: one measured step in a fresh process.

Prints `BENCH-RESULT {json}` as its last line; the parent reads nothing else.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from benchmarks.measure import RESULT_MARK, spawn_measured


def _run(operation: str, args: dict[str, Any]) -> dict[str, Any]:
    if operation == "exec":
        return spawn_measured(args["command"], args.get("cwd"))
    # Imported only here: the "exec" wrapper must stay a small process (see spawn_measured).
    from benchmarks import engine

    if operation == "backup":
        return engine.backup(
            Path(args["image"]),
            Path(args["pool"]),
            args["passphrase"],
            args["set_id"],
            sparse_aware=args["sparse_aware"],
            channels=args.get("channels", 2),
        )
    if operation == "export":
        return engine.export(
            Path(args["pool"]),
            args["passphrase"],
            args["set_id"],
            Path(args["output"]),
            channels=args.get("channels", 2),
        )
    if operation == "verify":
        return engine.verify(Path(args["pool"]), args["passphrase"])
    if operation == "flow":
        from benchmarks.flowrun import run_flow_backup  # imports Prefect: only in this step

        return run_flow_backup(Path(args["image"]), Path(args["work"]))
    if operation == "e2e":
        from benchmarks.endtoend import measure_end_to_end

        return measure_end_to_end(Path(args["image"]), Path(args["work"]), args["rounds"])
    if operation == "scheduler":
        from benchmarks.scheduler import measure_scheduler

        return measure_scheduler(Path(args["work"]), args["jobs"], args["limit"], args["database"])
    if operation == "scale":
        from benchmarks.scale import run_scale  # imports Prefect: only in this step

        return run_scale(
            Path(args["work"]), args["vms"], args["transition_delay"], args["cli_runs"], args["rounds"]
        )
    raise SystemExit(
        f"unknown operation {operation!r}; choose backup, export, verify, flow, e2e, scheduler, scale or exec"
    )


def main(argv: list[str]) -> None:
    if len(argv) != 2:
        raise SystemExit(
            "usage: python -m benchmarks.one backup|export|verify|flow|e2e|scheduler|scale|exec JSON_ARGUMENTS"
        )
    result = _run(argv[0], json.loads(argv[1]))
    print(RESULT_MARK + json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
