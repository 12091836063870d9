"""labkit: the lab bench. Start and stop the lab, seed it, verify it, measure it, grade exercises.

From a notebook::

    import labkit
    lab = labkit.start_all()      # Redis + the four services; reuses whatever is already up
    lab                           # renders the status table
    lab.client.get("/api/policies/POL-000001").json()
"""

from .errors import LabkitError, PortBusyError
from .lab import Lab, get_settings, kill_instance, logs, restart, restart_instance, scale, start_all, status, stop_all

__all__ = ["Lab", "LabkitError", "PortBusyError", "get_settings", "kill_instance", "logs", "restart",
           "restart_instance", "scale", "start_all", "status", "stop_all"]
