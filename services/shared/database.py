"""The SQLAlchemy dependency every service uses, tuned for recovery.

`pool_pre_ping` makes a connection that died with a PostgreSQL restart get
replaced on its next checkout instead of failing a request, so a service
recovers by itself when the database comes back.

JIT is off for these sessions: the services run short OLTP queries, and some
(the visibility sub-select of posts and the feed) are estimated far above
PostgreSQL's jit_above_cost, so each one paid 100-200 ms of LLVM compilation
for a few milliseconds of execution (bench/RESULTS.md).

A worker's session is closed after the worker; if PostgreSQL went away in the
meantime, the rollback inside that close raises. Nameko treats an exception
in a dependency's teardown as fatal for the whole container, so one request
in flight during a database restart would take the service down for good.
By then the connection is invalidated and the worker's answer is decided:
the error is logged and the service carries on.
"""
import logging
from typing import Any

from nameko_sqlalchemy import Database as _NamekoDatabase
from nameko_sqlalchemy.database import Session
from sqlalchemy import create_engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import sessionmaker

log = logging.getLogger(__name__)

ENGINE_OPTIONS: dict[str, Any] = {
    "pool_pre_ping": True,
    "pool_size": 10,
    "max_overflow": 10,
    "pool_timeout": 5,
    "connect_args": {"connect_timeout": 3, "options": "-c jit=off"},
}


class Database(_NamekoDatabase):
    """`of_service` names the service whose database this is, when it is not
    the container's own (auth's mail worker, a service class of its own, reads
    auth's tables)."""

    def __init__(self, declarative_base: Any, of_service: str | None = None) -> None:
        super().__init__(declarative_base, engine_options=dict(ENGINE_OPTIONS))
        self.of_service = of_service

    def setup(self) -> None:
        if self.of_service is None:
            super().setup()
            return
        self.db_uri = database_uri(self.container.config, self.of_service)
        self.engine = create_engine(self.db_uri, **self.engine_options)
        self.Session = sessionmaker(bind=self.engine, class_=Session, **self.session_options)

    def worker_teardown(self, worker_ctx: Any) -> None:
        try:
            super().worker_teardown(worker_ctx)
        except SQLAlchemyError:
            log.warning("closing the session of %s failed; the connection is discarded",
                        worker_ctx.call_id, exc_info=True)


def database_uri(config: dict[str, Any], service_name: str) -> str:
    """The URI a service's models live behind (`DB_URIS["<service>:Base"]`)."""
    uri: str = config["DB_URIS"][f"{service_name}:Base"]
    return uri
