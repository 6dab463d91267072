"""Bad input to `vetpro import`: each refusal names its field and leaves the store as it was.

The corpus is the example document broken one way at a time. Every case runs the real CLI
in-process against a SQLite file that already holds the example, and checks the one `error:`
line, the exit code and every row of every table before and after. Well-formed documents that
break a programme rule are filed as drafts instead, and `submit` names the rule.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlmodel import Session
from typer.testing import CliRunner, Result

from factories import SUBMIT_DAY, advance, document, example, snapshot, state_of
from vetpro_workflow.cli import app
from vetpro_workflow.db import make_engine
from vetpro_workflow.errors import TransitionRefused
from vetpro_workflow.models import Application, Call, Organisation
from vetpro_workflow.states.eligibility import ORGANISATION_TYPES, PROFESSIONS

runner = CliRunner()

ORG_TYPES = ", ".join(ORGANISATION_TYPES)
VET_PROFESSIONS = ", ".join(PROFESSIONS)
COUNTRIES = (
    "is not a participating country (ISO 3166 alpha-2 code of the EU, IS, LI, NO, CH, HR or TR; "
    "EL and UK accepted)"
)


@dataclass
class Store:
    """A SQLite file that holds the example application, and a folder for documents."""

    engine: Engine
    env: dict[str, str]
    folder: Path

    def vetpro(self, *args: str) -> Result:
        """Run the `vetpro` command line in-process against this store."""
        return runner.invoke(app, list(args), env=self.env)

    def write(self, name: str, content: bytes | dict[str, Any]) -> Path:
        """A document file in the store's folder."""
        path = self.folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else as_file(content))
        return path

    def imported(self, name: str, content: bytes | dict[str, Any]) -> int:
        """Import one document that must be accepted; the new application's id."""
        result = self.vetpro("import", "--json", str(self.write(name, content)))
        assert result.exit_code == 0, result.output
        return int(json.loads(result.stdout)["application"])


def open_store(*, engine: Engine, url: str, folder: Path) -> Store:
    """`vetpro init`, then the example imported, so no refusal meets an empty store."""
    store = Store(
        engine=engine,
        env={"VETPRO_DATABASE_URL": url, "VETPRO_TODAY": "2026-12-01"},
        folder=folder,
    )
    assert store.vetpro("init").exit_code == 0
    store.imported("example.json", example())
    return store


@pytest.fixture
def store(sqlite_engine, sqlite_url, tmp_path) -> Store:
    return open_store(engine=sqlite_engine, url=sqlite_url, folder=tmp_path / "documents")


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


def assert_refused(store: Store, path: Path | str, message: str) -> None:
    """`vetpro import path` fails with one `error:` line and every row stays as it was."""
    before = snapshot(store.engine)
    result = store.vetpro("import", str(path))
    assert_one_error(result, f"{path}: {message}")
    assert snapshot(store.engine) == before


def assert_one_error(result: Result, message: str) -> None:
    """Exit 1, nothing on stdout, one `error:` line on stderr starting with `message`."""
    assert isinstance(result.exception, SystemExit), result.exception  # not a crash
    assert "Traceback" not in result.output
    assert result.exit_code == 1
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
    pytest.param(
        changed({"call": "LDV-VETPRO-2027"}),
        'call: must be an object, not "LDV-',
        id="string-as-call",
    ),
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
        "project.start_date: '01/06/2027' is not a date; use YYYY-MM-DD",
        id="day-month-year",
    ),
    pytest.param(
        changed({"call.application_deadline": "2027-02-01T12:00:00"}),
        "call.application_deadline: '2027-02-01T12:00:00' is not a date and time with its offset, "
        "e.g. 2027-02-01T12:00:00+01:00",
        id="deadline-without-offset",
    ),
    pytest.param(
        changed({"call.application_deadline": "2027-02-01"}),
        "call.application_deadline: '2027-02-01' is not a date and time with its offset",
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


def test_a_call_whose_min_days_exceed_its_max_days_is_refused_and_changes_nothing(store):
    content = changed({"call.min_days": 43, "call.max_days": 42})
    assert_refused(
        store, store.write("bad.json", content), "call.max_days: 42 is below min_days (43)"
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(
            changed({"project.title": "Welding\u0000simulators"}),
            "project.title: contains a NUL character or an unpaired surrogate",
            id="nul-character",
        ),
        pytest.param(
            EXAMPLE.replace(b"Digital welding", b"Digital \\ud800 welding"),
            "project.title: contains a NUL character or an unpaired surrogate",
            id="lone-surrogate",
        ),
        pytest.param(
            EXAMPLE.replace(b"markus.leitner@", b"markus\\u0000leitner@"),
            "mobilities[0].participant.email: contains a NUL character or an unpaired surrogate",
            id="nul-in-email",
        ),
    ],
)
def test_text_that_cannot_be_stored_is_refused_and_changes_nothing(store, content, message):
    assert_refused(store, store.write("bad.json", content), message)


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
        as_file(new_applicant("HTL Linz", contact_email="anna.huber@bbz-steyr.example")),
        "applicant.contact_email: anna.huber@bbz-steyr.example is already registered as "
        "coordinator of another organisation",
        id="coordinator-of-another-organisation",
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


