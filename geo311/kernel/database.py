"""The database: the declarative base every model shares, the engine and the session factory."""

from __future__ import annotations

import select
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import MetaData, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Base class of every ORM model in geo311."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


@dataclass
class Database:
    """An engine and the session factory bound to it."""

    engine: Engine
    sessions: sessionmaker[Session]

    @classmethod
    def connect(cls, url: str, *, pool_size: int = 10, max_overflow: int = 30) -> Database:
        """Return a Database for ``url`` (an SQLAlchemy psycopg URL)."""
        engine = create_engine(url, pool_size=pool_size, max_overflow=max_overflow)
        # Instead of a ping (a round trip on every checkout): see _check_alive.
        event.listen(engine, "checkout", _check_alive)
        return cls(engine=engine, sessions=sessionmaker(engine, expire_on_commit=False))

    @contextmanager
    def session(self) -> Iterator[Session]:
        """Yield a session in a transaction that commits on success and rolls back on error."""
        with self.sessions() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()


def _check_alive(dbapi_connection: Any, *_: Any) -> None:
    """Refuse a pooled connection the server has closed, without a round trip.

    An idle connection in the pool has nothing to read unless the server spoke first: a
    restart, a stop or ``pg_terminate_backend`` sends its goodbye and closes the socket, so
    the socket is then readable (the message, or end of file). Such a connection, or one the
    driver already knows is closed, raises ``DisconnectionError``: the pool drops it and
    this checkout connects afresh (each other dead connection is caught the same way, at no
    cost, when its turn comes). A server that vanished without a word (the host lost, a
    network cut) leaves the socket silent; the first statement then fails, and SQLAlchemy's
    disconnect handling drops the whole pool for the requests after it."""
    if dbapi_connection.closed:
        raise DisconnectionError("the connection is closed")
    poller = select.poll()
    poller.register(dbapi_connection.fileno(), select.POLLIN | select.POLLERR | select.POLLHUP)
    if poller.poll(0):
        raise DisconnectionError("the server closed the connection (it restarted or stopped)")
