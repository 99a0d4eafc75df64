"""Each service's models and its migrations describe the same schema: a
database upgraded by the migrations, compared with the models by Alembic's
autogenerate (what `python -m services.shared.migrations revision` would write),
has nothing left to migrate."""
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from services.shared.migrations import available_services, comparison_options, service_metadata
from tests.conftest import fresh_database

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def migrated_engine():
    engine = create_engine(fresh_database("models_check"))
    yield engine
    engine.dispose()


@pytest.mark.parametrize("service", available_services())
def test_the_migrations_build_what_the_models_describe(migrated_engine, service):
    with migrated_engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={
            **comparison_options(service_metadata(service)),
            "compare_type": True,
            "compare_server_default": True,
        })
        differences = compare_metadata(context, context.opts["target_metadata"])
    assert not differences, f"{service}: the models differ from the migrations:\n" + "\n".join(
        f"  {difference}" for difference in differences)
