"""The service catalog: Backstage descriptors, conventions, origins, errors with places,
the union with Jenkins' services, and ``opsbot catalog``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from actions import _runtime
from actions.backends.jenkins import Job
from actions.catalog import Catalog
from actions.errors import ConfigError
from actions.service_catalog import CatalogError, Repository, ServiceCatalog, read_catalog
from opsbot import cli
from tests.conftest import ROOT, free_port

DEMO = ROOT / "simulators" / "data" / "catalog-info.yaml"

CHECKOUT = """\
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: checkout
  title: Checkout web
  annotations:
    github.com/project-slug: acme/checkout-web
    jenkins.io/job-full-name: shop/build-checkout,shop/release-checkout
spec:
  owner: team-shop
  system: shop
"""


def component(name: str, **annotations: str) -> str:
    lines = "".join(f"    {key}: '{value}'\n" for key, value in annotations.items())
    return (f"apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: {name}\n"
            + (f"  annotations:\n{lines}" if lines else ""))


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def job(full_name: str, *parameters: str) -> Job:
    return Job(full_name=full_name, name=full_name.rsplit("/", 1)[-1],
               url=f"http://j/job/{full_name}/", color="blue", parameters=parameters,
               last_build=1)


def problems(path: Path) -> str:
    with pytest.raises(CatalogError) as caught:
        read_catalog(path)
    return str(caught.value)


# -- descriptors -------------------------------------------------------------------------


def test_the_demo_catalog_maps_checkout_to_a_repository_named_otherwise() -> None:
    catalog = ServiceCatalog.from_env({"OPSBOT_CATALOG": str(DEMO)})
    checkout = catalog.service("checkout")
    assert checkout.repository.value == Repository("acme", "checkout-web")
    assert checkout.repository.origin.endswith(":22 (github.com/project-slug)")
    assert checkout.title == "Checkout web" and checkout.system == "shop"
    # The System and the API in the same file are skipped; only Components are services.
    assert catalog.names() == ["auth", "billing", "checkout", "inventory", "notifications",
                               "payments", "search"]
    assert all(s.repository.value == Repository("acme", s.name)
               for s in catalog.services() if s.name != "checkout")


def test_only_backstage_components_are_read(tmp_path: Path) -> None:
    write(tmp_path / "c.yaml", "\n---\n".join([
        component("web"),
        "apiVersion: backstage.io/v1alpha1\nkind: Group\nmetadata:\n  name: team-shop\n",
        "apiVersion: apps/v1\nkind: Component\nmetadata:\n  name: not-backstage\n",
        "- just a list\n",
        "",
    ]))
    assert [c.name for c in read_catalog(tmp_path / "c.yaml")] == ["web"]


def test_a_folder_is_read_recursively_for_yaml_files(tmp_path: Path) -> None:
    write(tmp_path / "shop" / "catalog-info.yaml", CHECKOUT)
    write(tmp_path / "platform" / "auth" / "catalog-info.yml", component("auth"))
    write(tmp_path / "README.md", "name: not yaml by its suffix")
    write(tmp_path / ".git" / "ci.yaml", component("hidden"))
    assert sorted(c.name for c in read_catalog(tmp_path)) == ["auth", "checkout"]


# -- conventions and origins ---------------------------------------------------------------


def test_a_service_without_an_entry_gets_the_conventions() -> None:
    catalog = ServiceCatalog(github_owner="acme")
    service = catalog.service("billing")
    assert service.repository.value == Repository("acme", "billing")
    assert service.repository.origin == "convention: GITHUB_OWNER/<service> (GITHUB_OWNER=acme)"
    assert service.kubernetes_selector.value == "app.kubernetes.io/name=billing"
    assert service.kubernetes_selector.origin == "convention: app.kubernetes.io/name=<service>"
    assert service.kubernetes_namespace.value is None


def test_without_github_owner_there_is_no_repository_and_the_reason() -> None:
    repository = ServiceCatalog().service("billing").repository
    assert repository.value is None
    assert repository.origin == "no github.com/project-slug, and GITHUB_OWNER is not set"


def test_kubernetes_facts_follow_backstage(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", "\n---\n".join([
        component("by-id", **{"backstage.io/kubernetes-id": "payments-api",
                              "backstage.io/kubernetes-namespace": "shop"}),
        component("by-selector", **{"backstage.io/kubernetes-id": "ignored",
                                    "backstage.io/kubernetes-label-selector": "app=web,tier=fe"}),
    ]))
    catalog = ServiceCatalog(read_catalog(path))
    by_id = catalog.service("by-id")
    assert by_id.kubernetes_selector.value == "backstage.io/kubernetes-id=payments-api"
    assert by_id.kubernetes_selector.origin == f"{path}:6 (backstage.io/kubernetes-id)"
    assert (by_id.kubernetes_namespace.value, by_id.kubernetes_namespace.origin) == (
        "shop", f"{path}:7 (backstage.io/kubernetes-namespace)")
    # The label selector wins over the id, as in Backstage.
    assert catalog.service("by-selector").kubernetes_selector.value == "app=web,tier=fe"


def test_a_bad_github_owner_is_named() -> None:
    with pytest.raises(ConfigError, match="GITHUB_OWNER='acme corp' is not a GitHub"):
        ServiceCatalog.from_env({"GITHUB_OWNER": "acme corp"})


# -- errors with places ----------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("kind: Component\nmetadata:\n  name: [web\n", "c.yaml:4: not valid YAML"),
    ("apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  title: Web\n",
     "c.yaml:2: a Component without metadata.name"),
    ("apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: web shop\n",
     "c.yaml:4: metadata.name 'web shop' is not a Backstage entity name"),
    (component("web", **{"github.com/project-slug": "checkout-web"}),
     "c.yaml:6: github.com/project-slug: 'checkout-web' is not owner/repository"),
    (component("web", **{"backstage.io/kubernetes-namespace": "Shop_1"}),
     "c.yaml:6: backstage.io/kubernetes-namespace: 'Shop_1' is not a Kubernetes namespace"),
    (component("web", **{"jenkins.io/job-full-name": "dept:"}),
     "c.yaml:6: jenkins.io/job-full-name: 'dept:' is not a job's full name"),
    (component("web", **{"github.com/project-slug": ""}),
     "c.yaml:6: github.com/project-slug is empty"),
    (component("web") + "  annotations: [github.com/project-slug]\n",
     "c.yaml:5: metadata.annotations is not a mapping"),
])
def test_each_problem_names_its_file_and_line(tmp_path: Path, text: str, expected: str) -> None:
    said = problems(write(tmp_path / "c.yaml", text))
    assert f"{tmp_path / expected}" in said
    assert "unset OPSBOT_CATALOG to go by the naming conventions" in said


def test_duplicate_names_across_files_are_refused(tmp_path: Path) -> None:
    write(tmp_path / "a" / "catalog-info.yaml", component("checkout"))
    write(tmp_path / "b" / "catalog-info.yaml", component("Checkout"))
    said = problems(tmp_path)
    assert (f"{tmp_path}/b/catalog-info.yaml:4: a second Component named 'Checkout' (the first "
            f"is at {tmp_path}/a/catalog-info.yaml:4)") in said


def test_every_problem_is_listed_at_once(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", component("web", **{"github.com/project-slug": "x"}))
    write(tmp_path / "b.yaml", "kind: [\n")
    said = problems(tmp_path)
    assert "has 2 problems" in said and "a.yaml:6" in said and "b.yaml:2" in said


def test_a_missing_path_an_empty_folder_and_bad_bytes_are_refused(tmp_path: Path) -> None:
    assert "no such file or folder" in problems(tmp_path / "nope.yaml")
    (tmp_path / "empty").mkdir()
    assert "holds no .yaml or .yml file" in problems(tmp_path / "empty")
    (tmp_path / "latin.yaml").write_bytes(b"name: caf\xe9\n")
    assert f"{tmp_path}/latin.yaml: not UTF-8 text" in problems(tmp_path / "latin.yaml")


def test_an_unreadable_file_is_named_with_the_fix(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path / "c.yaml", component("web"))

    def refuse(self: Path, encoding: str | None = None) -> str:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "read_text", refuse)
    said = problems(path)
    assert f"{path}: cannot be read (Permission denied). Make it readable" in said


def test_the_action_server_runtime_stops_on_a_bad_catalog(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "c.yaml", component("web", **{"github.com/project-slug": "web"}))
    monkeypatch.setenv("OPSBOT_CATALOG", str(tmp_path / "c.yaml"))
    with pytest.raises(CatalogError, match="c.yaml:6"):
        _runtime.Runtime.from_env()


# -- Jenkins and names ---------------------------------------------------------------------------


@pytest.fixture
def with_jenkins(tmp_path: Path) -> ServiceCatalog:
    """checkout names its own jobs; payments and legacy go by the naming convention."""
    catalog = ServiceCatalog(read_catalog(write(tmp_path / "c.yaml", CHECKOUT)))
    jobs = [job("shop/build-checkout"), job("shop/release-checkout", "VERSION", "ENVIRONMENT"),
            job("checkout-ci"), job("payments-ci"), job("deploy-payments"), job("legacy-ci")]
    return catalog.with_jenkins(Catalog(jobs, catalog.job_claims()))


def test_a_job_the_catalog_names_belongs_to_its_service(with_jenkins: ServiceCatalog) -> None:
    jenkins = with_jenkins.jenkins
    assert jenkins is not None
    # It deploys when it takes an environment, and builds otherwise; the catalog's
    # job wins the role over the conventional checkout-ci.
    assert jenkins.deploy_job("checkout") == "shop/release-checkout"
    assert jenkins.ci_job("checkout") == "shop/build-checkout"
    assert jenkins.deploy_job("payments") == "deploy-payments"
    jobs = with_jenkins.service("checkout").jenkins_jobs
    assert [(j.full_name, j.role, j.listed) for j in jobs] == [
        ("shop/build-checkout", "ci", True), ("shop/release-checkout", "deploy", True)]
    assert jobs[0].origin.endswith("c.yaml:8 (jenkins.io/job-full-name)")
    payments = with_jenkins.service("payments").jenkins_jobs
    assert [(j.full_name, j.origin) for j in payments] == [
        ("payments-ci", "Jenkins job list (<service>-ci)"),
        ("deploy-payments", "Jenkins job list (deploy-<service>)")]


def test_a_job_claimed_away_from_its_conventional_service(tmp_path: Path) -> None:
    catalog = ServiceCatalog(read_catalog(write(
        tmp_path / "c.yaml", component("storefront", **{"jenkins.io/job-full-name":
                                                        "prod:checkout-ci, shop/gone"}))))
    jenkins = Catalog([job("checkout-ci")], catalog.job_claims())
    assert jenkins.services == {"storefront": {"ci": "checkout-ci"}}
    jobs = catalog.with_jenkins(jenkins).service("storefront").jenkins_jobs
    assert [(j.instance, j.full_name, j.listed) for j in jobs] == [
        ("prod", "checkout-ci", True), (None, "shop/gone", False)]
    # Without Jenkins, the catalog's jobs are listed as named, not looked up.
    assert [j.listed for j in catalog.service("storefront").jenkins_jobs] == [None, None]


def test_services_are_the_union_of_the_catalog_and_jenkins(with_jenkins: ServiceCatalog) -> None:
    assert with_jenkins.names() == ["checkout", "legacy", "payments"]
    assert with_jenkins.service("legacy").origin == "Jenkins job list"


@pytest.mark.parametrize("said, expected, exact", [
    ("checkout", "checkout", True),
    ("the checkout service", "checkout", True),
    ("chekout", "checkout", False),
    ("checkout-web", "checkout", True),  # its repository's name
    ("Checkout web", "checkout", True),  # its title
    ("legcy", "legacy", False),  # known from Jenkins only
])
def test_names_resolve_over_every_service(with_jenkins: ServiceCatalog, said: str,
                                          expected: str, exact: bool) -> None:
    found = with_jenkins.resolve(said)
    assert (found.match, found.exact) == (expected, exact)


def test_an_ambiguous_name_is_not_guessed(tmp_path: Path) -> None:
    catalog = ServiceCatalog(read_catalog(write(tmp_path / "c.yaml", component("payments-web"))))
    catalog = catalog.with_jenkins(Catalog([job("payments-api-ci")]))
    found = catalog.resolve("payments")
    assert found.ambiguous and set(found.candidates) == {"payments-api", "payments-web"}
    assert catalog.resolve("warpdrive").match is None


# -- opsbot catalog ------------------------------------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    for variable in ("OPSBOT_CATALOG", "GITHUB_OWNER", "JENKINS_URL", "JENKINS_USER",
                     "JENKINS_TOKEN"):
        monkeypatch.delenv(variable, raising=False)
    yield monkeypatch


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(["catalog", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_opsbot_catalog_shows_checkouts_repository(clean_env: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    clean_env.setenv("OPSBOT_CATALOG", str(DEMO))
    code, out, _ = run(capsys)
    assert code == 0
    assert f"Service catalog: 7 services from {DEMO}" in out
    assert "Jenkins: not configured: set JENKINS_URL" in out
    block = out.split("\ncheckout ")[1].split("\n\n")[0]
    assert "repository acme/checkout-web" in block
    assert f"{DEMO}:22 (github.com/project-slug)" in block
    code, out, _ = run(capsys, "--json")
    checkout = next(s for s in json.loads(out)["services"] if s["name"] == "checkout")
    assert checkout["repository"] == {
        "value": "acme/checkout-web", "owner": "acme", "name": "checkout-web",
        "origin": f"{DEMO}:22 (github.com/project-slug)"}
    assert checkout["kubernetes_selector"]["value"] == "app.kubernetes.io/name=checkout"


def test_opsbot_catalog_adds_jenkins_services(clean_env: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    from simulators.jenkins import JenkinsSimulator

    jenkins = JenkinsSimulator()
    jenkins.start()
    try:
        for variable, value in {**jenkins.env(), "OPSBOT_CATALOG": str(DEMO),
                                "GITHUB_OWNER": "acme"}.items():
            clean_env.setenv(variable, value)
        code, out, _ = run(capsys, "--json")
    finally:
        jenkins.stop()
    found = json.loads(out)
    assert code == 0 and found["jenkins"]["state"] == "connected"
    services = {s["name"]: s for s in found["services"]}
    legacy = services["legacy-monolith"]  # a service only because Jenkins has its job
    assert legacy["origin"] == "Jenkins job list"
    assert legacy["repository"]["value"] == "acme/legacy-monolith"
    assert legacy["repository"]["origin"].startswith("convention: GITHUB_OWNER/<service>")
    assert [(j["job"], j["role"]) for j in services["checkout"]["jenkins_jobs"]] == [
        ("checkout-ci", "ci"), ("deploy-checkout", "deploy")]
    assert services["checkout"]["jenkins_jobs"][0]["origin"].endswith("(jenkins.io/job-full-name)")


def test_opsbot_catalog_goes_on_without_jenkins(clean_env: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    clean_env.setenv("JENKINS_URL", f"http://127.0.0.1:{free_port()}")
    clean_env.setenv("JENKINS_USER", "opsbot")
    clean_env.setenv("JENKINS_TOKEN", "secret-token")
    code, out, _ = run(capsys)
    assert code == 0
    assert "Jenkins: not reached:" in out and "Its jobs are left out." in out
    assert "Service catalog: none (OPSBOT_CATALOG is unset)" in out
    assert "secret-token" not in out


def test_opsbot_catalog_exits_1_on_a_bad_catalog(clean_env: pytest.MonkeyPatch, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path / "c.yaml", component("web", **{"github.com/project-slug": "web"}))
    clean_env.setenv("OPSBOT_CATALOG", str(path))
    code, out, err = run(capsys)
    assert code == 1 and not out
    assert f"opsbot catalog: OPSBOT_CATALOG={path}: the service catalog has 1 problem" in err
    assert f"{path}:6: github.com/project-slug: 'web' is not owner/repository" in err


def test_the_demo_uses_its_catalog_unless_one_is_set(clean_env: pytest.MonkeyPatch) -> None:
    assert cli._demo_catalog_env() == {"OPSBOT_CATALOG": str(DEMO)}
    clean_env.setenv("OPSBOT_CATALOG", "/srv/catalog")
    assert cli._demo_catalog_env() == {}


def test_the_jenkins_intents_find_jobs_through_the_catalog(tmp_path: Path) -> None:
    """'storefront' is no Jenkins job name; its Component names checkout's jobs."""
    from actions.backends import JENKINS, Backends
    from actions.backends.jenkins import JenkinsBackend, JenkinsConfig
    from actions.guard import OperationStore, Policy
    from actions.requests import OpsRequest
    from actions.turn import Turn, Who
    from simulators.jenkins import JenkinsSimulator
    from tests.conftest import handle

    path = write(tmp_path / "c.yaml", component(
        "storefront", **{"jenkins.io/job-full-name": "checkout-ci,deploy-checkout"}))
    with JenkinsSimulator() as sim:
        rt = _runtime.Runtime(
            backends=Backends.of((JENKINS, JenkinsBackend(JenkinsConfig(
                sim.url, sim.user, sim.token, timeout=10)))),
            services=ServiceCatalog(read_catalog(path)),
            store=OperationStore(f"sqlite:///{tmp_path / 'o.db'}"),
            policy=Policy.load(ROOT / "policy.yml"), rasa_url="http://127.0.0.1:9")
        said = {}
        try:
            for intent, text in (("build_status", "is the storefront build green?"),
                                 ("deploy_history", "what version of storefront is live?")):
                turn = Turn(OpsRequest(intent, text, 0.99, {"service": "storefront"}),
                            Who("rest", "alice", "alice", "alice"), rt)
                handle(intent, turn)
                said[intent] = "\n".join(r.get("text") or "" for r in turn.replies)
        finally:
            rt.store.close()
    assert said["build_status"].startswith("checkout-ci #")
    assert said["deploy_history"].startswith("storefront:")
    assert "deploy-checkout #" in said["deploy_history"]
