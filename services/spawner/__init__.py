"""The Job spawner: queue messages become execution records and runner Jobs (SPEC §1)."""
