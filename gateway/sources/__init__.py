"""Intake sources: where ERP records come from (drop folders, queues)."""
