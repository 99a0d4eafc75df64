from alembic import context

from services.shared.migrations import run_env

run_env(context)
