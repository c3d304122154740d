"""Alembic's environment script: hands over to `sync.migrations`, which runs Alembic in code."""

from alembic import context

from sync.migrations import run_environment

__all__: list[str] = []

run_environment(context)  # type: ignore[arg-type]
