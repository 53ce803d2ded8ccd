"""The ``images-api`` command: serve, users and their tokens, the schema, export and import (README: Users and tokens).

The ``user`` group, ``export`` and ``import`` run in an app context: the
standalone ``images-api`` command builds one from ``--database``; a host
app's ``flask user ...`` uses the host's. The ``db`` group opens the database
alone, so that it can report on a schema the app would upgrade or refuse.
"""

import os

import click
from flask.cli import AppGroup, ScriptInfo, with_appcontext
from peewee import PeeweeException
from playhouse.pool import MaxConnectionsExceeded

from . import failures, opening, schema, serve, settings, transfer
from .auth import POLICIES, USER_NAME, add_user, check_policies, hash_token, new_token
from .db import database
from .models import User
from .settings import SettingError
from .state import current_api

STANDALONE = "images_api.standalone"


class CommandError(click.ClickException):
    """A one-line error and exit status 2 (README: Users and tokens)."""

    exit_code = 2


def use_database(ctx, param, value):
    """``--database`` callback: remember the URL for the standalone app to open."""
    if value is None:
        return
    info = ctx.ensure_object(ScriptInfo)
    if not info.data.get(STANDALONE):
        raise CommandError("--database is for the images-api command; set IMAGES_API_DATABASE_URL in the app's config")
    info.data["database_url"] = value


database_option = click.option(
    "--database",
    metavar="URL",
    expose_value=False,
    is_eager=True,
    callback=use_database,
    help="Database URL (default: IMAGES_API_DATABASE_URL, else sqlite:///images.db).",
)


def user_command(name, **kwargs):
    """A command of the ``user`` group that takes ``--database URL``."""

    def decorator(function):
        return user_cli.command(name, **kwargs)(database_option(function))

    return decorator


def get_user(name):
    """The ``User`` named ``name``; ``CommandError`` when there is none."""
    user = User.get_or_none(User.name == name) if USER_NAME.fullmatch(name) else None
    if user is None:
        raise CommandError(f"no user {name!r}")
    return user


def policies_or_error(policies):
    try:
        return check_policies(policies)
    except ValueError as error:
        raise CommandError(str(error)) from None


user_cli = AppGroup("user", help="Manage API users, their policies and tokens.")


@user_command("add")
@click.argument("name")
@click.option("--policy", "policies", multiple=True, metavar="POLICY", help=f"Grant a policy ({', '.join(POLICIES)}); repeatable.")
@click.option("--all-policies", is_flag=True, help="Grant every policy.")
def add_command(name, policies, all_policies):
    """Create user NAME and print its token (shown only this once)."""
    if not USER_NAME.fullmatch(name):
        raise CommandError("a user name is 1-64 characters, without spaces, control characters or ':'")
    policies = POLICIES if all_policies else policies_or_error(policies)
    try:
        token = add_user(name, policies)
    except ValueError as error:
        raise CommandError(str(error)) from None
    click.echo(token)
    if not policies:
        click.echo(f"User {name!r} has no policies: its token is accepted but allows nothing; grant some with 'user set-policies'.", err=True)


@user_command("list")
def list_command():
    """List users, one per line: NAME, a tab, its policies."""
    for user in User.select().order_by(User.name):
        click.echo(f"{user.name}\t{','.join(sorted(user.policy_set))}")


@user_command("remove")
@click.argument("name")
def remove_command(name):
    """Remove user NAME; its token stops working at once."""
    with database.atomic():
        get_user(name).delete_instance()
    click.echo(f"Removed user {name!r}.", err=True)


@user_command("reset-token")
@click.argument("name")
def reset_token_command(name):
    """Give user NAME a new token and print it; the old one stops working at once."""
    token = new_token()
    with database.atomic():
        user = get_user(name)
        user.token_hash = hash_token(token)
        user.save()
    click.echo(token)


@user_command("set-policies")
@click.argument("name")
@click.argument("policies", nargs=-1)
def set_policies_command(name, policies):
    """Replace user NAME's policies with POLICIES (none at all revokes every one)."""
    policies = policies_or_error(policies)
    with database.atomic():
        user = get_user(name)
        user.policies = " ".join(policies)
        user.save()
    click.echo(f"User {name!r} now has: {', '.join(policies) or 'no policies'}.", err=True)


