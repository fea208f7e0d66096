"""Fixtures for the infrastructure tests: the program run once per stack and shared.

Running the program is the expensive part (about a second), and the tests only read what it
recorded, so each stack variant runs once per test session.
"""

from __future__ import annotations

import pytest
from infra_harness import (
    LOCAL_STACK_FILE,
    PRODUCTION_STACK_FILE,
    ProgramRun,
    run_program,
    stack_config,
)


@pytest.fixture(scope="session")
def local_run() -> ProgramRun:
    """The shipped `local` stack: kind + LocalStack, images loaded into Docker."""
    return run_program(stack_config(LOCAL_STACK_FILE), stack="local")


@pytest.fixture(scope="session")
def production_run() -> ProgramRun:
    """The documented production example: EKS, ECR, IAM roles for service accounts."""
    return run_program(stack_config(PRODUCTION_STACK_FILE), stack="production")


@pytest.fixture(scope="session")
def prebuilt_run() -> ProgramRun:
    """A stack that skips building and deploys given image refs (e.g. a CI preview)."""
    config = stack_config(
        LOCAL_STACK_FILE,
        buildImages="false",
        dispatcherImage="registry.example/wr/dispatcher@sha256:" + "a" * 64,
        spawnerImage="registry.example/wr/spawner@sha256:" + "b" * 64,
        runnerImage="registry.example/wr/runner@sha256:" + "c" * 64,
        consoleImage="registry.example/wr/console@sha256:" + "d" * 64,
    )
    return run_program(config, stack="ci")


@pytest.fixture(params=["local", "production"])
def any_run(request: pytest.FixtureRequest) -> ProgramRun:
    """Parametrises a test over both stacks."""
    return request.getfixturevalue(f"{request.param}_run")