# Bad input on the command line itself.


def test_importing_a_file_that_does_not_exist_is_refused_and_changes_nothing(store):
    assert_refused(
        store, store.folder / "missing.json", "cannot be read (No such file or directory)"
    )


def test_importing_a_folder_without_json_documents_is_refused_and_changes_nothing(store):
    store.write("inbox/notes.txt", b"the applications come next week")
    store.write("inbox/draft.json.bak", EXAMPLE)
    before = snapshot(store.engine)
    result = store.vetpro("import", str(store.folder / "inbox"))
    assert_one_error(result, f"no *.json documents in {store.folder / 'inbox'}")
    assert snapshot(store.engine) == before


def _folder_documents() -> dict[str, bytes]:
    return {
        "a_example_again.json": EXAMPLE,
        "b_student.json": changed({"mobilities.1.participant.profession": "student"}),
        "c_truncated.json": EXAMPLE[:500],
        "d_htl_linz.json": as_file(new_applicant("HTL Linz")),
        "e_clash.json": as_file(_clash_after_new_rows()),
    }


GOOD = ("a_example_again.json", "d_htl_linz.json")


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
            "file": str(missing),
            "error": "cannot be read (No such file or directory)",
        },
    ]
    for i in summary["imported"]:
        assert state_of(store.engine, i["application"]) == "drafted"

    # The refused documents left no row: the store equals one that only saw the good ones
    # (SQLite gives a rolled-back id out again, so even the ids match).
    url = f"sqlite:///{tmp_path / 'only-good.db'}"
    only_good = open_store(engine=make_engine(url), url=url, folder=tmp_path / "only-good")
    try:
        for name in GOOD:
            only_good.write(f"batch/{name}", _folder_documents()[name])
        assert only_good.vetpro("import", str(only_good.folder / "batch")).exit_code == 0
        assert snapshot(store.engine) == snapshot(only_good.engine)
    finally:
        only_good.engine.dispose()


# Well-formed documents are imported, even when they break a programme rule.


def test_importing_the_example_twice_reuses_the_call_and_organisations_and_files_a_new_draft(
    store,
):
    before = snapshot(store.engine)
    second = store.imported("example-again.json", example())
    with Session(store.engine) as session:
        applications = session.execute(select(Application.id, Application.call_id)).all()
        calls = session.execute(select(func.count()).select_from(Call)).scalar_one()
        organisations = session.execute(select(func.count()).select_from(Organisation)).scalar_one()
    assert calls == 1 and organisations == 3
    assert len(applications) == 2 and applications[0].call_id == applications[1].call_id
    assert second == max(a.id for a in applications)
    assert state_of(store.engine, second) == "drafted"
    after = snapshot(store.engine)
    for table in ("call", "organisation", "user", "participant"):
        assert after[table] == before[table], table


def test_greek_and_british_country_aliases_are_imported_as_gr_and_gb(store):
    doc = new_applicant("Hellenic VET Centre", country="el")
    doc["partners"] = [organisation("Leeds College of Building", "UK")]
    for m in doc["mobilities"]:
        m["host"] = "Leeds College of Building"
    store.imported("aliases.json", doc)
    with Session(store.engine) as session:
        countries = dict(session.execute(select(Organisation.name, Organisation.country)).all())
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
            "needs a stay of 7 to 42 days (it lasts 3, both ends counted)",
            id="a-stay-of-3-days",
        ),
        pytest.param(
            document(**{"mobilities.0.end_date": "2027-10-31"}),
            "needs a stay of 7 to 42 days (it lasts 56, both ends counted)",
            id="a-stay-of-8-weeks",
        ),
        pytest.param(
            _only_local_partner(),
            "needs at least one partner in another country than the applicant's (AT)",
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
    assert state_of(store.engine, app_id) == "drafted"
    before = snapshot(store.engine)
    with pytest.raises(TransitionRefused, match=re.escape(rule)):
        advance(store.engine, app_id, "submit", on=SUBMIT_DAY)
    assert snapshot(store.engine) == before


def test_a_submission_after_the_call_deadline_is_refused_naming_the_deadline(store):
    app_id = store.imported("late.json", example())
    with pytest.raises(
        TransitionRefused, match=r"before the call deadline \(2027-02-01 12:00 Brussels time\)"
    ):
        advance(store.engine, app_id, "submit", on=date(2027, 2, 2))
    assert state_of(store.engine, app_id) == "drafted"


def test_the_example_is_submitted_on_time(store):
    app_id = store.imported("on-time.json", example())
    advance(store.engine, app_id, "submit", on=SUBMIT_DAY)
    assert state_of(store.engine, app_id) == "submitted"
