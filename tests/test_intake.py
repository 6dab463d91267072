"""Bad input to `vetpro import`: each refusal names its field and leaves the store as it was.

The corpus is the example document broken one way at a time. Every case runs the real CLI
in-process against a store (a SQLite file, then PostgreSQL) that already holds the agency's call
and the example, and checks the one `error:` line, the exit code and every row of every table
before and after. Well-formed documents that break a programme rule are filed as drafts instead,
and `submit` names the rule. An application only names the agency's call: what else it says of
the call must agree with the call NA staff defined.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from factories import (
    CALL,
    COORDINATOR,
    STAFF,
    SUBMIT_DAY,
    advance,
    call_document,
    document,
    ensure_agency,
    example,
    snapshot,
    state_of,
)
from vetpro_workflow.cli.app import app
from vetpro_workflow.errors import TransitionRefused
from vetpro_workflow.states.eligibility import ORGANISATION_TYPES, PROFESSIONS
from vetpro_workflow.store import schema
from vetpro_workflow.store.database import Database

runner = CliRunner()
VETPRO = Path(sys.executable).parent / "vetpro"

ORG_TYPES = ", ".join(ORGANISATION_TYPES)
VET_PROFESSIONS = ", ".join(PROFESSIONS)
COUNTRIES = (
    "is not a participating country (ISO 3166 alpha-2 code of the EU, IS, LI, NO, CH, HR or TR; "
    "EL and UK accepted)"
)
OUT_OF_RANGE = "is out of range; use a date from 1990-01-01 to 2199-12-31"


@dataclass
class Store:
    """A store that holds the agency's call and the example application, and a folder."""

    db: Database
    env: dict[str, str]
    folder: Path
    example_id: int = 0

    def vetpro(self, *args: str) -> Result:
        """Run the `vetpro` command line in-process against this store."""
        return runner.invoke(app, list(args), env=self.env)

    def write(self, name: str, content: bytes | dict[str, Any]) -> Path:
        """A document file in the store's folder."""
        path = self.folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else as_file(content))
        return path

    def imported(self, name: str, content: bytes | dict[str, Any], *flags: str) -> int:
        """Import one document that must be accepted; the new application's id."""
        result = self.vetpro("import", "--json", *flags, str(self.write(name, content)))
        assert result.exit_code == 0, result.output
        assert result.stderr == ""
        return int(json.loads(result.stdout)["application"])

    def rows(self, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        with self.db.transaction(write=False) as tx:
            return tx.rows(sql, params or {})


def open_store(*, db: Database, url: str, folder: Path) -> Store:
    """`vetpro init`, the agency's staff and call, then the example imported, so no refusal
    meets an empty store."""
    store = Store(
        db=db,
        env={"VETPRO_DATABASE_URL": url, "VETPRO_TODAY": "2026-12-01"},
        folder=folder,
    )
    assert store.vetpro("init").exit_code == 0
    ensure_agency(db)
    store.example_id = store.imported("example.json", example())
    return store


@pytest.fixture
def store(db, store_url, tmp_path) -> Store:
    return open_store(db=db, url=store_url, folder=tmp_path / "documents")


# Building the corpus: the example, broken at one place.


def as_file(doc: Any) -> bytes:
    return json.dumps(doc, indent=2, ensure_ascii=False).encode()


def changed(changes: dict[str, Any]) -> bytes:
    """The example with fields set by dotted path (`mobilities.0.host`)."""
    return as_file(document(**changes))


def without(dotted: str) -> bytes:
    """The example with one field removed."""
    doc: Any = example()
    *parents, last = dotted.split(".")
    node = doc
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    del node[last]
    return as_file(doc)


def organisation(name: str, country: str, **fields: str) -> dict[str, str]:
    """A partner or applicant of the example's shape."""
    return {
        "name": name,
        "type": "vet_provider",
        "country": country,
        "contact_name": "Kim Berger",
        "contact_email": f"k.berger@{name.lower().replace(' ', '-')}.example",
        **fields,
    }


def new_applicant(name: str, country: str = "AT", **fields: str) -> dict[str, Any]:
    """The example filed by another school, with its own staff going abroad."""
    doc = document(applicant=organisation(name, country, **fields))
    for i, m in enumerate(doc["mobilities"]):
        m["participant"]["email"] = f"participant{i}@{name.lower().replace(' ', '-')}.example"
    return doc


def assert_refused(store: Store, path: Path | str, message: str, *flags: str) -> None:
    """`vetpro import path` fails with one `error:` line and every row stays as it was."""
    before = snapshot(store.db)
    result = store.vetpro("import", *flags, str(path))
    assert_one_error(result, f"{path}: {message}")
    assert snapshot(store.db) == before


def assert_one_error(result: Result, message: str) -> None:
    """Exit 1, nothing on stdout, one `error:` line on stderr starting with `message`."""
    assert isinstance(result.exception, SystemExit), result.exception  # not a crash
    assert "Traceback" not in result.output
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {message}"), lines[0]


EXAMPLE = as_file(example())

MALFORMED = [
    pytest.param(
        EXAMPLE[:200], "malformed JSON at line 6 column 23: Expecting value", id="truncated"
    ),
    pytest.param(
        EXAMPLE[:-2],
        "malformed JSON at line 72 column 4: Expecting ',' delimiter",
        id="no-closing-brace",
    ),
    pytest.param(b"[]", "an application document is a JSON object, not []", id="a-list"),
    pytest.param(
        b'"LDV-VETPRO-2027"',
        'an application document is a JSON object, not "LDV-VETPRO-2027"',
        id="a-string",
    ),
    pytest.param(b"", "is empty; an application document is a JSON object", id="empty-file"),
    pytest.param(
        b" \n\t\n", "is empty; an application document is a JSON object", id="only-whitespace"
    ),
    pytest.param(
        EXAMPLE.replace(b"Berufsbildungszentrum", b"Berufsbildungszentrum \xff"),
        "malformed JSON: not UTF-8 text (byte 339: invalid start byte)",
        id="invalid-utf8",
    ),
    pytest.param(
        EXAMPLE.replace(b'"Anna Huber"', '"Anna Hüber"'.encode("latin-1")),
        "malformed JSON: not UTF-8 text",
        id="latin1-not-utf8",
    ),
    pytest.param(
        b'{"call": ' + b"[" * 100_000,
        "malformed JSON: lists or objects nested too deep",
        id="nested-too-deep",
    ),
    pytest.param(
        EXAMPLE.replace(b'"max_project_months": 24', b'"max_project_months": ' + b"9" * 5000),
        "malformed JSON: a number is too long",
        id="number-of-5000-digits",
    ),
]


@pytest.mark.parametrize(("content", "message"), MALFORMED)
def test_a_malformed_json_document_is_refused_and_changes_nothing(store, content, message):
    assert_refused(store, store.write("bad.json", content), message)


MISSING = [
    pytest.param(without("call.code"), "call.code: is missing", id="call.code"),
    pytest.param(without("call"), "call: is missing", id="call"),
    pytest.param(
        without("applicant.contact_email"),
        "applicant.contact_email: is missing",
        id="applicant.contact_email",
    ),
    pytest.param(
        without("partners.1.country"), "partners[1].country: is missing", id="partners[1].country"
    ),
    pytest.param(
        without("project.end_date"), "project.end_date: is missing", id="project.end_date"
    ),
    pytest.param(
        without("mobilities.0.participant.profession"),
        "mobilities[0].participant.profession: is missing",
        id="mobilities[0].participant.profession",
    ),
    pytest.param(
        without("mobilities.1.language_preparation"),
        "mobilities[1].language_preparation: is missing",
        id="mobilities[1].language_preparation",
    ),
]


@pytest.mark.parametrize(("content", "message"), MISSING)
def test_a_document_missing_a_field_is_refused_naming_its_path_and_changes_nothing(
    store, content, message
):
    assert_refused(store, store.write("bad.json", content), message)


MISTYPED = [
    pytest.param(
        changed({"applicant.name": 42}), "applicant.name: must be text, not 42", id="number-as-name"
    ),
    pytest.param(
        changed({"project.title": None}), "project.title: must be text, not null", id="null-title"
    ),
    pytest.param(
        changed({"mobilities.0.language_preparation": "true"}),
        'mobilities[0].language_preparation: must be true or false, not "true"',
        id="string-as-bool",
    ),
    pytest.param(
        changed({"call.max_project_months": "24"}),
        'call.max_project_months: must be a whole number, not "24"',
        id="string-as-months",
    ),
    pytest.param(
        changed({"call.max_project_months": 24.5}),
        "call.max_project_months: must be a whole number, not 24.5",
        id="fraction-as-months",
    ),
    pytest.param(
        changed({"call.max_project_months": 0}),
        "call.max_project_months: is 0; the least allowed is 1",
        id="zero-months",
    ),
    pytest.param(
        changed({"project.start_date": 20270601}),
        "project.start_date: 20270601 is not a date; use YYYY-MM-DD",
        id="number-as-date",
    ),
    # A call is named by its code ("call": "CODE") or by an object; a number is neither.
    pytest.param(changed({"call": 2027}), "call: must be ", id="number-as-call"),
    pytest.param(changed({"call": ["LDV-VETPRO-2027"]}), "call: must be ", id="list-as-call"),
    pytest.param(changed({"call": "   "}), "call.code: must not be empty", id="blank-call-code"),
    pytest.param(
        changed({"partners": example()["partners"][0]}),
        'partners: must be a list, not {"name": "Omnia',
        id="object-as-partners",
    ),
]


@pytest.mark.parametrize(("content", "message"), MISTYPED)
def test_a_field_of_the_wrong_type_is_refused_saying_what_it_must_be_and_changes_nothing(
    store, content, message
):
    assert_refused(store, store.write("bad.json", content), message)


UNKNOWN_KEYS = [
    pytest.param(
        changed({"budget": 12000}),
        "budget: is not a field here; the fields are call, applicant, partners, project, "
        "mobilities",
        id="budget",
    ),
    pytest.param(
        changed({"applicant.website": "https://bbz-steyr.example"}),
        "applicant.website: is not a field here; the fields are name, type, country, "
        "contact_name, contact_email",
        id="applicant.website",
    ),
    pytest.param(
        changed({"mobilities.1.participant.age": 41}),
        "mobilities[1].participant.age: is not a field here; the fields are name, email, "
        "profession, professional_background, training_needs",
        id="participant.age",
    ),
    # The call's scoring is the agency's: an application cannot bring its own.
    pytest.param(
        changed({"call.evaluation": {"pass_mark": 1}}),
        "call.evaluation: is not a field here; the fields are code, title, "
        "application_deadline, earliest_start, max_project_months, min_days, max_days",
        id="call.evaluation",
    ),
]


@pytest.mark.parametrize(("content", "message"), UNKNOWN_KEYS)
def test_an_unknown_key_is_refused_naming_the_fields_allowed_there_and_changes_nothing(
    store, content, message
):
    assert_refused(store, store.write("bad.json", content), message)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(
            changed({"applicant.type": "individual"}),
            f"applicant.type: 'individual' is not an eligible organisation type; "
            f"allowed: {ORG_TYPES}",
            id="individual-applicant",
        ),
        pytest.param(
            changed({"partners.1.type": "individual"}),
            f"partners[1].type: 'individual' is not an eligible organisation type; "
            f"allowed: {ORG_TYPES}",
            id="individual-partner",
        ),
        pytest.param(
            changed({"applicant.type": "VET provider"}),
            f"applicant.type: 'VET provider' is not an eligible organisation type; "
            f"allowed: {ORG_TYPES}",
            id="type-in-words",
        ),
    ],
)
def test_an_unknown_organisation_type_is_refused_with_the_allowed_types_and_changes_nothing(
    store, content, message
):
    assert_refused(store, store.write("bad.json", content), message)


