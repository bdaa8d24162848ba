"""``blendwise teams ...``: the app package and who has not installed the app yet.

Registered through the platform's :class:`~bot.platforms.PlatformSpec` (``cli=``), so the core CLI names no platform.
Neither command imports the SDK: both work where the ``teams`` extra is not installed.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

import typer

from bot.errors import ConfigError

_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def setup_cli(cli: Any) -> None:
    teams_app = typer.Typer(help="Microsoft Teams helpers.", no_args_is_help=True)
    cli.add_typer(teams_app, "teams")

    def section(rt: Any) -> Any:
        from bot.adapters.teams.settings import TeamsSettings

        return rt.settings.section("teams", TeamsSettings)

    @teams_app.command("manifest")
    def manifest_command(
        output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the zip.")] = Path("app.zip"),
        app_id: Annotated[str | None, typer.Option(help="The bot's Microsoft App ID (default: teams.app_id).")] = None,
        public_url: Annotated[
            str | None, typer.Option(help="The public https URL of blendwise run (default: teams.public_url).")
        ] = None,
    ) -> None:
        """Write the Teams app package (manifest.json and icons, zipped) to upload in Teams or its admin centre."""
        from bot.adapters.teams.manifest import package

        rt = cli.runtime(adapters={}, content_optional=True)
        cfg = section(rt)
        app_id = app_id or cfg.app_id
        public_url = public_url or cfg.public_url
        if not app_id or not _GUID.match(app_id):
            raise ConfigError("teams.app_id", "set TEAMS_APP_ID (or pass --app-id) to the bot's Microsoft App ID, a GUID")
        if not public_url or not public_url.startswith("https://"):
            raise ConfigError("teams.public_url", "set it (or pass --public-url) to the https URL that reaches Blendwise")
        output.write_bytes(package(app_id, public_url, rt.dispatcher.subcommands()))
        cli.out.print(f"wrote {output}: upload it in Teams (Apps → Manage your apps → Upload an app) or the admin centre")

    @teams_app.command("status")
    def status_command() -> None:
        """List enrolled learners who have not installed the app yet (Blendwise cannot message them)."""
        from bot.adapters.teams.references import References

        rt = cli.runtime(adapters={}, content_optional=True)
        refs = References(rt.factory)
        with rt.factory() as session:
            missing = refs.not_installed(session)
        if not missing:
            cli.out.print("every enrolled Teams learner has installed the app")
            return
        cli.out.print(f"{len(missing)} learner(s) have not installed the app:")
        for workspace, user_id in missing:
            cli.out.print(f"  {workspace} {user_id}", markup=False)