def standalone_app():
    """The app ``images-api`` commands run in: ``--database``, else the environment."""
    from . import COMMAND, create_app  # here, not at the top: the package imports this module

    info = click.get_current_context().find_object(ScriptInfo)
    config = {"IMAGES_API_CREATE_ADMIN": False, COMMAND: True}
    if info.data.get("database_url"):
        config["IMAGES_API_DATABASE_URL"] = info.data["database_url"]
    try:
        return create_app(config)
    except SettingError as error:
        raise CommandError(str(error)) from None


def command_url():
    """The database URL an ``images-api`` command uses: ``--database``, else the environment, else the default."""
    info = click.get_current_context().find_object(ScriptInfo)
    config = settings.from_environ(os.environ)
    if info.data.get("database_url"):
        config["IMAGES_API_DATABASE_URL"] = info.data["database_url"]
    try:
        return settings.read(config).database_url
    except SettingError as error:
        raise CommandError(str(error)) from None


class Commands(click.Group):
    """The ``images-api`` group: a database or file that fails a command is one line and exit status 2."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (PeeweeException, MaxConnectionsExceeded) as error:
            failure = failures.failure(error)
            reason = failure.description if failure else " ".join(str(error).split())
            raise CommandError(f"the database failed: {reason}") from None
        except OSError as error:  # a full disk under export's output, say
            raise CommandError(str(error)) from None


@click.group(cls=Commands, help="Serve and manage the images-api service.")
@click.version_option(package_name="images-api", message="images-api %(version)s")
@click.pass_context
def main(ctx):
    ctx.obj = ScriptInfo(create_app=standalone_app, set_debug_flag=False)
    ctx.obj.data[STANDALONE] = True


main.add_command(user_cli)
main.add_command(serve.main)


@main.group("db")
def db_cli():
    """See and upgrade the database's schema (README: Upgrading)."""


def schema_command(name):
    """A command of the ``db`` group: it gets the database, open, and its URL; start-up errors are one line."""

    def decorator(function):
        @database_option
        def command():
            url = command_url()
            try:
                database = opening.open_database(url, 1)
                with opening.start_errors(database, url), database.connection_context():
                    function(database)
            except (SettingError, ValueError, schema.SchemaError) as error:
                raise CommandError(str(error)) from None

        command.__doc__ = function.__doc__
        return db_cli.command(name)(command)

    return decorator


@schema_command("status")
def status_command(database):
    """Print the schema's version and the migrations applied and pending."""
    applied, pending, unknown = schema.status(database)
    version = applied[-1] if applied else "none (no migration recorded: a new database, or one made by images-api 3.0.0)"
    click.echo(f"version: {version}; {len(pending)} pending" + (f"; {len(unknown)} unknown to this images-api" if unknown else ""))
    for state, names in (("applied", applied), ("pending", pending), ("unknown", unknown)):
        for name in names:
            click.echo(f"{state}\t{name}")


@schema_command("upgrade")
def upgrade_command(database):
    """Apply the pending migrations, once, even with instances starting at the same time."""
    applied = schema.upgrade(database)
    for name in applied:
        click.echo(f"applied\t{name}")
    click.echo(f"The schema is up to date ({len(applied)} applied now).", err=True)


@main.command("export")
@click.option("--output", type=click.File("w", encoding="utf-8", atomic=True), default="-", help="File to write (default: standard output).")
@database_option
@with_appcontext
def export_command(output):
    """Write every image and user (token hashes, never tokens) as JSON Lines."""
    images, users = transfer.export(output)
    click.echo(f"Exported {images} images and {users} users.", err=True)


@main.command("import")
@click.argument("file", type=click.File("r", encoding="utf-8"))
@click.option("--replace", is_flag=True, help="Replace the database's images and users (default: it must have none).")
@database_option
@with_appcontext
def import_command(file, replace):
    """Load an export into the database in one transaction: every record, or none."""
    try:
        images, users = transfer.load(file, current_api.image_schema, replace)
    except transfer.TransferError as error:
        raise CommandError(f"{file.name}: {error}; nothing was imported") from None
    except UnicodeDecodeError:
        raise CommandError(f"{file.name}: not UTF-8; nothing was imported") from None
    click.echo(f"Imported {images} images and {users} users.", err=True)