@pytest.mark.parametrize("profession", ["student", "apprentice", "Trainer"])
def test_a_participant_who_is_not_a_vet_professional_is_refused_and_changes_nothing(
    store, profession
):
    content = changed({"mobilities.0.participant.profession": profession})
    assert_refused(
        store,
        store.write("bad.json", content),
        f"mobilities[0].participant.profession: '{profession}' is not a VETPRO profession; "
        f"allowed: {VET_PROFESSIONS}",
    )


@pytest.mark.parametrize(
    ("field", "code"),
    [
        pytest.param("applicant.country", "US", id="applicant-in-US"),
        pytest.param("partners.0.country", "XX", id="partner-in-XX"),
        pytest.param("partners.1.country", "ESP", id="alpha-3-code"),
        pytest.param("partners.1.country", "", id="empty-code"),
    ],
)
def test_a_country_outside_the_programme_is_refused_and_changes_nothing(store, field, code):
    path = field.replace(".0.", "[0].").replace(".1.", "[1].")
    assert_refused(
        store,
        store.write("bad.json", changed({field: code})),
        f"{path}: '{code}' {COUNTRIES}",
    )


@pytest.mark.parametrize(
    ("field", "path", "email"),
    [
        pytest.param(
            "applicant.contact_email", "applicant.contact_email", "anna.huber", id="applicant"
        ),
        pytest.param(
            "partners.0.contact_email",
            "partners[0].contact_email",
            "mikko laine@omnia.example",
            id="partner-with-space",
        ),
        pytest.param(
            "mobilities.0.participant.email",
            "mobilities[0].participant.email",
            "markus.leitner@",
            id="participant",
        ),
    ],
)
def test_an_invalid_email_is_refused_and_changes_nothing(store, field, path, email):
    assert_refused(
        store,
        store.write("bad.json", changed({field: email})),
        f"{path}: '{email}' is not a valid email address",
    )


