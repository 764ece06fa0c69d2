"""Backstage catalog descriptors (``catalog-info.yaml``): the Components, and the few
fields of each that opsbot reads, each with the file and line it came from.

The format is Backstage's own, so a team's existing catalog works unchanged:

- descriptors: https://backstage.io/docs/features/software-catalog/descriptor-format
  (multi-document YAML; ``apiVersion: backstage.io/v1alpha1``; ``kind: Component``;
  ``metadata.name``, ``metadata.title``, ``spec.system``, ``spec.owner``);
- ``github.com/project-slug`` (``owner/repo``):
  https://backstage.io/docs/features/software-catalog/well-known-annotations
- ``backstage.io/kubernetes-id``, ``backstage.io/kubernetes-label-selector`` and
  ``backstage.io/kubernetes-namespace``:
  https://backstage.io/docs/features/kubernetes/configuration
- ``jenkins.io/job-full-name`` (``[instance:]folder/job``, several separated by commas;
  the older ``jenkins.io/github-folder`` means the same):
  https://github.com/backstage/community-plugins/blob/main/workspaces/jenkins/plugins/jenkins-backend/README.md

Other kinds (System, API, Group, Location ...) and other fields are skipped. Every
problem is collected with its place and fix, and all of them stop start-up together.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from actions.errors import ConfigError

__all__ = [
    "CATALOG_VARIABLE",
    "JENKINS_JOBS",
    "KUBERNETES_ID",
    "KUBERNETES_NAMESPACE",
    "KUBERNETES_SELECTOR",
    "PROJECT_SLUG",
    "CatalogError",
    "Component",
    "Noted",
    "read_catalog",
]

CATALOG_VARIABLE = "OPSBOT_CATALOG"
PROJECT_SLUG = "github.com/project-slug"
KUBERNETES_ID = "backstage.io/kubernetes-id"
KUBERNETES_SELECTOR = "backstage.io/kubernetes-label-selector"
KUBERNETES_NAMESPACE = "backstage.io/kubernetes-namespace"
JENKINS_JOBS = "jenkins.io/job-full-name"
_JENKINS_LEGACY = "jenkins.io/github-folder"

# Backstage's entity names: letters and digits, with - _ . between them, 63 at most.
_ENTITY_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$")
# GitHub: an owner is letters, digits and single hyphens; a repository adds . and _.
_SLUG = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}$")
# Kubernetes: a label value (what kubernetes-id becomes) and a namespace (a DNS label).
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$")
_NAMESPACE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_NULL = "tag:yaml.org,2002:null"
_MAX_SHOWN = 20


class CatalogError(ConfigError):
    """The service catalog cannot be used; the message lists each problem's place and fix."""


@dataclass(frozen=True)
class Noted:
    """A value read from a descriptor, and where (``shop.yaml:12 (github.com/project-slug)``)."""

    value: str
    origin: str


@dataclass(frozen=True)
class Component:
    """One ``kind: Component`` descriptor: its name and the fields opsbot reads."""

    name: str
    origin: str  # where metadata.name is: "catalog/shop.yaml:7"
    title: str | None = None
    system: str | None = None
    owner: str | None = None
    annotations: Mapping[str, Noted] = field(default_factory=dict)  # only those read

    def jenkins_jobs(self) -> list[tuple[str | None, str]]:
        """``(instance, full name)`` of each job ``jenkins.io/job-full-name`` names."""
        noted = self.annotations.get(JENKINS_JOBS)
        if noted is None:
            return []
        return [_instance_and_job(part) for part in noted.value.split(",") if part.strip()]


def _instance_and_job(part: str) -> tuple[str | None, str]:
    instance, colon, job = part.strip().partition(":")
    return (instance.strip(), job.strip()) if colon else (None, instance.strip())


def read_catalog(path: Path) -> tuple[Component, ...]:
    """The Components of a descriptor file, or of every ``*.yaml``/``*.yml`` under a folder.

    CatalogError, listing every problem with its file, line and fix, when the path cannot
    be read, a file is not YAML, a Component has no (or a malformed) name or annotation,
    or two Components share a name.
    """
    files = _files(path)
    problems: list[str] = []
    components: list[Component] = []
    for file in files:
        components.extend(_read_file(file, problems))
    seen: dict[str, Component] = {}
    for component in components:
        first = seen.setdefault(component.name.lower(), component)
        if first is not component:
            problems.append(f"{component.origin}: a second Component named '{component.name}' "
                            f"(the first is at {first.origin}). A service name means one "
                            "service: rename or remove one of them.")
    if problems:
        shown = "\n".join(f"  - {p}" for p in problems[:_MAX_SHOWN])
        more = (f"\n  ... and {len(problems) - _MAX_SHOWN} more"
                if len(problems) > _MAX_SHOWN else "")
        count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
        raise CatalogError(f"{CATALOG_VARIABLE}={path}: the service catalog has {count} "
                           f"(fix them, or unset {CATALOG_VARIABLE} to go by the naming "
                           f"conventions):\n{shown}{more}")
    return tuple(components)


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml")
                       and p.is_file() and not any(part.startswith(".")
                                                   for part in p.relative_to(path).parts))
        if not found:
            raise CatalogError(
                f"{CATALOG_VARIABLE}={path}: the folder holds no .yaml or .yml file. Put the "
                "team's catalog-info.yaml files there, or point it at one file.")
        return found
    if not path.exists():
        raise CatalogError(
            f"{CATALOG_VARIABLE}={path}: no such file or folder. Point it at a "
            "catalog-info.yaml or a folder of them, or unset it to use the naming "
            "conventions (docs/catalog.md).")
    return [path]


