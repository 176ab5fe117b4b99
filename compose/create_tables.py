#!/usr/bin/env python3
"""Create the DynamoDB tables of the demo from `examples/*.dynamodb.json` (CreateTable requests).

A one-shot init step: tables that already exist are left alone, so running it again is harmless.
Usage: python create_tables.py FILE.dynamodb.json [...]   (endpoint from PARITY_DYNAMODB_ENDPOINT)
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any


def requests_from(path: Path) -> list[dict[str, Any]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    tables = data if isinstance(data, list) else [data]
    for t in tables:
        if not isinstance(t, dict) or "TableName" not in t or "KeySchema" not in t:
            raise ValueError(f"{path.name}: expected CreateTable requests (TableName, KeySchema, ...)")
    return tables


def main(argv: list[str]) -> int:
    import boto3

    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    client = boto3.client(
        "dynamodb",
        endpoint_url=os.environ.get("PARITY_DYNAMODB_ENDPOINT") or None,
        region_name=os.environ.get("AWS_REGION", "us-east-1"),
    )
    deadline = time.monotonic() + 60
    while True:  # DynamoDB Local answers a few seconds after its JVM starts
        try:
            existing = set(client.list_tables()["TableNames"])
            break
        except Exception as exc:  # botocore raises several unrelated types while it starts
            if time.monotonic() > deadline:
                print(f"error: DynamoDB not reachable: {exc}", file=sys.stderr)
                return 1
            time.sleep(1)
    for path in map(Path, argv):
        for request in requests_from(path):
            name = request["TableName"]
            if name in existing:
                print(f"{name}: exists")
                continue
            client.create_table(**request)
            client.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
            print(f"{name}: created")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