DATES = [
    pytest.param(
        changed({"mobilities.1.start_date": "2027-02-30"}),
        "mobilities[1].start_date: '2027-02-30' is not a valid date",
        id="30-february",
    ),
    pytest.param(
        changed({"project.start_date": "01/06/2027"}),
        'project.start_date: "01/06/2027" is not a date; use YYYY-MM-DD',
        id="day-month-year",
    ),
    pytest.param(
        changed({"call.application_deadline": "2027-02-01T12:00:00"}),
        'call.application_deadline: "2027-02-01T12:00:00" is not a date and time with its offset, '
        "e.g. 2027-02-01T12:00:00+01:00",
        id="deadline-without-offset",
    ),
    pytest.param(
        changed({"call.application_deadline": "2027-02-01"}),
        'call.application_deadline: "2027-02-01" is not a date and time with its offset',
        id="deadline-without-time",
    ),
    pytest.param(
        changed({"project.end_date": "2027-05-31"}),
        "project.end_date: 2027-05-31 is before start_date 2027-06-01",
        id="project-ends-before-it-starts",
    ),
    pytest.param(
        changed({"mobilities.1.end_date": "2027-10-03"}),
        "mobilities[1].end_date: 2027-10-03 is before start_date 2027-10-04",
        id="mobility-ends-before-it-starts",
    ),
    # Dates the programme cannot speak of (issue #7, point 8): a clear refusal, not a crash.
    pytest.param(
        changed({"call.application_deadline": "9999-12-31T23:59:59-14:00"}),
        f"call.application_deadline: '9999-12-31T23:59:59-14:00' {OUT_OF_RANGE}",
        id="deadline-offset-overflows",
    ),
    pytest.param(
        changed({"project.end_date": "9999-12-31"}),
        f"project.end_date: 9999-12-31 {OUT_OF_RANGE}",
        id="project-ends-in-9999",
    ),
    pytest.param(
        changed({"mobilities.0.start_date": "0001-01-01"}),
        f"mobilities[0].start_date: 0001-01-01 {OUT_OF_RANGE}",
        id="mobility-starts-in-year-1",
    ),
]


