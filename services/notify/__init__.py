"""Notifications (SPEC §10, docs/notifications.md): channels, rules, the outbox and its sender.

Services call the hooks in `events` inside their own transactions; the `Sender` delivers what the
outbox holds from the spawner's loop and the dispatcher's tick, whichever comes first.
"""
