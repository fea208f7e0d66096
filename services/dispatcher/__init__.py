"""The dispatcher: every minute, due schedules in Postgres become messages on the queue (SPEC §1)."""
