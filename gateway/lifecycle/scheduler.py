"""The lifecycle's jobs on APScheduler 3 (BackgroundScheduler) inside the daemon.

- `swgw-deadlines` (deadline sweep) and `swgw-housekeeping` live in a SQLAlchemy job store
  on the gateway's own store database: a restart keeps their next run times, so a daily
  housekeeping still runs when the daemon restarts more often than daily, and a run missed
  while the daemon was down runs once at start (coalesced).
- `swgw-subscriptions` (re-reading subscription rules, retrying copies that wait for their
  queue) is in memory: it only polls; what waits is in the store.
Jobs are module functions with no arguments (the job store keeps them by reference); they
find the running Runtime here. APScheduler 3 does not share a job store between schedulers:
one daemon per store database runs the jobs (see `lifecycle.enabled`).
"""
from __future__ import annotations

import datetime as dt
import threading

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from gateway.log import get_logger

log = get_logger("scheduler")

_runtime = None
_lock = threading.Lock()


def _run(name: str, fn) -> None:
    rt = _runtime
    if rt is None:
        return
    try:
        fn(rt)
    except Exception as exc:  # a failed run is reported; the next one tries again
        log.error("scheduled job failed; it runs again at its next time", job=name,
                  error=f"{type(exc).__name__}: {exc}")


def sweep_deadlines() -> None:
    from gateway.lifecycle import deadlines

    _run("deadlines", deadlines.sweep)


def housekeeping() -> None:
    from gateway.lifecycle import housekeeping as hk

    _run("housekeeping", hk.run)


def ccpit_sync() -> None:
    from gateway import sync

    _run("ccpit-sync", sync.scheduled)


def reload_subscriptions() -> None:
    from gateway.lifecycle import subscriptions

    def reload_and_retry(rt):
        rt.subscription_rules.reload(rt)
        subscriptions.retry_pending(rt)

    _run("subscriptions", reload_and_retry)


PERSISTENT = (("swgw-deadlines", "gateway.lifecycle.scheduler:sweep_deadlines", "sweep_interval"),
              ("swgw-housekeeping", "gateway.lifecycle.scheduler:housekeeping", None))


class Scheduler:
    def __init__(self, rt):
        self.rt = rt
        self.sched = BackgroundScheduler(
            jobstores={"default": SQLAlchemyJobStore(engine=rt.engine), "memory": MemoryJobStore()},
            executors={"default": ThreadPoolExecutor(2)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone=dt.timezone.utc)

    def start(self) -> None:
        global _runtime
        with _lock:
            _runtime = self.rt
        cfg = self.rt.config.lifecycle
        self.sched.start(paused=True)
        intervals = {"swgw-deadlines": cfg.sweep_interval, "swgw-housekeeping": cfg.housekeeping.interval}
        for job_id, func, _ in PERSISTENT:
            self._ensure(job_id, func, intervals[job_id])
        if cfg.ccpit_sync > 0 and "origin" in self.rt.doc_types:  # 数据同步, daily by default
            self._ensure("swgw-ccpit-sync", "gateway.lifecycle.scheduler:ccpit_sync", cfg.ccpit_sync)
        self.sched.add_job(reload_subscriptions, IntervalTrigger(seconds=cfg.subscription_reload),
                           id="swgw-subscriptions", jobstore="memory", replace_existing=True)
        self.sched.resume()
        jobs = {j.id: j.next_run_time.isoformat() if j.next_run_time else None for j in self.sched.get_jobs()}
        log.info("scheduler started", jobs=jobs)

    def _ensure(self, job_id: str, func: str, seconds: float) -> None:
        """Keep a stored job (and its next run time) if its interval is unchanged; else (re)create it."""
        want = dt.timedelta(seconds=seconds)
        job = self.sched.get_job(job_id, jobstore="default")
        if job is not None and getattr(job.trigger, "interval", None) == want and job.func_ref == func:
            return
        trigger = IntervalTrigger(seconds=seconds, timezone=dt.timezone.utc)
        first = dt.datetime.now(dt.timezone.utc) + min(want, dt.timedelta(seconds=5))
        self.sched.add_job(func, trigger, id=job_id, jobstore="default", replace_existing=True,
                           next_run_time=first)

    def stop(self, timeout: float) -> bool:
        """Stop taking new runs and wait (up to `timeout`) for running jobs; True if they finished."""
        global _runtime
        done = threading.Event()

        def shut():
            try:
                self.sched.shutdown(wait=True)
            finally:
                done.set()

        threading.Thread(target=shut, name="scheduler-stop", daemon=True).start()
        finished = done.wait(timeout)
        if not finished:
            log.warning("scheduled jobs still running at shutdown; they run again after the restart",
                        timeout=timeout)
        with _lock:
            _runtime = None
        return finished
