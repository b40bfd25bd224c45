"""Audit domain: an atomic, append-only, hash-chained record of every change."""
