"""Helpers for the AMQP tests (a module, so test files import it unambiguously)."""
from __future__ import annotations

import subprocess


def close_amqp_connections(name_prefix: str) -> int:
    """Force-close (like a broker restart would) only the connections whose
    client-provided connection_name starts with `name_prefix`; other users of
    the shared broker are left alone. Returns how many were closed."""
    out = subprocess.run(["rabbitmqctl", "-q", "list_connections", "pid", "client_properties"],
                         capture_output=True, text=True, check=True).stdout
    pids = [line.split("\t", 1)[0] for line in out.splitlines()
            if f'{{"connection_name","{name_prefix}' in line]
    for pid in pids:
        subprocess.run(["rabbitmqctl", "-q", "close_connection", pid, "swgw test: simulated broker outage"],
                       capture_output=True, text=True, check=True)
    return len(pids)
