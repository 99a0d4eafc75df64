"""Alembic, one history per service, each in its own PostgreSQL schema.

`python -m services.shared.migrations` upgrades every service to head (the run
command and the migrations Job do this); `... revision SERVICE -m MSG`
autogenerates a revision for one service from its models.
"""
import argparse
import importlib
import os
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import MetaData, create_engine, text

from services.shared.config import load_config
from services.shared.database import database_uri

SERVICES = ("auth", "events", "messages")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def alembic_config(service: str, url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", os.path.join(ROOT, service, "migrations"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["service"] = service
    return config


def service_metadata(service: str) -> MetaData:
    metadata: MetaData = importlib.import_module(f"services.{service}.models").Base.metadata
    return metadata


def comparison_options(metadata: MetaData) -> dict[str, Any]:
    """How Alembic compares a service's models with its schema: only that
    schema counts (every service shares one database), its version table included."""
    return {
        "target_metadata": metadata,
        "version_table_schema": metadata.schema,
        "include_schemas": True,
        "include_name": lambda name, type_, parent: type_ != "schema" or name == metadata.schema,
    }


def run_env(context: Any) -> None:
    """The body of every service's migrations/env.py."""
    metadata = service_metadata(context.config.attributes["service"])
    engine = create_engine(context.config.get_main_option("sqlalchemy.url"))
    with engine.connect() as connection:
        context.configure(connection=connection, **comparison_options(metadata))
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


def available_services() -> list[str]:
    return [name for name in SERVICES if os.path.isdir(os.path.join(ROOT, name, "migrations", "versions"))]


def ensure_schema(url: str, service: str) -> None:
    engine = create_engine(url)
    with engine.begin() as connection:
        # Two migration jobs started at once must not race on a schema.
        connection.execute(text("SELECT pg_advisory_xact_lock(4242)"))
        connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{service}"'))
    engine.dispose()


def upgrade_all(config: dict[str, Any] | None = None) -> None:
    config = config or load_config()
    for service in available_services():
        url = database_uri(config, service)
        ensure_schema(url, service)
        command.upgrade(alembic_config(service, url), "head")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("upgrade", help="upgrade every service to head (the default)")
    revision = sub.add_parser("revision", help="autogenerate a revision for one service")
    revision.add_argument("service", choices=SERVICES)
    revision.add_argument("-m", "--message", required=True)
    args = parser.parse_args()
    if args.command == "revision":
        url = database_uri(load_config(), args.service)
        ensure_schema(url, args.service)
        command.revision(alembic_config(args.service, url), message=args.message, autogenerate=True)
    else:
        upgrade_all()


if __name__ == "__main__":
    main()
