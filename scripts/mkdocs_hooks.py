"""MkDocs hook (mkdocs.yml, `hooks:`): gives mkdocs-click the CLI as a click command.

transferlab's CLI is a typer app; mkdocs-click documents click commands, and `typer.main.get_command` turns
the one into the other. MkDocs loads this file under its path as module name, which `import` cannot reach,
so it is also registered as `transferlab_cli_docs` for the `:module:` line of docs/reference/cli.md.
"""

import sys

import typer

from transferlab.cli import app

cli = typer.main.get_command(app)
sys.modules["transferlab_cli_docs"] = sys.modules[__name__]