@pytest.mark.parametrize(("content", "message"), DATES)
def test_an_impossible_date_or_period_is_refused_and_changes_nothing(store, content, message):
    assert_refused(store, store.write("bad.json", content), message)


def _partners_twice() -> dict[str, Any]:
    doc = example()
    doc["partners"].append({**doc["partners"][0], "country": "SE"})
    return doc


def _applicant_as_partner() -> dict[str, Any]:
    doc = example()
    doc["partners"].append(doc["applicant"])
    return doc


PARTNERS = [
    pytest.param(
        changed({"mobilities.1.host": "Omnia"}),
        "mobilities[1].host: 'Omnia' is not one of the partners "
        "(Omnia Vocational College, Camara de Comercio de Valencia)",
        id="host-not-a-partner",
    ),
    pytest.param(
        as_file(_partners_twice()),
        "partners[2].name: 'Omnia Vocational College' is listed twice",
        id="partner-listed-twice",
    ),
    pytest.param(
        as_file(_applicant_as_partner()),
        "partners[2].name: the applicant cannot be its own partner",
        id="applicant-as-its-own-partner",
    ),
]


@pytest.mark.parametrize(("content", "message"), PARTNERS)
def test_partners_and_hosts_that_do_not_fit_together_are_refused_and_change_nothing(
    store, content, message
):
    assert_refused(store, store.write("bad.json", content), message)


def _padded_to(size: int) -> bytes:
    return EXAMPLE + b" " * (size - len(EXAMPLE))


SIZES = [
    pytest.param(
        changed({"mobilities": example()["mobilities"][:1] * 501}),
        "mobilities: has 501 entries; at most 500 are allowed",
        id="501-mobilities",
    ),
    pytest.param(
        changed({"partners": [organisation(f"Partner {i}", "FI") for i in range(51)]}),
        "partners: has 51 entries; at most 50 are allowed",
        id="51-partners",
    ),
    pytest.param(
        changed({"project.objectives": "x" * 6000}),
        "project.objectives: is 6000 characters long; at most 5000 are allowed",
        id="6000-character-objectives",
    ),
    pytest.param(
        changed({"applicant.name": "Berufsbildungszentrum " * 10}),
        "applicant.name: is 219 characters long; at most 200 are allowed",
        id="219-character-name",
    ),
    pytest.param(
        _padded_to(2_000_001),
        "more than 2000000 bytes; an application document has at most that",
        id="file-over-2-MB",
    ),
    pytest.param(
        changed({"partners": []}), "partners: has 0 entries; at least 1 needed", id="no-partners"
    ),
    pytest.param(
        changed({"mobilities": []}),
        "mobilities: has 0 entries; at least 1 needed",
        id="no-mobilities",
    ),
    pytest.param(
        changed({"applicant.name": "   "}), "applicant.name: must not be empty", id="blank-name"
    ),
]


@pytest.mark.parametrize(("content", "message"), SIZES)
def test_an_absurdly_large_or_empty_document_is_refused_and_changes_nothing(
    store, content, message
):
    assert_refused(store, store.write("bad.json", content), message)


FORMATTING = "contains the control or formatting character"

UNSTORABLE = [
    pytest.param(
        changed({"project.title": "Welding\u0000simulators"}),
        f"project.title: {FORMATTING} U+0000",
        id="nul-character",
    ),
    pytest.param(
        EXAMPLE.replace(b"Digital welding", b"Digital \\ud800 welding"),
        f"project.title: {FORMATTING} U+D800",
        id="lone-surrogate",
    ),
    pytest.param(
        EXAMPLE.replace(b"markus.leitner@", b"markus\\u0000leitner@"),
        "mobilities[0].participant.email: 'markus\\x00leitner@bbz-steyr.example' is not a "
        "valid email address",
        id="nul-in-email",
    ),
]


@pytest.mark.parametrize(("content", "message"), UNSTORABLE)
def test_text_that_cannot_be_stored_is_refused_and_changes_nothing(store, content, message):
    assert_refused(store, store.write("bad.json", content), message)


# Bidirectional controls make a name read differently than it is ("Steyr" shown as "ryetS",
# an address that shows another domain). Refused in every name and address.
BIDI = [
    pytest.param(
        "applicant.name",
        "applicant.name",
        "Berufsbildungszentrum \u202eryetS",
        "U+202E",
        id="right-to-left-override-in-applicant",
    ),
    pytest.param(
        "partners.1.contact_name",
        "partners[1].contact_name",
        "Lucia \u2066Ferrer\u2069",
        "U+2066",
        id="isolate-in-contact-name",
    ),
    pytest.param(
        "mobilities.0.participant.name",
        "mobilities[0].participant.name",
        "Markus \u200fLeitner",
        "U+200F",
        id="right-to-left-mark-in-participant",
    ),
    pytest.param(
        "mobilities.1.host",
        "mobilities[1].host",
        "Camara de Comercio de \u202bValencia",
        "U+202B",
        id="embedding-in-host",
    ),
    pytest.param(
        "project.title",
        "project.title",
        "Digital welding \u061csimulators",
        "U+061C",
        id="arabic-letter-mark-in-title",
    ),
    pytest.param(
        "call.code",
        "call.code",
        "LDV-VETPRO-\u202e7202",
        "U+202E",
        id="override-in-call-code",
    ),
]


