"""The service catalog: per service, its repository, where it runs and its Jenkins jobs.

Read from the team's Backstage descriptors (``OPSBOT_CATALOG``: a ``catalog-info.yaml``
or a folder of them) once at start-up, with naming conventions for what they do not say.
A backend resolves a service through it::

    catalog = turn.runtime.services            # or ServiceCatalog.from_env(os.environ)
    found = catalog.resolve("the checkout api")   # Resolution: match, candidates, ambiguous
    service = catalog.service(found.match)
    service.repository.value                   # Repository("acme", "checkout-web") or None
    service.kubernetes_selector.value          # "app.kubernetes.io/name=checkout"

Every fact says where it came from (``.origin``); ``opsbot catalog`` prints them all.
"""

from __future__ import annotations

from actions.service_catalog._catalog import (
    OWNER_VARIABLE,
    Fact,
    JenkinsJob,
    Repository,
    Service,
    ServiceCatalog,
)
from actions.service_catalog._descriptors import (
    CATALOG_VARIABLE,
    CatalogError,
    Component,
    read_catalog,
)

__all__ = [
    "CATALOG_VARIABLE",
    "OWNER_VARIABLE",
    "CatalogError",
    "Component",
    "Fact",
    "JenkinsJob",
    "Repository",
    "Service",
    "ServiceCatalog",
    "read_catalog",
]
