"""Backup webhook: a receiver a CDP's webhook destination also sends every event to, and the
reconciliation of those events against the primary deliveries (which never arrived, which
arrived late or twice, and how long failing ones have before the platform gives up)."""

from __future__ import annotations

from observatory.backup.journal import Journal, fold_journal, journal_path
from observatory.backup.receiver import BackupService, parse_events, sign, start_backup

__all__ = [
    "BackupService",
    "Journal",
    "fold_journal",
    "journal_path",
    "parse_events",
    "sign",
    "start_backup",
]
