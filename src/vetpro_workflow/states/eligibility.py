"""Who may apply, who may go, and where: the programme's eligibility lists as data."""

from __future__ import annotations

ORGANISATION_TYPES: tuple[str, ...] = (
    "vet_provider",
    "enterprise",
    "chamber",
    "social_partner",
    "guidance_body",
    "public_body",
    "research_centre",
    "higher_education",
    "association",
    "ngo",
)

PROFESSIONS: tuple[str, ...] = (
    "teacher",
    "trainer",
    "vet_staff",
    "guidance_counsellor",
    "head_of_training",
    "training_planner",
    "occupational_guidance",
    "hr_manager",
)

# LLP participating countries: the 27 EU member states of 2013, IS, LI, NO, CH, HR and TR.
COUNTRIES: frozenset[str] = frozenset(
    [
        "AT",
        "BE",
        "BG",
        "CY",
        "CZ",
        "DE",
        "DK",
        "EE",
        "ES",
        "FI",
        "FR",
        "GR",
        "HU",
        "IE",
        "IT",
        "LT",
        "LU",
        "LV",
        "MT",
        "NL",
        "PL",
        "PT",
        "RO",
        "SE",
        "SI",
        "SK",
        "GB",
        "IS",
        "LI",
        "NO",
        "CH",
        "HR",
        "TR",
    ]
)
COUNTRY_ALIASES: dict[str, str] = {"EL": "GR", "UK": "GB"}


def normalise_country(code: str) -> str | None:
    """The ISO 3166 alpha-2 code of a participating country, or None if it is not one."""
    upper = code.strip().upper()
    upper = COUNTRY_ALIASES.get(upper, upper)
    return upper if upper in COUNTRIES else None
