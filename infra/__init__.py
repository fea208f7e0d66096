"""The Pulumi components of Workflow Runtime (docs/architecture.md).

One `ComponentResource` per module, each taking a typed `...Args` dataclass. The root
`__main__.py` reads the stack configuration once (`infra.config.load`) and wires these together.
This package deliberately imports nothing from `services/`: the platform's code reaches the
cluster only as a container image, never as a Python import of the deployment program.
"""
