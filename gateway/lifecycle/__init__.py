"""The receipt lifecycle, scheduled inside the daemon: transmit retries with backoff,
deadlines (overdue + resend), subscriptions (状态推送), housekeeping, graceful shutdown.
One concept per module; the daemon and the pipeline call in through small hooks."""
