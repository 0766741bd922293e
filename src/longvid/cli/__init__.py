"""The `longvid` command line: one module per command group, each parsing and printing only.
Errors from longvid become one line and a non-zero exit.

Typer (on click) is used because the commands are many and their options typed; it also
brings rich, which prints the tables.
"""

from __future__ import annotations

import importlib
import sys
import warnings

from longvid.cli.common import app
from longvid.errors import DoesNotFitError, LongvidError

# importing a command module registers its commands on ``app``; this order is --help's
COMMAND_MODULES = ("video", "models", "measure", "testbed", "encoder")
for _module in COMMAND_MODULES:
    importlib.import_module(f"longvid.cli.{_module}")

EXIT_ERROR = 2

__all__ = ["EXIT_ERROR", "app", "main"]


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"longvid: warning: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app; longvid errors become one line on stderr and exit code 2.

    Typer handles usage errors itself (message, exit code 2); anything longvid raises on
    purpose is a ``LongvidError`` and is printed here without a traceback.
    """
    warnings.showwarning = _show_warning
    try:
        app(args=argv, prog_name="longvid")
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except KeyboardInterrupt:
        print("longvid: interrupted", file=sys.stderr)
        return 130
    except LongvidError as e:
        # advice carried as data (a request that does not fit) is spelled as flags here
        print(f"longvid: error: {e.render('cli') if isinstance(e, DoesNotFitError) else e}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as e:  # a file longvid was told to write or read: the system's reason, one line
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        print(f"longvid: error: {where}{e.strerror or e}", file=sys.stderr)
        return EXIT_ERROR
    return 0


if __name__ == "__main__":
    sys.exit(main())
