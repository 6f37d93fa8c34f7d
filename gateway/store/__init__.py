"""The store: messages, their append-only event log, intake files and receipts."""