@pytest.mark.parametrize(("field", "path", "value", "code"), BIDI)
def test_a_bidirectional_control_in_a_name_is_refused_and_changes_nothing(
    store, field, path, value, code
):
    assert_refused(
        store,
        store.write("bad.json", changed({field: value})),
        f"{path}: {FORMATTING} {code}",
    )


@pytest.mark.parametrize(
    ("field", "path", "email"),
    [
        pytest.param(
            "applicant.contact_email",
            "applicant.contact_email",
            "anna.huber@\u202eelpmaxe.rytes-zbb",
            id="override-in-applicant-address",
        ),
        pytest.param(
            "partners.0.contact_email",
            "partners[0].contact_email",
            "mikko.laine@omnia\u200f.example",
            id="mark-in-partner-address",
        ),
        pytest.param(
            "mobilities.1.participant.email",
            "mobilities[1].participant.email",
            "sabine\u2067.gruber@bbz-steyr.example",
            id="isolate-in-participant-address",
        ),
    ],
)
def test_a_bidirectional_control_in_an_address_is_refused_without_echoing_it(
    store, field, path, email
):
    before = snapshot(store.db)
    result = store.vetpro("import", str(store.write("bad.json", changed({field: email}))))
    assert_one_error(result, f"{store.folder / 'bad.json'}: {path}: ")
    assert "is not a valid email address" in result.stderr
    # The error line shows the control escaped: it cannot turn the terminal's text around.
    assert not any(0x200E <= ord(c) <= 0x206F for c in result.stderr), ascii(result.stderr)
    assert snapshot(store.db) == before


# The call is the agency's: an application names it, and what else it says must agree.


def test_an_application_may_name_its_call_by_code_alone(store):
    doc = document(**{"call": CALL, "project.title": "Welding simulators, second round"})
    app_id = store.imported("by-code.json", doc)
    assert state_of(store.db, app_id) == "drafted"
    calls = store.rows(
        'SELECT k.code FROM application a JOIN "call" k ON k.id = a.call_id WHERE a.id = :id',
        {"id": app_id},
    )
    assert calls == [{"code": CALL}]
    assert len(store.rows('SELECT id FROM "call"')) == 1


def test_the_same_deadline_written_in_another_zone_agrees_with_the_call(store):
    doc = document(
        **{
            "call.application_deadline": "2027-02-01T11:00:00+00:00",
            "project.title": "Welding simulators, UTC edition",
        }
    )
    assert state_of(store.db, store.imported("utc.json", doc)) == "drafted"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(
            changed({"call": "LDV-VETPRO-2099"}),
            "call.code: no call 'LDV-VETPRO-2099'; NA staff add calls with 'vetpro call add FILE'",
            id="unknown-code",
        ),
        pytest.param(
            changed({"call.code": "ldv-vetpro-2027"}),
            "call.code: no call 'ldv-vetpro-2027'",
            id="code-in-lower-case",
        ),
        pytest.param(
            changed({"call": {"code": "LDV-VETPRO-2028", "max_project_months": 24}}),
            "call.code: no call 'LDV-VETPRO-2028'",
            id="unknown-code-in-object",
        ),
    ],
)
def test_an_application_naming_a_call_the_agency_has_not_defined_is_refused(
    store, content, message
):
    assert_refused(store, store.write("bad.json", content), message)


CONTRADICTIONS = [
    pytest.param(
        changed({"call.max_project_months": 36}),
        f"call.max_project_months: 36 is not what call {CALL} says (24)",
        id="max-project-months",
    ),
    pytest.param(
        changed({"call.min_days": 43, "call.max_days": 42}),
        f"call.min_days: 43 is not what call {CALL} says (7)",
        id="min-days-above-max-days",
    ),
    pytest.param(
        changed({"call.max_days": 60}),
        f"call.max_days: 60 is not what call {CALL} says (42)",
        id="max-days",
    ),
    pytest.param(
        changed({"call.earliest_start": "2027-01-01"}),
        "call.earliest_start: ",
        id="earliest-start",
    ),
    pytest.param(
        changed({"call.title": "Leonardo da Vinci, call 2027"}),
        "call.title: ",
        id="title",
    ),
    pytest.param(
        changed({"call.application_deadline": "2027-03-01T12:00:00+01:00"}),
        "call.application_deadline: 2027-03-01 12:00 Brussels time is not the deadline of "
        f"call {CALL} (2027-02-01 12:00 Brussels time)",
        id="a-later-deadline",
    ),
    pytest.param(
        changed({"call.application_deadline": "2027-02-01T12:00:00+00:00"}),
        "call.application_deadline: 2027-02-01 13:00 Brussels time is not the deadline",
        id="the-deadline-in-the-wrong-zone",
    ),
]


@pytest.mark.parametrize(("content", "message"), CONTRADICTIONS)
def test_an_application_that_contradicts_its_call_is_refused_naming_the_field(
    store, content, message
):
    assert_refused(store, store.write("bad.json", content), message)


# Duplicates: the same content filed twice for the same organisation and call.


