"""Example custom step types for Workflow Runtime."""
