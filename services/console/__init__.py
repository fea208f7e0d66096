"""The operator API and web console (SPEC §9): `wfctl serve`."""
