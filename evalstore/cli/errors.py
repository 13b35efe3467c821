"""How the ``evalstore`` command line reports errors: one line, exit status 1.

:class:`OneLineErrors` is the CLI's top-level click group. Whatever goes wrong below it,
a usage error (unknown option, missing ``--model``, a bad value), an
:class:`~evalstore.errors.EvalstoreError`, a DuckDB error or an unreadable file, is
printed as a single ``Error: …`` line on standard error and the process exits with
status 1, with no traceback. The one longer message is for a store another process
holds (``evalstore serve``): it says what is happening and what to do instead.
"""

from __future__ import annotations

import errno
import re
import sys
from pathlib import Path
from typing import Any

import click

from evalstore.errors import EvalstoreError

#: DuckDB's message when another process holds the database file.
_LOCK_MESSAGE = re.compile(r"Could not set lock on file \"(?P<path>[^\"]*)\".*?PID (?P<pid>\d+)")
#: Options of the command line that the server's families take as query parameters.
_QUERY_OPTIONS = ("window", "version", "features", "methods", "metrics", "metric", "by")
#: Commands the server answers at GET /v1/models/{model}/{family}.
_FAMILIES = {
    "drift": "drift",
    "quality": "quality",
    "validate": "validate",
    "performance": "performance",
    "slices": "slices",
    "skew": "skew",
    "compare": "compare",
    "health": "health",
    "show": "schema",
}


class CommandError(click.ClickException):
    """An error already phrased for the command line (printed after ``Error: ``)."""

    exit_code = 1


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else repr(error)


def _process(pid: str) -> str:
    """The command line of process ``pid`` (Linux /proc), or '' when it cannot be read."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return " ".join(part.decode(errors="replace") for part in raw.split(b"\0") if part)


def _server_url(command_line: str) -> str | None:
    """The URL of ``evalstore serve`` from its command line; None if it is not one."""
    if " serve" not in f" {command_line}":
        return None
    host = re.search(r"--host[ =](\S+)", command_line)
    port = re.search(r"--port[ =](\d+)", command_line)
    address = host.group(1) if host else "127.0.0.1"
    if address in ("0.0.0.0", "::"):
        address = "127.0.0.1"
    return f"http://{address}:{port.group(1) if port else 8000}"


def _family_url(base: str, family: str, ctx: click.Context) -> str:
    """The server URL answering the same question as the command ``ctx`` runs."""
    from urllib.parse import quote, urlencode

    query = {"format": "csv"}
    for name in _QUERY_OPTIONS:
        value = ctx.params.get(name)
        if value and ctx.get_parameter_source(name) != click.core.ParameterSource.DEFAULT:
            query[name] = value
    model = ctx.params.get("model") or "MODEL"
    return f"{base}/v1/models/{quote(model)}/{family}?{urlencode(query, quote_via=quote)}"


def locked_store_message(error: BaseException, ctx: click.Context | None) -> str | None:
    """What to tell a user whose command met DuckDB's lock error; None for other errors.

    The holder's command line (from /proc) tells whether it is ``evalstore serve`` and
    on which address; the advice then names the server's URL for this very command.
    """
    from evalstore.cli.render import terminal_width, wrap_lines

    found = _LOCK_MESSAGE.search(str(error))
    if found is None:
        return None
    path, pid = found.group("path"), found.group("pid")
    url = _server_url(_process(pid))
    who = f"process {pid} (evalstore serve at {url})" if url else f"process {pid}"
    base = url or "http://127.0.0.1:8000"
    family = _FAMILIES.get(ctx.info_name or "") if ctx is not None else None
    if ctx is not None and family:
        example = f"curl -s '{_family_url(base, family, ctx)}'"
    else:
        example = (
            f"curl -s {base}/v1/sql -H 'content-type: application/json' "
            '-d \'{"sql": "SELECT * FROM evalstore.models"}\''
        )
    server = "the server" if url else "it over HTTP, if it is `evalstore serve`,"
    width = terminal_width() - len("Error: ")
    prose = [
        f"store {path!r} is in use by {who}. A DuckDB file has one owner at a time; no "
        "other process can open it, not even to read.",
        f"While it runs, ask {server} instead (metric families take the command's options "
        "as query parameters):",
    ]
    lines = [line for text in prose for line in wrap_lines(text, width)]
    lines.append(f"  {example}")
    lines.extend(
        wrap_lines("or read the BI snapshot it writes (serve --snapshot), or stop it.", width)
    )
    return "\n".join(lines)


class OneLineErrors(click.Group):
    """A click group whose every error is one ``Error: …`` line and exit status 1."""

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        """Parse the top-level options (a usage error here becomes one line too)."""
        try:
            return super().make_context(*args, **kwargs)
        except click.UsageError as error:
            raise _usage(error) from error

    def invoke(self, ctx: click.Context) -> Any:
        """Run the sub-command, translating its errors into one-line messages."""
        try:
            return super().invoke(ctx)
        except CommandError:
            raise
        except click.UsageError as error:
            raise _usage(error) from error
        except click.ClickException as error:
            raise CommandError(error.format_message()) from error
        except EvalstoreError as error:
            raise CommandError(_explain(error)) from error
        except OSError as error:
            if error.errno == errno.EPIPE:
                raise
            raise CommandError(_first_line(error)) from error
        except Exception as error:
            duckdb = sys.modules.get("duckdb")
            if duckdb is not None and isinstance(error, duckdb.Error):
                raise CommandError(_explain(error)) from error
            raise


def _explain(error: BaseException) -> str:
    locked = locked_store_message(error, click.get_current_context(silent=True))
    return locked if locked is not None else _first_line(error)


def _usage(error: click.UsageError) -> CommandError:
    """A usage error as one line: the problem, then where the command's help is."""
    message = " ".join(error.format_message().split())
    path = error.ctx.command_path if error.ctx is not None else "evalstore"
    return CommandError(f"{message} (see '{path} --help')")
