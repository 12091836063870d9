"""``python -m labkit.dashboard --port 3010``: how labkit starts the dashboard as a process of the lab."""

from __future__ import annotations

import argparse

import uvicorn

from services.platform.app import configure_logging
from services.core.settings import get_settings

from .app import build


def main(argv: list[str] | None = None) -> None:
    settings = get_settings()
    parser = argparse.ArgumentParser(prog="python -m labkit.dashboard")
    parser.add_argument("--port", type=int, default=settings.dashboard_port)
    args = parser.parse_args(argv)
    configure_logging()
    # The page's own requests are not worth a log line each; actions are logged by the app itself.
    uvicorn.run(build(settings), host=settings.host, port=args.port, access_log=False, log_config=None,
                timeout_graceful_shutdown=2)


if __name__ == "__main__":
    main()
