"""Services as opsbot knows them: per service its repository, where it runs in Kubernetes
and its Jenkins jobs, each fact with where it came from.

A fact comes from the team's Backstage catalog (``OPSBOT_CATALOG``) when a Component
states it, else from a convention: the repository ``GITHUB_OWNER/<service>``,
Kubernetes' recommended label ``app.kubernetes.io/name=<service>``, and the Jenkins jobs
``<service>-ci`` and ``deploy-<service>`` (``actions.catalog``). A service is any
Component and any service Jenkins' job list implies; names resolve over them all with
``actions.catalog.resolve_name``, fuzzily and reporting ambiguity, as everywhere else.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from actions.backends.github import OWNER_VARIABLE, Repository, owner_from_env
from actions.catalog import Catalog, Resolution, resolve_name
from actions.service_catalog._descriptors import (
    CATALOG_VARIABLE,
    JENKINS_JOBS,
    KUBERNETES_ID,
    KUBERNETES_NAMESPACE,
    KUBERNETES_SELECTOR,
    PROJECT_SLUG,
    Component,
    Noted,
    read_catalog,
)

__all__ = ["OWNER_VARIABLE", "Fact", "JenkinsJob", "Repository", "Service", "ServiceCatalog"]

RECOMMENDED_LABEL = "app.kubernetes.io/name"

T = TypeVar("T")


@dataclass(frozen=True)
class Fact(Generic[T]):
    """A value and where it came from; without a value, ``origin`` says why there is none."""

    value: T | None
    origin: str


@dataclass(frozen=True)
class JenkinsJob:
    """A Jenkins job of a service, what opsbot uses it for, and where that came from."""

    full_name: str
    origin: str
    role: str | None = None  # "ci" or "deploy" in Jenkins' job list; None: named only
    instance: str | None = None  # the Backstage Jenkins instance before ':', if named
    listed: bool | None = None  # in Jenkins' job list; None: Jenkins was not asked


@dataclass(frozen=True)
class Service:
    """Everything opsbot knows about one service."""

    name: str
    origin: str  # the Component's place, or "Jenkins job list"
    repository: Fact[Repository]
    kubernetes_selector: Fact[str]  # a label selector: "app.kubernetes.io/name=checkout"
    kubernetes_namespace: Fact[str]  # None: the Kubernetes backend's own namespace
    jenkins_jobs: tuple[JenkinsJob, ...] = ()
    title: str | None = None
    system: str | None = None
    owner: str | None = None


class ServiceCatalog:
    """The services of the Backstage catalog, with Jenkins' when its jobs are added."""

    def __init__(self, components: Sequence[Component] = (), *, github_owner: str | None = None,
                 source: str | None = None, jenkins: Catalog | None = None) -> None:
        self.components = {c.name: c for c in components}
        self.github_owner = github_owner
        self.source = source  # OPSBOT_CATALOG as set; None: no catalog
        self.jenkins = jenkins

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ServiceCatalog:
        """From ``OPSBOT_CATALOG`` and ``GITHUB_OWNER``; ConfigError (CatalogError for the
        files) with the place and the fix when either cannot be used."""
        owner = owner_from_env(env)
        source = (env.get(CATALOG_VARIABLE) or "").strip() or None
        components = read_catalog(Path(source)) if source else ()
        return cls(components, github_owner=owner, source=source)

    def job_claims(self) -> dict[str, str]:
        """Job full name -> service, for every job a Component's ``jenkins.io/job-full-name``
        names (the first Component to name a job has it)."""
        claims: dict[str, str] = {}
        for component in self.components.values():
            for _instance, job in component.jenkins_jobs():
                claims.setdefault(job, component.name)
        return claims

    def with_jenkins(self, jenkins: Catalog) -> ServiceCatalog:
        """This catalog with Jenkins' services and jobs; build ``jenkins`` with
        ``Catalog(jobs, catalog.job_claims())`` so the catalog's jobs count."""
        return ServiceCatalog(tuple(self.components.values()), github_owner=self.github_owner,
                              source=self.source, jenkins=jenkins)

    def names(self) -> list[str]:
        """Every service: the Components' and, with Jenkins, the ones its jobs imply."""
        jenkins = self.jenkins.services if self.jenkins is not None else {}
        return sorted(set(self.components) | set(jenkins))

    def resolve(self, name: str) -> Resolution:
        """``"the checkout service"``, ``"checkout-web"`` (its repository) or ``"chekout"``
        -> ``checkout``; ambiguous or unknown names are not guessed."""
        aliases: dict[str, str] = {}
        for component in self.components.values():
            slug = component.annotations.get(PROJECT_SLUG)
            for alias in (component.title, slug.value.split("/")[1] if slug else None):
                if alias:
                    aliases.setdefault(alias, component.name)
        return resolve_name(name, self.names(), aliases)

    def services(self) -> list[Service]:
        return [self.service(name) for name in self.names()]

    def service(self, name: str) -> Service:
        """What is known about ``name`` (an exact name, as ``resolve`` gives); a name the
        catalog does not have gets the conventions."""
        component = self.components.get(name)
        noted: Mapping[str, Noted] = component.annotations if component is not None else {}
        return Service(
            name=name,
            origin=component.origin if component is not None else "Jenkins job list",
            repository=self._repository(name, noted),
            kubernetes_selector=_selector(name, noted),
            kubernetes_namespace=(Fact(noted[KUBERNETES_NAMESPACE].value,
                                       noted[KUBERNETES_NAMESPACE].origin)
                                  if KUBERNETES_NAMESPACE in noted else
                                  Fact(None, f"no {KUBERNETES_NAMESPACE}: the Kubernetes "
                                             "backend's own namespace")),
            jenkins_jobs=self._jobs(name, component),
            title=component.title if component else None,
            system=component.system if component else None,
            owner=component.owner if component else None,
        )

    def describe(self) -> str:
        """One line for start-up: where the services come from."""
        if self.source is None:
            return (f"none ({CATALOG_VARIABLE} is unset): services are what Jenkins' job "
                    "names imply, with the naming conventions")
        count = len(self.components)
        return f"{count} service{'s' if count != 1 else ''} from {self.source}"

    def _repository(self, name: str, noted: Mapping[str, Noted]) -> Fact[Repository]:
        slug = noted.get(PROJECT_SLUG)
        if slug is not None:
            owner, repo = slug.value.split("/")
            return Fact(Repository(owner, repo), slug.origin)
        if self.github_owner is not None:
            return Fact(Repository(self.github_owner, name),
                        f"convention: {OWNER_VARIABLE}/<service> ({OWNER_VARIABLE}="
                        f"{self.github_owner})")
        return Fact(None, f"no {PROJECT_SLUG}, and {OWNER_VARIABLE} is not set")

    def _jobs(self, name: str, component: Component | None) -> tuple[JenkinsJob, ...]:
        named: dict[str, tuple[str | None, str]] = {}
        if component is not None and JENKINS_JOBS in component.annotations:
            origin = component.annotations[JENKINS_JOBS].origin
            named = {job: (instance, origin) for instance, job in component.jenkins_jobs()}
        found: list[JenkinsJob] = []
        roles = self.jenkins.services.get(name, {}) if self.jenkins is not None else {}
        for role, job in sorted(roles.items()):
            convention = "<service>-ci" if role == "ci" else "deploy-<service>"
            instance, origin = named.pop(job, (None, f"Jenkins job list ({convention})"))
            found.append(JenkinsJob(job, origin, role, instance, listed=True))
        for job, (instance, origin) in named.items():
            listed = None if self.jenkins is None else job in self.jenkins.jobs
            found.append(JenkinsJob(job, origin, None, instance, listed))
        return tuple(found)


def _selector(name: str, noted: Mapping[str, Noted]) -> Fact[str]:
    """Backstage's order: the label selector, else the kubernetes-id label, else (ours)
    Kubernetes' recommended ``app.kubernetes.io/name``."""
    for key, shape in ((KUBERNETES_SELECTOR, "{}"), (KUBERNETES_ID, KUBERNETES_ID + "={}")):
        found = noted.get(key)
        if found is not None:
            return Fact(shape.format(found.value), found.origin)
    return Fact(f"{RECOMMENDED_LABEL}={name}", f"convention: {RECOMMENDED_LABEL}=<service>")