def _read_file(file: Path, problems: list[str]) -> Iterator[Component]:
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        problems.append(f"{file}: not UTF-8 text (byte {exc.start}). Save it as UTF-8.")
        return
    except OSError as exc:
        problems.append(f"{file}: cannot be read ({exc.strerror or exc}). Make it readable "
                        f"by the user opsbot runs as, or change {CATALOG_VARIABLE}.")
        return
    try:
        for document in yaml.compose_all(text, Loader=yaml.SafeLoader):
            component = _component(document, file, problems)
            if component is not None:
                yield component
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{file}:{mark.line + 1}" if mark is not None else str(file)
        problems.append(f"{where}: not valid YAML ({exc.problem or exc.context}). Fix the "
                        "YAML there (a tab, a missing colon or an unclosed quote?).")
    except yaml.YAMLError as exc:
        problems.append(f"{file}: not valid YAML ({exc}).")


def _child(node: yaml.Node | None, key: str) -> yaml.Node | None:
    if not isinstance(node, yaml.MappingNode):
        return None
    return next((value for name, value in node.value
                 if isinstance(name, yaml.ScalarNode) and name.value == key), None)


def _text(node: yaml.Node | None) -> str | None:
    if isinstance(node, yaml.ScalarNode) and node.tag != _NULL:
        return str(node.value).strip() or None
    return None


def _line(file: Path, node: yaml.Node) -> str:
    return f"{file}:{node.start_mark.line + 1}"


def _component(document: yaml.Node | None, file: Path, problems: list[str]) -> Component | None:
    """The Component a document describes; None for another kind, or after noting a problem."""
    if (_text(_child(document, "kind")) != "Component"
            or not (_text(_child(document, "apiVersion")) or "").startswith("backstage.io/")):
        return None
    assert document is not None
    metadata = _child(document, "metadata")
    name_node = _child(metadata, "name")
    name = _text(name_node)
    if name_node is None or name is None:
        where = _line(file, name_node or _child(document, "kind") or document)
        problems.append(f"{where}: a Component without metadata.name. Add its service's name "
                        "(metadata: {name: checkout}).")
        return None
    if not _ENTITY_NAME.match(name):
        problems.append(f"{_line(file, name_node)}: metadata.name '{name}' is not a Backstage "
                        "entity name: letters and digits with - _ . between them, at most 63.")
        return None
    spec = _child(document, "spec")
    return Component(
        name=name, origin=_line(file, name_node), title=_text(_child(metadata, "title")),
        system=_text(_child(spec, "system")), owner=_text(_child(spec, "owner")),
        annotations=_annotations(_child(metadata, "annotations"), file, problems))


def _annotations(node: yaml.Node | None, file: Path, problems: list[str]) -> dict[str, Noted]:
    if node is None or (isinstance(node, yaml.ScalarNode) and node.tag == _NULL):
        return {}
    if not isinstance(node, yaml.MappingNode):
        problems.append(f"{_line(file, node)}: metadata.annotations is not a mapping of "
                        "names to values.")
        return {}
    found: dict[str, Noted] = {}
    for key, wanted in ((PROJECT_SLUG, PROJECT_SLUG), (KUBERNETES_ID, KUBERNETES_ID),
                        (KUBERNETES_SELECTOR, KUBERNETES_SELECTOR),
                        (KUBERNETES_NAMESPACE, KUBERNETES_NAMESPACE),
                        (_JENKINS_LEGACY, JENKINS_JOBS), (JENKINS_JOBS, JENKINS_JOBS)):
        value_node = _child(node, key)
        if value_node is None:
            continue
        where = _line(file, value_node)
        value = _text(value_node)
        if value is None:
            empty = isinstance(value_node, yaml.ScalarNode)
            problems.append(f"{where}: {key} is {'empty' if empty else 'not text'}: give it a "
                            "value or remove it.")
        elif (problem := _malformed(wanted, value)) is not None:
            problems.append(f"{where}: {key}: {problem}.")
        else:
            found[wanted] = Noted(value, f"{where} ({key})")
    return found


def _malformed(key: str, value: str) -> str | None:
    """What is wrong with an annotation's value, and the fix; None if nothing."""
    if key == PROJECT_SLUG and not _SLUG.match(value):
        return (f"'{value}' is not owner/repository as GitHub spells them "
                "(github.com/project-slug: acme/checkout-web)")
    if key == KUBERNETES_ID and not _LABEL_VALUE.match(value):
        return (f"'{value}' cannot be a Kubernetes label value (letters and digits with "
                "- _ . between them, at most 63), which is what Backstage looks it up as")
    if key == KUBERNETES_NAMESPACE and not _NAMESPACE.match(value):
        return (f"'{value}' is not a Kubernetes namespace (lower-case letters, digits and "
                "-, at most 63)")
    if key == JENKINS_JOBS:
        for part in filter(str.strip, value.split(",")):
            instance, job = _instance_and_job(part)
            if not job or "//" in job or job.startswith("/") or job.endswith("/") or (
                    instance is not None and not instance):
                return (f"'{part.strip()}' is not a job's full name "
                        "([instance:]folder/job, several separated by commas)")
    return None
