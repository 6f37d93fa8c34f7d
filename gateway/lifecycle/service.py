"""What the daemon starts and stops: the scheduler with the lifecycle jobs."""
from __future__ import annotations

import time

from gateway.lifecycle import shutdown
from gateway.log import get_logger

log = get_logger("lifecycle")


class Lifecycle:
    def __init__(self, rt):
        self.rt = rt
        self.scheduler = None   # gateway.lifecycle.scheduler.Scheduler (APScheduler), when enabled
        self.started = time.monotonic()

    def start(self) -> "Lifecycle":
        self.rt.subscription_rules.reload(self.rt)
        if self.rt.config.lifecycle.enabled:
            from gateway.lifecycle.scheduler import Scheduler

            self.scheduler = Scheduler(self.rt)
            self.scheduler.start()
        return self

    def stop(self, deadline: float | None = None) -> None:
        """Stop the jobs, waiting at most until `deadline` (monotonic) or the shutdown timeout."""
        timeout = self.rt.config.lifecycle.shutdown_timeout
        if deadline is not None:
            timeout = max(deadline - time.monotonic(), 0.1)
        if self.scheduler:
            self.scheduler.stop(timeout)
        from gateway.lifecycle import queues   # (pika, only where a queue was opened)

        queues.close(self.rt)
        shutdown.disarm()


def start(rt) -> Lifecycle:
    return Lifecycle(rt).start()
