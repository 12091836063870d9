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
from .traces import add_trace_command


def cmd_start_all(args) -> int:
    if args.tracing is not None:  # the same as LAB_TRACING=1/0 for every process started now (lesson 10)
        os.environ["LAB_TRACING"] = "1" if args.tracing else "0"
    if args.cluster or args.primaries:  # the same as LAB_REDIS_CLUSTER=1 (LAB_REDIS_PRIMARIES=N) in the environment
        os.environ["LAB_REDIS_CLUSTER"] = "1"
        if args.primaries:
            os.environ["LAB_REDIS_PRIMARIES"] = str(args.primaries)
    if args.spread:  # the same as LAB_SPREAD_HOSTS=1: every Redis node and every service on its own 127.0.0.x
        os.environ["LAB_SPREAD_HOSTS"] = "1"
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
    """Any name `labkit logs` knows: redis (a snapshot is saved and reloaded: nothing lost), a service, NAME#k."""
    if args.name == "redis":
        from . import faults

        server = faults.restart_redis(down_for_s=0)
        print(f"Redis restarted with its data (saved, then reloaded), pid {server.pid}; the services reconnect by themselves")
        print(lab_module.status())
    elif "#" in args.name:
        print(lab_module.restart_instance(args.name))
    else:
        print(lab_module.restart(args.name))
    return 0


def cmd_start(args) -> int:
    print(lab_module.start_one(args.name))
    return 0


def cmd_stop(args) -> int:
    stopped = lab_module.stop_one(args.name)
    print(f"stopped: {args.name}" if stopped else f"{args.name} was not running")
    return 0


def cmd_scale(args) -> int:
    print(lab_module.scale(args.name, args.n, detached=True))
    return 0


def cmd_dashboard(args) -> int:
    """The live dashboard: start it if the lab runs without it, and say where it is."""
    url = lab_module.start_dashboard(detached=True)
    print(f"The live dashboard: {url} (actions need the key: labkit api-key). `labkit stop-all` stops it.")
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
    settings = get_settings()
    running = lab_module.running_jupyter(settings)
    if running:
        raise LabkitError(f"JupyterLab already runs for this lab (pid {running}); use that one, or stop it first: "
                          "`labkit stop jupyter`")
    print(lab_module.start_all(detached=True))
    cmd_seed(args)
    jupyter = shutil.which("jupyter", path=os.path.dirname(sys.executable)) or "jupyter"
    argv = lab_module.jupyter_argv(jupyter, PROJECT_ROOT, list(args.jupyter_args))
    print(f"\nOpening JupyterLab on the whole project ({PROJECT_ROOT}): notebooks/, exercises/ and README.md are in its\n"
          f"file browser. Its URL, printed below, ends in /lab/tree/{lab_module.START_NOTEBOOK}.\n"
          "Ctrl-C here stops JupyterLab only; `make stop` (labkit stop-all) stops JupyterLab and the whole lab.")
    lab_module.record_jupyter(settings, argv)
    sys.stdout.flush()  # exec replaces this process: anything still buffered would be lost
    os.chdir(PROJECT_ROOT)
    os.execv(argv[0], argv)


def cmd_grade(args) -> int:
    """Score a notebook's graded checks: a table (or --json), optionally Gradescope's results.json."""
    import json

    from .grade import grade, report, write_results

    result = grade(args.notebook, check_timeout_s=args.timeout, with_hidden=args.with_hidden)
    if args.json:
        print(json.dumps(result.to_json(), indent=1))
    else:
        print(report(result, verbose=args.verbose))
    if args.results:
        write_results(result, args.results)
        if not args.json:
            print(f"wrote {args.results} (Gradescope format)")
    return 0 if result.all_passed else 1


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


def cmd_load(args) -> int:
    """Load the running lab; exit 1 if an open-loop run fell behind its schedule (percentiles refused)."""
    from .analyze import route_summary, table_rows
    from .load import run_load

    result = run_load(mode=args.mode, rate=args.rate, concurrency=args.concurrency, duration=args.duration,
                      mix=args.mix, target=args.target, out=args.out, progress=not args.no_progress)
    print(result.report())
    print(text_table(table_rows(route_summary(result))))
    print(f"\nanalyze it: labkit analyze {result.path}")
    return 1 if result.percentiles_refused else 0


