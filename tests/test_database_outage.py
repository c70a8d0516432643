"""Which database errors count as an outage (issue 17, item 4): only a database that cannot be
reached, as the driver or Django raises it. What an outage does to running processes:
tests/processes/test_database_outage.py.
"""

from __future__ import annotations

import sqlite3

import psycopg
import pytest
from django import db

from jobs.database_outage import is_outage


@pytest.mark.parametrize(
    "error, outage",
    [
        (psycopg.OperationalError("connection failed: Connection refused"), True),  # no SQLSTATE
        (psycopg.errors.AdminShutdown("terminating connection due to administrator command"), True),
        (psycopg.errors.CannotConnectNow("the database system is starting up"), True),
        (psycopg.InterfaceError("the connection is closed"), True),
        (psycopg.errors.DeadlockDetected("deadlock detected"), False),
        (psycopg.errors.QueryCanceled("canceling statement due to statement timeout"), False),
        (sqlite3.OperationalError("unable to open database file"), True),
        (sqlite3.OperationalError("database is locked"), False),
        (sqlite3.OperationalError("no such table: jobs_trackedjob"), False),
    ],
)
def test_only_a_database_that_cannot_be_reached_counts_as_an_outage(error, outage):
    assert is_outage(error) is outage
    # As Django raises it: its own class of the same name, the driver's error as the cause.
    wrapped = (db.InterfaceError if isinstance(error, psycopg.InterfaceError) else db.OperationalError)(*error.args)
    wrapped.__cause__ = error
    assert is_outage(wrapped) is outage
