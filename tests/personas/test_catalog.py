"""The persona catalog: the built-in personas, operator overrides and file validation."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from parcours.domain.persona import Channel, PaymentAction, Tone
from parcours.personas.catalog import Catalog, CatalogError, builtin_catalog_dir, load_catalog

# load_catalog caches by resolved directory: every test that writes files uses its own
# tmp_path, so a cached catalog can never hide a change.


def builtin_data(key: str) -> dict[str, Any]:
    """The fields of a built-in persona as the YAML file has them."""
    data = yaml.safe_load((builtin_catalog_dir() / f"{key}.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def write_persona(directory: Path, data: dict[str, Any], *, name: str | None = None) -> Path:
    """Write a persona file named after its key (or `name`) into an operator directory."""
    path = directory / f"{name or data['key']}.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def new_persona(key: str, **changes: Any) -> dict[str, Any]:
    """A valid persona (a copy of the struggling payer) under a new key."""
    data = builtin_data("struggling")
    data.update(key=key, **changes)
    return data


def catalog_problems(directory: Path) -> tuple[str, ...]:
    with pytest.raises(CatalogError) as caught:
        load_catalog(directory)
    assert str(caught.value) == "; ".join(caught.value.problems)
    return caught.value.problems


# -- the built-in catalog --------------------------------------------------------------------


def test_builtin_catalog_has_the_occasional_and_at_least_four_more_personas() -> None:
    catalog = load_catalog()
    assert "occasional" in catalog
    assert len(catalog.keys) >= 5
    assert all(catalog[key].key == key for key in catalog.keys)


def test_only_the_occasional_is_intrum_sourced_the_others_come_from_research() -> None:
    catalog = load_catalog()
    occasional = catalog["occasional"].provenance
    assert occasional.intrum_sourced
    assert occasional.source == "intrum"
    others = [catalog[key] for key in catalog.keys if key != "occasional"]
    assert len(others) >= 4
    for persona in others:
        assert persona.provenance.intrum_sourced is False, persona.key
        assert persona.provenance.source == "research", persona.key


def test_the_occasional_is_dennis_44_as_in_the_seed() -> None:
    occasional = load_catalog()["occasional"]
    assert occasional.portrait.name == "Dennis"
    assert occasional.portrait.age == 44
    assert occasional.names.fr == "L'Occasionnel"
    assert "IT consultant" in occasional.portrait.job


def test_the_occasional_is_reached_digitally_and_never_by_letter() -> None:
    occasional = load_catalog()["occasional"]
    assert {Channel.EMAIL, Channel.SMS, Channel.CHAT} <= set(occasional.preferred_channels)
    assert Channel.LETTER in occasional.avoid_channels
    assert Channel.LETTER not in occasional.preferred_channels


def test_the_occasional_gets_a_reminder_before_due_and_an_answer_within_24_hours() -> None:
    occasional = load_catalog()["occasional"]
    assert occasional.reminder_before_due is True
    assert occasional.answer_within_hours == 24
    assert occasional.payment_actions[0] == PaymentAction.BANKING_APP
    assert occasional.tone == Tone.CONCISE
    assert occasional.can_pay == "yes"


def test_the_occasional_keeps_the_seeds_frustrations_and_needs() -> None:
    occasional = load_catalog()["occasional"]
    frustrations = " ".join(occasional.frustrations).lower()
    needs = " ".join(occasional.needs).lower()
    assert "unexpected extra fees" in frustrations
    assert "not digital" in frustrations
    assert "24 hours" in frustrations
    assert "clear invoice" in needs
    assert "reminders before the due date" in needs


def test_vulnerability_is_a_flag_not_a_persona() -> None:
    catalog = load_catalog()
    for key in catalog.keys:
        assert "vulnerab" not in key
        assert "vulnerab" not in catalog[key].names.en.lower()


# -- operator directory ----------------------------------------------------------------------


def test_an_operator_file_adds_a_persona_after_the_builtin_ones(tmp_path: Path) -> None:
    builtin = load_catalog().keys
    write_persona(tmp_path, new_persona("careful_saver", summary="Saves first, pays on time."))
    catalog = load_catalog(tmp_path)
    assert catalog.keys == (*builtin, "careful_saver")
    assert catalog["careful_saver"].summary == "Saves first, pays on time."


def test_an_operator_file_with_a_builtin_key_replaces_that_persona(tmp_path: Path) -> None:
    data = builtin_data("engaged")
    data["summary"] = "Our own reading of the engaged payer."
    write_persona(tmp_path, data)
    catalog = load_catalog(tmp_path)
    assert catalog["engaged"].summary == "Our own reading of the engaged payer."
    assert catalog.keys == load_catalog().keys
    assert load_catalog()["engaged"].summary != "Our own reading of the engaged payer."


def test_yml_files_are_read_too(tmp_path: Path) -> None:
    data = new_persona("weekend_payer")
    (tmp_path / "weekend_payer.yml").write_text(yaml.safe_dump(data), encoding="utf-8")
    assert "weekend_payer" in load_catalog(tmp_path)


def test_a_missing_operator_directory_is_an_error(tmp_path: Path) -> None:
    problems = catalog_problems(tmp_path / "nowhere")
    assert "nowhere" in problems[0]
    assert "does not exist" in problems[0]


# -- bad files -------------------------------------------------------------------------------


def _missing_tone(data: dict[str, Any]) -> None:
    del data["tone"]


def _age_as_text(data: dict[str, Any]) -> None:
    data["portrait"]["age"] = "old"


def _typo_tonee(data: dict[str, Any]) -> None:
    data["tonee"] = data.pop("tone")


def _unknown_signal_feature(data: dict[str, Any]) -> None:
    data["signals"][0]["feature"] = "shoe_size"


def _preferred_and_avoided(data: dict[str, Any]) -> None:
    data["avoid_channels"] = ["email"]


def _inconsistent_provenance(data: dict[str, Any]) -> None:
    data["provenance"]["intrum_sourced"] = True


def _two_thresholds(data: dict[str, Any]) -> None:
    data["signals"][0]["below"] = 0.9


@pytest.mark.parametrize(
    ("spoil", "expected"),
    [
        (_missing_tone, ["tone", "Field required"]),
        (_age_as_text, ["portrait.age", "integer"]),
        (_typo_tonee, ["tonee", "Extra inputs are not permitted"]),
        (_unknown_signal_feature, ["signals.0.feature", "shoe_size"]),
        (_preferred_and_avoided, ["both preferred and avoided", "email"]),
        (_inconsistent_provenance, ["provenance", "intrum_sourced"]),
        (_two_thresholds, ["signals.0", "exactly one of 'above' or 'below'"]),
    ],
    ids=[
        "missing-field",
        "wrong-type",
        "unknown-key",
        "unknown-feature",
        "channel-both",
        "provenance",
        "two-thresholds",
    ],
)
def test_an_invalid_persona_file_is_reported_with_file_and_key_path(
    tmp_path: Path, spoil: Callable[[dict[str, Any]], None], expected: list[str]
) -> None:
    data = new_persona("spoilt")
    spoil(data)
    write_persona(tmp_path, data)
    problems = catalog_problems(tmp_path)
    assert all("spoilt.yaml" in problem for problem in problems)
    joined = "\n".join(problems)
    for part in expected:
        assert part in joined


def test_invalid_yaml_is_reported_with_its_line(tmp_path: Path) -> None:
    (tmp_path / "broken.yaml").write_text("key: broken\nnames: [fr, nl\nsummary: x\n")
    (problem,) = catalog_problems(tmp_path)
    assert "broken.yaml" in problem
    assert "line 3" in problem
    assert "invalid YAML" in problem


def test_a_key_that_differs_from_the_file_name_is_refused(tmp_path: Path) -> None:
    write_persona(tmp_path, new_persona("saver"), name="savers")
    (problem,) = catalog_problems(tmp_path)
    assert "savers.yaml" in problem
    assert "'saver' must match the file name" in problem


def test_a_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    text = yaml.safe_dump(new_persona("latin"), allow_unicode=True)
    (tmp_path / "latin.yaml").write_bytes(
        text.replace("summary:", "summary: caf\xe9").encode("cp1252")
    )
    (problem,) = catalog_problems(tmp_path)
    assert "latin.yaml" in problem
    assert "not UTF-8" in problem


def test_a_file_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    (tmp_path / "listy.yaml").write_text("- key: listy\n", encoding="utf-8")
    (problem,) = catalog_problems(tmp_path)
    assert "listy.yaml" in problem
    assert "mapping" in problem


def test_every_bad_file_is_reported_at_once(tmp_path: Path) -> None:
    missing = new_persona("first_bad")
    del missing["tone"]
    write_persona(tmp_path, missing)
    write_persona(tmp_path, new_persona("second_bad"), name="not_second_bad")
    (tmp_path / "third_bad.yaml").write_text("key: [\n", encoding="utf-8")
    write_persona(tmp_path, new_persona("fine_one"))
    problems = catalog_problems(tmp_path)
    for name in ("first_bad.yaml", "not_second_bad.yaml", "third_bad.yaml"):
        assert sum(name in problem for problem in problems) == 1, name
    assert not any("fine_one" in problem for problem in problems)


def test_a_bad_replacement_of_a_builtin_persona_is_an_error_not_a_silent_fallback(
    tmp_path: Path,
) -> None:
    data = builtin_data("engaged")
    data["portrait"]["age"] = "old"
    write_persona(tmp_path, data)
    problems = catalog_problems(tmp_path)
    assert any("engaged.yaml" in p and "portrait.age" in p for p in problems)


# -- references ------------------------------------------------------------------------------


def catalog_without(key: str) -> Catalog:
    full = load_catalog()
    return Catalog({k: full[k] for k in full.keys if k != key}, full.survey)


def test_removing_a_persona_still_referred_to_is_refused_naming_holder_and_key() -> None:
    catalog = catalog_without("struggling")
    with pytest.raises(CatalogError) as caught:
        catalog.check_references(
            [
                ("the default_persona setting", ["engaged"]),
                ("12 debtors' current assignments", ["struggling", "engaged"]),
            ]
        )
    (problem,) = caught.value.problems
    assert problem.startswith("12 debtors' current assignments")
    assert "persona(s) struggling that" in problem


def test_every_broken_reference_is_reported() -> None:
    catalog = catalog_without("nonchalant")
    with pytest.raises(CatalogError) as caught:
        catalog.check_references([("journey A", ["nonchalant"]), ("journey B", ["ghost"])])
    assert len(caught.value.problems) == 2
    assert "journey A" in caught.value.problems[0]
    assert "ghost" in caught.value.problems[1]


def test_references_to_existing_personas_pass() -> None:
    catalog = load_catalog()
    catalog.check_references([("journeys", list(catalog.keys)), ("nothing", [])])


def test_a_key_given_twice_is_refused_naming_the_file_and_line(tmp_path: Path) -> None:
    text = (builtin_catalog_dir() / "engaged.yaml").read_text(encoding="utf-8")
    (tmp_path / "engaged.yaml").write_text(text + "\ntone: firm\n", encoding="utf-8")
    with pytest.raises(CatalogError, match=r"engaged\.yaml:.*line \d+.*'tone' is given twice"):
        load_catalog(tmp_path)


def test_an_edited_operator_file_is_read_again(tmp_path: Path) -> None:
    text = (builtin_catalog_dir() / "engaged.yaml").read_text(encoding="utf-8")
    path = tmp_path / "engaged.yaml"
    path.write_text(text, encoding="utf-8")
    first = load_catalog(tmp_path)["engaged"].summary
    data = yaml.safe_load(text)
    data["summary"] = "Edited by the operator."
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    assert load_catalog(tmp_path)["engaged"].summary == "Edited by the operator." != first
