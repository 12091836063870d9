"""Run one service instance: ``python -m services.run policy --port 3001``.

labkit starts every service this way, with the lab's environment (REDIS_URL, LAB_*), so a process is
just a name, a port and an instance id.
"""

from __future__ import annotations

import argparse
import importlib

import uvicorn

from services.core.settings import SERVICE_NAMES, get_settings
from services.platform.app import configure_logging, new_instance_id


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("service", choices=SERVICE_NAMES)
    parser.add_argument("--port", type=int, help="defaults to the service's port in settings")
    parser.add_argument("--instance", help="instance id (defaults to <service>-<port>-<random>)")
    args = parser.parse_args(argv)

    settings = get_settings()
    port = args.port or settings.port_of(args.service)
    instance_id = args.instance or new_instance_id(args.service, port)
    configure_logging()
    module = importlib.import_module(f"services.{args.service}.main")
    app = module.build(settings=settings, port=port, instance_id=instance_id)
    # The gateway is the edge: the address it sees is the client's, and an X-Forwarded-For a client sends is
    # a claim, not a fact (trusting it would let one client pose as many to the login guard). The services
    # behind it do trust the gateway's X-Forwarded-For, from loopback (uvicorn's default).
    # log_config=None: uvicorn's own records go through the lab's formatter too (one record, one line).
    uvicorn.run(app, host=settings.host, port=port, log_level="warning", access_log=False, log_config=None,
                proxy_headers=args.service != "gateway", timeout_keep_alive=settings.server_keep_alive_s,
                timeout_graceful_shutdown=3)


if __name__ == "__main__":
    main()