def cmd_analyze(args) -> int:
    """The files given, or else the latest `labkit load` results in the run directory."""
    from .analyze import analyze

    paths = args.results
    if not paths:
        found = sorted((get_settings().run_dir / "results").glob("load-*.csv"), key=lambda p: p.stat().st_mtime)
        if not found:
            raise LabkitError("no load results yet: run `labkit load` first (or give a results file)")
        paths = [str(found[-1])]
        print(f"analyzing the latest load results: {paths[0]}")
    print(analyze(*paths, out_dir=args.out, live=not args.offline).report())
    return 0


def cmd_bench(args) -> int:
    """Run every benchmarks/*.py script and print one table (``benchmarks`` is installed with the project)."""
    from benchmarks import run_all

    argv = ["--seconds", str(args.seconds)] + (["--only", *args.only] if args.only else [])
    return 1 if run_all.main(argv)["failed"] else 0


def cmd_profile(args) -> int:
    """Sample a running service with py-spy; print where its CPU time went, by layer, and the files written."""
    from .profile import profile

    result = profile(args.name, seconds=args.seconds)
    shares = result.shares()
    if not shares:
        print(f"no samples: {args.name} spent no CPU time while it was sampled (idle). Send it traffic meanwhile, "
              f"e.g. `labkit load --mode closed -d 10` in another terminal, then profile again.")
        return 1
    print(text_table([{"layer": layer, "share of samples": f"{share:.1%}"} for layer, share in shares.items()]))
    print(f"\nflame graph: {result.flame_graph}\ncollapsed stacks: {result.stacks}")
    return 0


def cmd_fault(args) -> int:
    """Inject one fault into the running lab (lesson 08), and say how to undo it."""
    import time

    from . import faults

    if args.fault == "kill":
        print(f"SIGKILLed {args.name} (pid {faults.kill_instance(args.name)}); bring it back: labkit restart "
              f"{args.name.split('#')[0]}" + (f" (or labkit.restart_instance('{args.name}'))" if "#" in args.name else ""))
    elif args.fault == "redis-restart":
        server = faults.restart_redis(down_for_s=args.down)
        print(f"Redis restarted after {args.down:g} s down, pid {server.pid}; the services reconnect by themselves")
    elif args.fault == "redis-freeze":
        pid = faults.freeze_redis()
        print(f"Redis frozen (SIGSTOP, pid {pid}) for {args.seconds:g} s ...", flush=True)
        try:
            time.sleep(args.seconds)
        finally:
            faults.thaw_redis(pid)
        print("Redis thawed (SIGCONT)")
    elif args.fault == "slow":
        change = {k: v for k, v in (("sor_latency_ms", args.sor_ms), ("delay_ms", args.delay_ms),
                                    ("error_rate", args.error_rate)) if v is not None}
        before = faults.set_knobs(args.service, **change)
        print(f"{args.service}: knobs {change} (were {before}); undo: labkit fault slow {args.service} "
              f"--sor-ms {before['sor_latency_ms']:g} --delay-ms {before['delay_ms']:g} --error-rate {before['error_rate']:g}")
    elif args.fault == "maxmemory":
        before = faults.shrink_redis_memory(args.size, args.policy)
        print(f"Redis maxmemory {args.size}, policy {args.policy} (were {before['maxmemory']} bytes, "
              f"{before['maxmemory-policy']}); undo: labkit fault maxmemory {before['maxmemory']} "
              f"--policy {before['maxmemory-policy']}")
    return 0


def cmd_redis_url(args) -> int:
    """The admin URL of the lab's Redis (it has a password): redis-cli -u "$(labkit redis-url)" ..."""
    from . import redis_server

    server = redis_server.current(get_settings())
    if server is None:
        raise LabkitError("Redis is not running: `labkit start-all`")
    print(server.url)
    return 0


