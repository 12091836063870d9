"""labkit's errors say what happened and what to do about it."""

from __future__ import annotations


class LabkitError(Exception):
    """Something the learner can fix; the message says how."""


class PortBusyError(LabkitError):
    """A port the lab needs is taken. ``env_var`` is the setting that moves it (None: labkit picked the port)."""

    def __init__(self, port: int, purpose: str, holder: str | None, env_var: str | None):
        self.port, self.purpose, self.holder, self.env_var = port, purpose, holder, env_var
        who = f"by {holder}" if holder else "by another program (run `ss -ltnp` or `lsof -i :%d` to see which)" % port
        if env_var is None:
            super().__init__(f"Port {port} ({purpose}) is already in use {who}; labkit picked it as free a moment "
                             "before. Run the command again: it picks another port.")
            return
        super().__init__(
            f"Port {port} ({purpose}) is already in use {who}.\n"
            f"  Either stop that program, or give the lab another port, e.g.\n"
            f"      {env_var}={port + 100} labkit start-all\n"
            f"  (or put {env_var}={port + 100} in a .env file at the project root so every command uses it)."
        )


class ServiceFailedError(LabkitError):
    def __init__(self, name: str, reason: str, log_tail: str, log_path):
        super().__init__(
            f"The {name} service did not become healthy: {reason}.\n"
            f"  Last lines of its log ({log_path}):\n{log_tail}\n"
            f"  See the whole log with: labkit logs {name}"
        )
