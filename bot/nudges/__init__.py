"""Nudges: the tick (set-wise planning), the outbox sender, reminders, digests and the APScheduler wiring."""
