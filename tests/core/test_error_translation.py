"""No raw DuckDB exception reaches a user of the library (issue 25, point 1).

Store methods raise :class:`evalstore.EvalstoreError` subclasses where DuckDB raised, in
the user's terms (the parameter at fault), with DuckDB's exception as ``__cause__``; the
errors stay instances of DuckDB's class too, so ``except duckdb.Error`` still works.
"""

from __future__ import annotations

import inspect
import subprocess
import sys
import textwrap

import duckdb
import pyarrow as pa
import pytest

import evalstore
from evalstore.errors import (
    EvalstoreError,
    InvalidParameterError,
    QueryError,
    StoreInUseError,
)
from evalstore.store import Store
from tests.conftest import blank_store


@pytest.fixture
def store():
    with blank_store() as store:
        store.register_model("m", "v1", "binary")
        store.log_features(
            "m", pa.table({"example_id": ["a", "b"], "x1": [1.0, 2.0]}), env="serving"
        )
        store.log_predictions(
            "m", pa.table({"example_id": ["a", "b"], "prediction": ["1", "0"]}), "v1"
        )
        yield store


def test_sql_errors_are_query_errors_with_duckdbs_message(store):
    with pytest.raises(QueryError, match=r'^Parser Error: syntax error at or near "SELEC"'):
        store.sql("SELEC 1")
    with pytest.raises(EvalstoreError, match="Table with name nosuch does not exist") as raised:
        store.sql("SELECT * FROM nosuch")
    assert isinstance(raised.value.__cause__, duckdb.CatalogException)
    # still DuckDB's class: code written against duckdb.Error keeps working
    assert isinstance(raised.value, duckdb.CatalogException)
    assert type(raised.value).__name__ == "QueryError"


def test_a_refused_value_names_the_parameter(store):
    with pytest.raises(InvalidParameterError) as raised:
        store.select("m", env="serving", labeled_only=False, where="x1 > 'abc'")
    message = str(raised.value)
    assert message.startswith("select(): where=\"x1 > 'abc'\" was refused by DuckDB")
    assert "Could not convert string 'abc' to DOUBLE" in message
    assert isinstance(raised.value.__cause__, duckdb.ConversionException)


def test_a_closed_store_says_so(store):
    store.close()
    with pytest.raises(QueryError, match=r"the store is closed; open it again"):
        store.models()


def test_a_store_held_by_another_process(tmp_path):
    path = tmp_path / "held.duckdb"
    evalstore.open(path).close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, duckdb
                con = duckdb.connect({str(path)!r})
                print("ready", flush=True)
                sys.stdin.read()
                """
            ),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(StoreInUseError) as raised:
            evalstore.open(path)
        message = str(raised.value)
        assert message.startswith("Store(): the store file is in use by another process")
        assert f"PID {holder.pid}" in message  # DuckDB's text is kept (the CLI reads it)
        assert "query the server (HTTP) or read the BI snapshot" in message
        assert isinstance(raised.value.__cause__, duckdb.IOException)
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)


def test_every_public_store_method_translates():
    public = [
        name
        for klass in Store.__mro__[:-1]  # Store and the mixins of evalstore.facade
        for name, member in vars(klass).items()
        if inspect.isfunction(member) and (not name.startswith("_") or name == "__init__")
    ]
    assert {"sql", "drift", "log_labels", "export", "__init__"} <= set(public)
    assert all(hasattr(getattr(Store, name), "__wrapped__") for name in public)
