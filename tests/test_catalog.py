"""Name resolution against the job list, and deployments read from deploy builds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from actions.backends.jenkins import Build, Job
from actions.catalog import (
    Catalog,
    ago,
    deployments,
    duration,
    live_version,
    previous_version,
)

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def _job(full_name: str, color: str = "blue") -> Job:
    return Job(full_name=full_name, name=full_name.rsplit("/", 1)[-1],
               url=f"http://j/job/{full_name}/", color=color, parameters=(), last_build=1)


@pytest.fixture
def catalog() -> Catalog:
    names = ["payments-ci", "deploy-payments", "checkout-ci", "deploy-checkout", "checkout-api-ci",
             "search-ci", "deploy-search", "platform/nightly-integration", "platform/db-migrations"]
    return Catalog(_job(n) for n in names)


def test_services_come_from_job_names(catalog: Catalog) -> None:
    assert catalog.deployable() == ["checkout", "payments", "search"]
    assert catalog.deploy_job("payments") == "deploy-payments"
    assert catalog.ci_job("checkout-api") == "checkout-api-ci"
    assert catalog.deploy_job("checkout-api") is None


@pytest.mark.parametrize("said, expected, exact", [
    ("payments", "payments", True),
    ("Payments", "payments", True),
    ("the payments service", "payments", True),
    ("paymnts", "payments", False),
    ("serch", "search", False),
])
def test_resolve_service(catalog: Catalog, said: str, expected: str, exact: bool) -> None:
    found = catalog.resolve_service(said, deployable=True)
    assert (found.match, found.exact) == (expected, exact)


def test_unknown_and_ambiguous_names_are_not_guessed(catalog: Catalog) -> None:
    assert catalog.resolve_service("warpdrive").match is None
    assert not catalog.resolve_service("warpdrive").candidates
    found = catalog.resolve_job("checkout")
    assert found.match == "checkout-ci" and found.exact  # a service name means its CI job


def test_resolve_job_by_short_and_full_name(catalog: Catalog) -> None:
    assert catalog.resolve_job("nightly-integration").match == "platform/nightly-integration"
    assert catalog.resolve_job("platform/db-migrations").match == "platform/db-migrations"
    assert catalog.resolve_job("nightly integration").match == "platform/nightly-integration"


def _deploy(number: int, hours_ago: float, version: str, env: str, result: str | None = "SUCCESS",
            by: str = "alice") -> Build:
    return Build(job="deploy-payments", number=number, url=f"http://j/{number}/", result=result,
                 building=result is None, started_at=NOW - timedelta(hours=hours_ago),
                 duration_s=120.0,
                 parameters={"SERVICE": "payments", "VERSION": version, "ENVIRONMENT": env},
                 started_by=by)


def test_live_and_previous_versions() -> None:
    history = deployments("payments", [
        _deploy(1, 100, "2.3.1", "prod"),
        _deploy(2, 50, "2.3.2", "prod", by="bob"),
        _deploy(3, 10, "2.4.0", "prod", result="FAILURE"),
        _deploy(4, 5, "2.4.0", "staging"),
        _deploy(5, 3, "2.3.2", "prod"),  # a redeploy of the live version
    ])
    assert [d.number for d in history] == [5, 4, 3, 2, 1]
    live = live_version(history, "prod")
    assert live is not None and live.version == "2.3.2" and live.number == 5
    previous = previous_version(history, "prod")
    assert previous is not None and previous.version == "2.3.1"
    assert live_version(history, "dev") is None and previous_version(history, "dev") is None


def test_builds_without_deploy_parameters_are_skipped() -> None:
    odd = Build(job="deploy-payments", number=9, url="", result="SUCCESS", building=False,
                started_at=NOW, duration_s=1.0, parameters={}, started_by=None)
    assert deployments("payments", [odd]) == []


def test_wording() -> None:
    assert ago(NOW - timedelta(hours=3, minutes=5), NOW) == "3 hours ago"
    assert ago(NOW - timedelta(minutes=1), NOW) == "1 minute ago"
    assert ago(NOW, NOW) == "just now"
    assert duration(133) == "2m13s" and duration(41) == "41s" and duration(3725) == "1h02m"
