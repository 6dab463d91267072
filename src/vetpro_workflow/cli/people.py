"""The commands on people: register them, set their password, give them an API token, or
disable them. The command line acts with the store's rights: it is how a first password is set.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from ..clock import real_now
from ..errors import InvalidInput
from ..states.addresses import normalise
from .app import emit, env, json_option, user

if TYPE_CHECKING:
    from ..store.database import Tx


@user.command("add")
@click.argument("email")
@click.option(
    "--role", required=True, type=click.Choice(["staff", "coordinator"]), help="The person's role."
)
@click.option("--org", help="A coordinator's organisation (its exact name).")
@click.option("--name", default="", help="The person's name.")
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Set (or reset) the web password, read from standard input; enables a disabled user.",
)
@json_option
def user_add(
    email: str, role: str, org: str | None, name: str, password_stdin: bool, as_json: bool
) -> None:
    """Register NA staff, or a coordinator of an organisation; with --password-stdin, set or
    reset the person's password for the web workspace.

    Example: vetpro user add deputy@school.example --role coordinator \\
             --org "Berufsbildungszentrum Steyr"
    """
    from ..store.users import add_user

    password = read_password() if password_stdin else None
    with env().transaction(write=True) as tx:
        if password is not None and registered(tx, email, role=role, organisation=org):
            data = {"email": email, "role": role, "password": "reset"}
        else:
            data = add_user(tx, email=email, role=role, organisation=org, name=name)
        if password is not None:
            set_password(tx, email, password)
    emit(as_json, data, _user_text)


def _user_text(d: dict[str, Any]) -> str:
    if d.get("password") == "reset":
        return f"password reset for {d['email']}"
    return f"registered {d['email']} as {d['role']}"


def read_password() -> str:
    """The password on standard input: its first line, without the line break."""
    if sys.stdin is None:
        raise InvalidInput("--password-stdin: give the password on standard input")
    line = sys.stdin.readline()
    password = line.rstrip("\r\n")
    if not password:
        raise InvalidInput("--password-stdin: standard input held no password")
    return password


def registered(tx: Tx, email: str, *, role: str, organisation: str | None) -> bool:
    """Whether a person is registered already, as the role (and organisation) given."""
    from ..store.users import organisation_id

    row = tx.row(
        'SELECT role, organisation_id FROM "user" WHERE email = :email', {"email": normalise(email)}
    )
    if row is None:
        return False
    if row["role"] != role:
        raise InvalidInput(f"EMAIL: {email} is registered as {row['role']}, not {role}")
    if organisation and row["organisation_id"] != organisation_id(tx, organisation):
        raise InvalidInput(f"--org: {email} is a coordinator of another organisation")
    return True


def set_password(tx: Tx, email: str, password: str) -> None:
    """Set or reset a registered person's password (used by `vetpro user add`)."""
    from ..store.auth import set_password as store_password

    store_password(tx, email, password, now=real_now())


@user.command("token")
@click.argument("email")
@json_option
def user_token(email: str, as_json: bool) -> None:
    """Print a new personal API token for a person, once (only its digest is kept).

    Example: vetpro user token officer@national-agency.example
    """
    from ..store.auth import new_token

    with env().transaction(write=True) as tx:
        token = new_token(tx, email, now=real_now())
    emit(as_json, {"email": email, "token": token}, lambda d: d["token"])


@user.command("disable")
@click.argument("email")
@json_option
def user_disable(email: str, as_json: bool) -> None:
    """Disable a person: no more sign-in; their sessions and API tokens end now.

    Example: vetpro user disable deputy@school.example
    """
    from ..store.auth import disable

    with env().transaction(write=True) as tx:
        done = disable(tx, email, now=real_now())
    emit(
        as_json,
        done,
        lambda d: (
            f"disabled {d['email']}: {d['sessions']} session(s) and {d['tokens']} token(s) ended"
        ),
    )
