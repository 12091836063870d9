"""The ``labkit`` command: thin, it parses arguments, calls labkit functions and prints tables."""

from __future__ import annotations

import argparse
import os
import shutil
import sys

from services.core.settings import PROJECT_ROOT, SERVICE_NAMES, get_settings

from . import lab as lab_module
from .errors import LabkitError
from .tables import text_table


def cmd_start_all(args) -> int:
    lab = lab_module.start_all(detached=True)
    print(lab)
    print(f"\nThe gateway is at {lab.gateway_url} — try {lab.gateway_url}/docs. Stop everything with `labkit stop-all`.")
    return 0


def cmd_stop_all(args) -> int:
    stopped = lab_module.stop_all()
    print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
    return 0


def cmd_status(args) -> int:
    lab = lab_module.status()
    print(lab)
    return 0 if lab.healthy else 1


def cmd_logs(args) -> int:
    print(lab_module.logs(args.name, args.lines))
    return 0


def cmd_restart(args) -> int:
    print(lab_module.restart(args.name))
    return 0


def cmd_seed(args) -> int:
    from .seed import seed

    result = seed()
    if result.get("skipped"):
        print(f"seed: skipped, {result['reason']}")
    else:
        print(f"seed: created {result['customers']} customers, {result['policies']} policies, "
              f"{result['claims']} claims")
    return 0


def cmd_verify(args) -> int:
    from .verify import verify

    checks = verify()
    print(text_table([c.row() for c in checks]))
    failed = [c for c in checks if not c.ok]
    print(f"\n{len(checks) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


def cmd_lab(args) -> int:
    """Everything a learner needs: the lab up, sample data in, JupyterLab on notebook 00."""
    print(lab_module.start_all(detached=True))
    cmd_seed(args)
    jupyter = shutil.which("jupyter", path=os.path.dirname(sys.executable)) or "jupyter"
    argv = [jupyter, "lab", str(PROJECT_ROOT / "notebooks" / "00_start_here.ipynb"), *args.jupyter_args]
    print("\nOpening JupyterLab (Ctrl-C stops Jupyter; `make stop` stops the lab).")
    os.chdir(PROJECT_ROOT)
    os.execv(argv[0], argv)


def cmd_grade(args) -> int:
    from .grade import grade, report

    results = grade(args.notebook)
    print(report(results))
    return 0 if results and all(r.passed for r in results if r.graded) else 1


def cmd_exercises(args) -> int:
    from .exercises import build_all, drift

    if args.action == "build":
        for path in build_all():
            print(f"wrote {path.relative_to(PROJECT_ROOT)}")
        return 0
    stale = drift()
    for path in stale:
        print(f"out of date: {path.relative_to(PROJECT_ROOT)} (run `labkit exercises build`)")
    return 1 if stale else 0


def cmd_api_key(args) -> int:
    """The lab's API key, for curl: curl -H "Authorization: Bearer $(labkit api-key)" ..."""
    print(get_settings().api_key())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="labkit", description="The redis-insurance-lab bench.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name, func, help_text):
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(func=func)
        return p

    add("lab", cmd_lab, "start everything, load sample data and open JupyterLab on notebook 00") \
        .add_argument("jupyter_args", nargs=argparse.REMAINDER, help="passed on to `jupyter lab`")
    add("start-all", cmd_start_all, "start Redis and every service (reuses what is already up)")
    add("stop-all", cmd_stop_all, "stop every process labkit started")
    add("status", cmd_status, "show Redis and every service (exit 1 if something is down)")
    p = add("logs", cmd_logs, "show the end of one process's log")
    p.add_argument("name", help=f"one of: redis, {', '.join(SERVICE_NAMES)}")
    p.add_argument("-n", "--lines", type=int, default=50)
    add("restart", cmd_restart, "restart one service").add_argument("name", choices=SERVICE_NAMES)
    add("seed", cmd_seed, "load the deterministic sample data (skipped if already loaded)")
    add("api-key", cmd_api_key, "print the lab's API key (the system user at the gateway), for curl")
    add("verify", cmd_verify, "check Redis, every service, the gateway routes and a full workflow")
    add("grade", cmd_grade, "run a notebook's graded checks and print a summary").add_argument("notebook")
    add("exercises", cmd_exercises, "generate exercises/ from solutions/, or check they match") \
        .add_argument("action", choices=["build", "check"])
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except LabkitError as exc:
        print(f"labkit: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