def cmd_acl(args) -> int:
    """The ACL lines labkit applies to its own server, to apply by hand on a server behind REDIS_URL."""
    from services.core import acl
    from services.core.settings import SERVICE_NAMES

    settings = get_settings()
    print("# One Redis user per lab service. Apply on your server (redis-cli -u <admin url>), then start the lab")
    print("# with LAB_REDIS_ACL=1 so labkit gives every service its own user's URL. Passwords derive from the lab's")
    print(f"# secret in {settings.run_dir / 'internal-secret'}: keep that file when you apply these.")
    for setuser in acl.setuser_commands(settings, SERVICE_NAMES):
        print("ACL SETUSER " + " ".join(setuser))
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
    p = add("start-all", cmd_start_all, "start Redis and every service (reuses what is already up)")
    p.add_argument("--cluster", action="store_true", help="a Redis Cluster of embedded nodes instead of one server "
                                                           "(lesson 09; the same as LAB_REDIS_CLUSTER=1)")
    p.add_argument("--tracing", action=argparse.BooleanOptionalAction, default=None,
                   help="OpenTelemetry tracing in every process (lesson 10; on by default: every write and 1 read "
                        "in 100; --no-tracing is the same as LAB_TRACING=0)")
    p.add_argument("--primaries", type=int, help="with --cluster: how many primaries, each with a replica (default 3)")
    p.add_argument("--spread", action="store_true", help="split the lab across simulated hosts: each Redis node and "
                                                          "each service on its own loopback address, 127.0.0.2 ... "
                                                          "(lesson 09; the same as LAB_SPREAD_HOSTS=1; Linux)")
    add("stop-all", cmd_stop_all, "stop every process labkit started, JupyterLab included")
    add("start", cmd_start, "start one: redis, or one service alone (with Redis, which it needs)") \
        .add_argument("name", choices=["redis", *SERVICE_NAMES])
    add("stop", cmd_stop, "stop one: redis, a service, an extra instance (claims#2) or jupyter") \
        .add_argument("name", help=f"redis, {', '.join(SERVICE_NAMES)}, NAME#k or jupyter")
    add("status", cmd_status, "show Redis and every service (exit 1 if something is down)")
    p = add("logs", cmd_logs, "show the end of one process's log")
    p.add_argument("name", help=f"one of: redis, {', '.join(SERVICE_NAMES)}")
    p.add_argument("-n", "--lines", type=int, default=50)
    add("restart", cmd_restart, "restart one process: redis (its data kept), a service, or an extra instance "
                                "(claims#2)").add_argument("name", help=f"one of: redis, {', '.join(SERVICE_NAMES)}, NAME#k")
    p = add("scale", cmd_scale, "run N instances of a service (extra ones on free ports, named NAME#2, NAME#3 ...)")
    p.add_argument("name", choices=SERVICE_NAMES)
    p.add_argument("n", type=int, help="how many instances in all (1 = only the first one)")
    add("dashboard", cmd_dashboard, "the live dashboard (started by start-all): start it if needed, print its address")
    add("seed", cmd_seed, "load the deterministic sample data (skipped if already loaded)")
    p = add("fault", cmd_fault, "inject a fault into the running lab (lesson 08): kill, redis-restart, "
                                "redis-freeze, slow, maxmemory")
    kinds = p.add_subparsers(dest="fault", required=True, metavar="FAULT")
    kinds.add_parser("kill", help="SIGKILL one process (e.g. claims, claims#2)").add_argument("name")
    kinds.add_parser("redis-restart", help="stop Redis with a snapshot and start it on the same port") \
        .add_argument("--down", type=float, default=1.0, help="seconds to stay down (default 1)")
    kinds.add_parser("redis-freeze", help="SIGSTOP Redis for SECONDS: nothing answers, nothing is refused") \
        .add_argument("seconds", type=float)
    q = kinds.add_parser("slow", help="turn a service's knobs: slower system of record, extra delay, errors")
    q.add_argument("service")
    q.add_argument("--sor-ms", type=float, help="added to every system-of-record query")
    q.add_argument("--delay-ms", type=float, help="added to every request")
    q.add_argument("--error-rate", type=float, help="fraction of requests answered 500 (0-1)")
    q = kinds.add_parser("maxmemory", help="set Redis maxmemory and eviction policy (0 = no limit)")
    q.add_argument("size", help="e.g. 4mb, or 0 for no limit")
    q.add_argument("--policy", default="allkeys-lru", help="eviction policy (default allkeys-lru)")
    add("redis-url", cmd_redis_url, "print the admin URL of the lab's Redis, e.g. for redis-cli -u")
    add("acl", cmd_acl, "print the ACL SETUSER lines for each service's Redis user (to apply behind REDIS_URL)")
    add("api-key", cmd_api_key, "print the lab's API key (the system user at the gateway), for curl")
    add("verify", cmd_verify, "check Redis, every service, the gateway routes and a full workflow")
    p = add("grade", cmd_grade, "run a notebook's graded checks: points per check and a total")
    p.add_argument("notebook")
    p.add_argument("-v", "--verbose", action="store_true", help="full messages in the table, and timings")
    p.add_argument("--json", action="store_true", help="print the result as JSON (score, max_score, checks)")
    p.add_argument("--results", metavar="FILE", help="also write Gradescope's results.json to FILE")
    p.add_argument("--with-hidden", metavar="DIR", help="also run the instructor's hidden checks, DIR/<notebook>.py")
    p.add_argument("--timeout", type=float, default=60, help="seconds each graded check may take (default 60)")
    add("exercises", cmd_exercises, "generate exercises/ from solutions/, or check they match") \
        .add_argument("action", choices=["build", "check"])
    p = add("load", cmd_load, "load the lab with an insurance mix; one record per request in a CSV")
    p.add_argument("--mode", choices=["open", "closed"], default="open",
                   help="open: fixed arrival rate (no coordinated omission); closed: N workers, back to back")
    p.add_argument("--rate", type=float, default=200, help="open loop: requests per second (default 200)")
    p.add_argument("-c", "--concurrency", type=int, default=16, help="connections / workers (default 16)")
    p.add_argument("-d", "--duration", type=float, default=10, help="seconds (default 10)")
    p.add_argument("--mix", default="insurance",
                   help="a named mix (insurance, reads) or weights: read_policy=3,read_claim=1,submit_claim=1")
    p.add_argument("--target", default="gateway", choices=["gateway", "policy", "claims", "customer"],
                   help="through the gateway (default) or straight to one service (its own operations only)")
    p.add_argument("--out", help="results file (default: <run dir>/results/load-<run>.csv)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p = add("analyze", cmd_analyze, "summarize load results per route, with Redis INFO; write PNG charts")
    p.add_argument("results", nargs="*", help="results file(s) from `labkit load` (several: compared); "
                                             "none: the latest one")
    p.add_argument("--out", help="directory for the PNGs and summary.csv (default: beside the first file)")
    p.add_argument("--offline", action="store_true", help="records only: do not ask Redis or the services")
    p = add("profile", cmd_profile, "sample a running service with py-spy (send it traffic meanwhile): its CPU "
                                    "time by layer, and a flame graph")
    p.add_argument("name", help=f"one of: {', '.join(SERVICE_NAMES)}, or NAME#k")
    p.add_argument("--seconds", type=float, default=5.0, help="how long to sample (default 5)")
    p = add("bench", cmd_bench, "run every benchmark with short durations; one table of figures vs targets")
    p.add_argument("--seconds", type=float, default=2.0, help="measuring time per contender (default 2)")
    p.add_argument("--only", nargs="*", help="only these benchmarks (e.g. gateway_hop load_targets)")
    add_trace_command(add)  # labkit trace ID | --last (lesson 10)
    return parser


def follow_the_running_lab() -> None:
    """A lab started with ``--spread`` stays spread: every later command (status, verify, seed, load ...)
    looks for each process at its own address, as the services started later do (``lab.settings_env``)."""
    from .redis_server import recorded_spread

    if "LAB_SPREAD_HOSTS" not in os.environ and recorded_spread(get_settings()):
        os.environ["LAB_SPREAD_HOSTS"] = "1"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    follow_the_running_lab()
    if extra:
        if args.command != "lab":
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.jupyter_args = extra + args.jupyter_args  # `labkit lab --no-browser --port 8899` goes to Jupyter
    try:
        return args.func(args) or 0
    except LabkitError as exc:
        print(f"labkit: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