def test_a_duplicate_document_is_refused_naming_the_case_filed_already(store):
    first = store.example_id
    # Laid out differently, naming the call by its code: still the same content.
    compact = json.dumps(document(call=CALL), separators=(",", ":")).encode()
    for name, content in (("again.json", EXAMPLE), ("compact.json", compact)):
        assert_refused(
            store,
            store.write(name, content),
            f"this document was filed already as application {first} for the same "
            "organisation and call",
        )
    assert "--allow-duplicate" in store.vetpro("import", str(store.folder / "again.json")).stderr


def test_allow_duplicate_files_the_same_document_again_as_a_new_draft(store):
    before = snapshot(store.db)
    second = store.imported("again.json", example(), "--allow-duplicate")
    assert second != store.example_id
    assert state_of(store.db, second) == "drafted"
    applications = store.rows("SELECT id, call_id, applicant_id FROM application ORDER BY id")
    assert len(applications) == 2
    assert applications[0]["call_id"] == applications[1]["call_id"]
    assert applications[0]["applicant_id"] == applications[1]["applicant_id"]
    after = snapshot(store.db)
    for table in ("call", "call_change", "organisation", "user", "participant"):
        assert after[table] == before[table], table


def test_a_changed_document_of_the_same_organisation_is_not_a_duplicate(store):
    doc = document(**{"mobilities.1.end_date": "2027-10-16"})
    assert state_of(store.db, store.imported("changed.json", doc)) == "drafted"


def test_the_same_document_for_another_call_is_not_a_duplicate(store):
    ensure_agency(
        store.db,
        call_document(
            code="LDV-VETPRO-2028",
            title="Leonardo da Vinci mobility for VET professionals, call 2028",
            application_deadline="2028-02-01T12:00:00+01:00",
        ),
    )
    app_id = store.imported("2028.json", document(call="LDV-VETPRO-2028"))
    assert state_of(store.db, app_id) == "drafted"


# Refusals that depend on what the store already holds: checked inside the one transaction.


def _clash_after_new_rows() -> dict[str, Any]:
    doc = new_applicant("Neue Mittelschule Linz")
    doc["partners"][0]["country"] = "SE"  # Omnia is stored in FI: refused after Linz is written
    return doc


CLASHES = [
    pytest.param(
        changed({"partners.0.country": "DE"}),
        "partners[0].country: 'Omnia Vocational College' is already registered as vet_provider "
        "in FI, not vet_provider in DE",
        id="partner-in-another-country",
    ),
    pytest.param(
        changed({"applicant.type": "enterprise"}),
        "applicant.type: 'Berufsbildungszentrum Steyr' is already registered as vet_provider "
        "in AT, not enterprise in AT",
        id="applicant-of-another-type",
    ),
    pytest.param(
        as_file(new_applicant("HTL Linz", contact_email=COORDINATOR)),
        f"applicant.contact_email: {COORDINATOR} is registered as coordinator of another "
        "organisation",
        id="coordinator-of-another-organisation",
    ),
    pytest.param(
        changed({"applicant.contact_email": STAFF, "project.title": "Staff's own project"}),
        f"applicant.contact_email: {STAFF} is registered as NA staff",
        id="staff-as-contact",
    ),
    pytest.param(
        as_file(_clash_after_new_rows()),
        "partners[0].country: 'Omnia Vocational College' is already registered as vet_provider "
        "in FI, not vet_provider in SE",
        id="clash-after-a-new-applicant-was-written",
    ),
]


@pytest.mark.parametrize(("content", "message"), CLASHES)
def test_a_document_that_clashes_with_stored_organisations_is_refused_and_changes_nothing(
    store, content, message
):
    assert_refused(store, store.write("bad.json", content), message)


# Who may coordinate an organisation already known (issue #7, point 4): a document cannot make
# its contact a coordinator; NA staff or the organisation's coordinators add one.

DEPUTY = "deputy@bbz-steyr.example"


def _from_deputy() -> dict[str, Any]:
    return document(
        **{
            "applicant.contact_email": DEPUTY,
            "applicant.contact_name": "Franz Deputy",
            "project.title": "Welding simulators for the evening school",
        }
    )


def test_a_document_naming_a_new_coordinator_of_a_known_organisation_is_refused(store):
    path = store.write("deputy.json", _from_deputy())
    before = snapshot(store.db)
    result = store.vetpro("import", str(path))
    assert_one_error(
        result,
        f"{path}: applicant.contact_email: {DEPUTY} is not a coordinator of "
        "'Berufsbildungszentrum Steyr'; NA staff or one of its coordinators "
        f"({COORDINATOR}) can add them",
    )
    assert f"vetpro user add {DEPUTY} --role coordinator" in result.stderr
    assert snapshot(store.db) == before
    assert store.rows('SELECT id FROM "user" WHERE email = :e', {"e": DEPUTY}) == []


def test_once_added_as_coordinator_the_new_contact_may_file_for_the_organisation(store):
    added = store.vetpro(
        "user", "add", DEPUTY, "--role", "coordinator", "--org", "Berufsbildungszentrum Steyr"
    )
    assert added.exit_code == 0, added.output
    app_id = store.imported("deputy.json", _from_deputy())
    coordinators = store.rows(
        'SELECT u.email FROM application a JOIN "user" u ON u.id = a.coordinator_id '
        "WHERE a.id = :id",
        {"id": app_id},
    )
    assert coordinators == [{"email": DEPUTY}]


