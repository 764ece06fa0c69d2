"""Each intent is declared once (``actions.registry``); the files Rasa and the policy read
must agree with those declarations. Every failure names what is missing and where."""

from __future__ import annotations

from pathlib import Path

import yaml

from actions.intents import BUILT_IN
from actions.operations import write_training_files
from actions.operations._training import ruled_intents

ROOT = Path(__file__).resolve().parent.parent
DOMAIN = yaml.safe_load((ROOT / "domain.yml").read_text(encoding="utf-8"))
DOMAIN_INTENTS = {next(iter(i)) if isinstance(i, dict) else str(i) for i in DOMAIN["intents"]}
DECLARED = {kind.intent: kind for kind in BUILT_IN}
HANDLED = {name for name, kind in DECLARED.items() if kind.handler is not None}
RULED = ruled_intents(ROOT)


def _examples() -> set[str]:
    found: set[str] = set()
    for path in (ROOT / "data" / "nlu").glob("*.yml"):
        for block in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("nlu") or []:
            if isinstance(block, dict) and block.get("intent") and block.get("examples"):
                found.add(str(block["intent"]))
    return found


def _policy_intents() -> set[str]:
    policy = yaml.safe_load((ROOT / "policy.yml").read_text(encoding="utf-8"))
    return {str(i) for rule in policy.get("rules") or [] for i in rule.get("intents") or []}


def test_every_declared_intent_is_in_domain_yml() -> None:
    missing = sorted(set(DECLARED) - DOMAIN_INTENTS)
    assert not missing, f"declared in actions/flows but not listed in domain.yml: {missing}"


def test_every_intent_in_domain_yml_is_declared_or_has_its_own_rule() -> None:
    stray = sorted(DOMAIN_INTENTS - set(DECLARED) - RULED)
    assert not stray, (f"in domain.yml with neither a declaration in actions/flows nor a rule "
                       f"in data/rules.yml, so nothing would answer them: {stray}")


def test_an_intent_without_a_handler_has_a_rule_that_answers_it() -> None:
    unanswered = sorted(set(DECLARED) - HANDLED - RULED)
    assert not unanswered, f"declared without a handler and with no rule in data/: {unanswered}"


def test_every_declared_intent_has_training_examples() -> None:
    missing = sorted(set(DECLARED) - _examples())
    assert not missing, f"no examples in data/nlu/*.yml for: {missing}"


def test_policy_yml_names_only_known_intents_and_every_one_that_needs_a_rule() -> None:
    named = _policy_intents()
    unknown = sorted(named - set(DECLARED) - DOMAIN_INTENTS)
    assert not unknown, f"policy.yml names intents opsbot does not know: {unknown}"
    ruleless = sorted(i for i in HANDLED if DECLARED[i].risk is None and i not in named)
    assert not ruleless, (f"no rule in policy.yml and no default risk in the declaration, so "
                          f"everyone is refused: {ruleless}")


def test_every_handled_intent_says_how_it_is_named() -> None:
    for name in sorted(HANDLED):
        kind = DECLARED[name]
        assert kind.title and kind.gerund and kind.describe, f"{name}: title, gerund, describe"
        assert kind.describe({}), f"{name}: describe() of an empty request says nothing"
    titles = [kind.title for kind in BUILT_IN]
    assert len(titles) == len(set(titles)), "two intents share a title: buttons would too"


def test_training_routes_each_handled_intent_that_data_does_not(tmp_path: Path) -> None:
    _, data = write_training_files(ROOT, {}, tmp_path, sorted(HANDLED))
    written = yaml.safe_load((data / "operations.yml").read_text(encoding="utf-8"))
    routed = {rule["steps"][0]["intent"] for rule in written["rules"]}
    assert routed == HANDLED - RULED
    assert all(rule["steps"][1] == {"action": "action_ops_request"} for rule in written["rules"])
    assert "create_issue" in RULED and "create_issue" not in routed  # its form's own rule
