"""Receipts: parse what the Single Window sends back, correlate it, route it to consumers."""