def test_a_new_organisation_gets_its_contact_as_first_coordinator(store):
    app_id = store.imported("linz.json", new_applicant("HTL Linz"))
    users = store.rows(
        'SELECT u.email, u.name, u.role, o.name AS organisation FROM "user" u '
        "JOIN organisation o ON o.id = u.organisation_id WHERE o.name = 'HTL Linz'"
    )
    assert users == [
        {
            "email": "k.berger@htl-linz.example",
            "name": "Kim Berger",
            "role": "coordinator",
            "organisation": "HTL Linz",
        }
    ]
    coordinator = store.rows(
        'SELECT u.email FROM application a JOIN "user" u ON u.id = a.coordinator_id '
        "WHERE a.id = :id",
        {"id": app_id},
    )
    assert coordinator == [{"email": "k.berger@htl-linz.example"}]


# Bad input on the command line itself.


def test_importing_a_file_that_does_not_exist_is_refused_and_changes_nothing(store):
    assert_refused(
        store, store.folder / "missing.json", "cannot be read (No such file or directory)"
    )


def test_importing_a_folder_without_json_documents_is_refused_and_changes_nothing(store):
    store.write("inbox/notes.txt", b"the applications come next week")
    store.write("inbox/draft.json.bak", EXAMPLE)
    before = snapshot(store.db)
    result = store.vetpro("import", str(store.folder / "inbox"))
    assert_one_error(result, f"no *.json documents in {store.folder / 'inbox'}")
    assert snapshot(store.db) == before


