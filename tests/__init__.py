"""parity's test suites, one directory a kind (see the pytest markers in pyproject.toml), and the
helpers they share: the services fixtures (conftest.py), hand-built Debezium records (debezium.py),
in-memory fakes (fakes.py) and the reader of parity's JSON log lines (cli_output.py)."""
