"""Step types: one module per built-in type, plus any registered through entry points."""

from services.runtime.steps.base import Step, StepCancelled, StepContext, StepError

__all__ = ["Step", "StepCancelled", "StepContext", "StepError"]