def _run_import_in_a_subprocess(store: Store, *paths: Path) -> subprocess.CompletedProcess:
    """`vetpro import` as a real process, killed by a generous timeout should it block."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VETPRO_", "PREFECT_"))}
    env |= store.env
    return subprocess.run(
        [str(VETPRO), "import", *map(str, paths)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=store.folder.parent,
    )


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes need POSIX")
def test_importing_a_named_pipe_is_refused_at_once_instead_of_waiting_for_a_writer(store):
    store.folder.mkdir(parents=True, exist_ok=True)
    pipe = store.folder / "pipe.json"
    os.mkfifo(pipe)
    before = snapshot(store.db)
    out = _run_import_in_a_subprocess(store, pipe)
    assert out.returncode == 1, out.stderr
    assert out.stdout == ""
    assert out.stderr.splitlines() == [
        f"error: {pipe}: is not a regular file; name a JSON document"
    ]
    assert snapshot(store.db) == before


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes need POSIX")
def test_a_named_pipe_in_a_folder_is_refused_and_the_other_documents_are_imported(store):
    inbox = store.folder / "inbox"
    store.write("inbox/a_changed.json", document(**{"project.title": "Welding, take two"}))
    os.mkfifo(inbox / "b_pipe.json")
    out = _run_import_in_a_subprocess(store, inbox)
    assert out.returncode == 1, out.stderr
    assert "imported 1 document(s), refused 1" in out.stdout
    assert f"refused {inbox / 'b_pipe.json'}: is not a regular file" in out.stdout
    assert "Traceback" not in out.stderr


def _folder_documents() -> dict[str, bytes]:
    return {
        "a_changed_example.json": changed({"project.title": "Welding simulators, phase two"}),
        "b_student.json": changed({"mobilities.1.participant.profession": "student"}),
        "c_truncated.json": EXAMPLE[:500],
        "d_htl_linz.json": as_file(new_applicant("HTL Linz")),
        "e_clash.json": as_file(_clash_after_new_rows()),
        "f_duplicate.json": json.dumps(example()).encode(),
    }


GOOD = ("a_changed_example.json", "d_htl_linz.json")


def test_importing_a_folder_imports_the_good_documents_and_lists_each_refusal(store, tmp_path):
    for name, content in _folder_documents().items():
        store.write(f"batch/{name}", content)
    store.write("batch/readme.txt", b"not a document")
    batch = store.folder / "batch"
    missing = store.folder / "late.json"

    result = store.vetpro("import", "--json", str(batch), str(missing))

    assert isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 1
    assert result.stderr == ""
    summary = json.loads(result.stdout)
    assert [i["file"] for i in summary["imported"]] == [str(batch / name) for name in GOOD]
    assert all(len(i["mobilities"]) == 2 for i in summary["imported"])
    assert summary["refused"] == [
        {
            "file": str(batch / "b_student.json"),
            "error": "mobilities[1].participant.profession: 'student' is not a VETPRO "
            f"profession; allowed: {VET_PROFESSIONS}",
        },
        {
            "file": str(batch / "c_truncated.json"),
            "error": "malformed JSON at line 18 column 14: Expecting value",
        },
        {
            "file": str(batch / "e_clash.json"),
            "error": "partners[0].country: 'Omnia Vocational College' is already registered as "
            "vet_provider in FI, not vet_provider in SE",
        },
        {
            "file": str(batch / "f_duplicate.json"),
            "error": f"this document was filed already as application {store.example_id} for "
            "the same organisation and call; amend that one, or import with --allow-duplicate",
        },
        {
            "file": str(missing),
            "error": "cannot be read (No such file or directory)",
        },
    ]
    for i in summary["imported"]:
        assert state_of(store.db, i["application"]) == "drafted"

    # The refused documents left no row: the store equals one that only saw the good ones.
    url = f"sqlite:///{tmp_path / 'only-good.db'}"
    schema.create(url)
    with Database(url) as other:
        only_good = open_store(db=other, url=url, folder=tmp_path / "only-good")
        for name in GOOD:
            only_good.write(f"batch/{name}", _folder_documents()[name])
        assert only_good.vetpro("import", str(only_good.folder / "batch")).exit_code == 0
        if store.db.dialect == "sqlite":
            # SQLite gives a rolled-back id out again, so even the ids match.
            assert snapshot(store.db) == snapshot(other)
        else:  # PostgreSQL's sequences move on: the same rows, under other ids
            assert {t: len(r) for t, r in snapshot(store.db).items()} == {
                t: len(r) for t, r in snapshot(other).items()
            }


def _dates_out_of_range() -> dict[str, bytes]:
    return {
        "a_good.json": changed({"project.title": "Welding simulators, phase two"}),
        "b_deadline_overflows.json": changed(
            {"call.application_deadline": "9999-12-31T23:59:59-14:00"}
        ),
        "c_ends_in_9999.json": changed({"project.end_date": "9999-12-31"}),
        "d_linz.json": as_file(new_applicant("HTL Linz")),
    }


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "text"])
def test_a_folder_with_dates_out_of_range_judges_every_file_on_its_own(store, as_json):
    for name, content in _dates_out_of_range().items():
        store.write(f"batch/{name}", content)
    batch = store.folder / "batch"

    result = store.vetpro("import", *(["--json"] if as_json else []), str(batch))

    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    assert result.exit_code == 1
    assert result.stderr == ""
    errors = {
        "b_deadline_overflows.json": "call.application_deadline: '9999-12-31T23:59:59-14:00' "
        + OUT_OF_RANGE,
        "c_ends_in_9999.json": "project.end_date: 9999-12-31 " + OUT_OF_RANGE,
    }
    if as_json:
        summary = json.loads(result.stdout)
        assert [i["file"] for i in summary["imported"]] == [
            str(batch / "a_good.json"),
            str(batch / "d_linz.json"),
        ]
        assert summary["refused"] == [
            {"file": str(batch / name), "error": error} for name, error in errors.items()
        ]
    else:
        lines = result.stdout.splitlines()
        assert lines[0] == "imported 2 document(s), refused 2"
        for name, error in errors.items():
            assert f"  refused {batch / name}: {error}" in lines
        assert sum(line.startswith("  ok      ") for line in lines) == 2
    assert len(store.rows("SELECT id FROM application")) == 3


# Well-formed documents are imported, even when they break a programme rule.


def test_greek_and_british_country_aliases_are_imported_as_gr_and_gb(store):
    doc = new_applicant("Hellenic VET Centre", country="el")
    doc["partners"] = [organisation("Leeds College of Building", "UK")]
    for m in doc["mobilities"]:
        m["host"] = "Leeds College of Building"
    store.imported("aliases.json", doc)
    countries = {
        r["name"]: r["country"] for r in store.rows("SELECT name, country FROM organisation")
    }
    assert countries["Hellenic VET Centre"] == "GR"
    assert countries["Leeds College of Building"] == "GB"


def _only_local_partner() -> dict[str, Any]:
    doc = example()
    doc["partners"] = [organisation("HTL Linz", "AT")]
    for m in doc["mobilities"]:
        m["host"] = "HTL Linz"
    return doc


@pytest.mark.parametrize(
    ("doc", "rule"),
    [
        pytest.param(
            document(**{"mobilities.0.end_date": "2027-09-08"}),
            "a stay of 7 to 42 days (it lasts 3, both ends counted)",
            id="a-stay-of-3-days",
        ),
        pytest.param(
            document(**{"mobilities.0.end_date": "2027-10-31"}),
            "a stay of 7 to 42 days (it lasts 56, both ends counted)",
            id="a-stay-of-8-weeks",
        ),
        pytest.param(
            _only_local_partner(),
            "needs a partner in another country than the applicant's (AT)",
            id="only-partner-in-the-applicants-country",
        ),
        pytest.param(
            document(**{"mobilities.0.objectives": ""}),
            "(Markus Leitner) needs objectives",
            id="empty-objectives",
        ),
    ],
)
def test_a_well_formed_but_ineligible_document_is_filed_as_a_draft_that_submit_refuses(
    store, doc, rule
):
    app_id = store.imported("draft.json", doc)
    assert state_of(store.db, app_id) == "drafted"
    before = snapshot(store.db)
    with pytest.raises(TransitionRefused, match=re.escape(rule)):
        advance(store.db, app_id, "submit", on=SUBMIT_DAY)
    assert snapshot(store.db) == before


def test_a_submission_after_the_call_deadline_is_refused_naming_the_deadline(store):
    with pytest.raises(
        TransitionRefused,
        match=re.escape("the call deadline (2027-02-01 12:00 Brussels time) has passed"),
    ):
        advance(store.db, store.example_id, "submit", on=date(2027, 2, 2))
    assert state_of(store.db, store.example_id) == "drafted"


def test_the_example_is_submitted_on_time(store):
    advance(store.db, store.example_id, "submit", on=SUBMIT_DAY)
    assert state_of(store.db, store.example_id) == "submitted"
