"""Integration tests talk to DynamoDB Local, which accepts any credentials but needs some."""

from __future__ import annotations

import os

os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
