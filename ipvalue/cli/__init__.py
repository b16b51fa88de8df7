"""``ipvalue`` command line: one module per command (``add_parser`` + ``run``), each a thin call of
one library function. Failures map to the exit codes of :mod:`ipvalue.cli.exitcodes` with one line
saying what to fix; only a bug exits 70 (with the traceback under ``-v``).

The parser is built from the standard library alone: a command module imports the library (pandas,
scikit-learn, MLflow, ...) inside its ``run``, so ``ipvalue --help``, ``ipvalue --version`` and a
usage error answer at once, and a command loads only what it uses.
"""

from __future__ import annotations

import argparse
import atexit
import logging
import os
import sys

from ipvalue.cli import audit, calibrate, contract, demo, govern, pool, review, score, serve, train, users, validate, value
from ipvalue.cli.exitcodes import EXIT_CONFIG, EXIT_INPUT, EXIT_INTERNAL, EXIT_OK, EXIT_USAGE
from ipvalue.temporary import remove_temporary_files_on_sigterm

COMMANDS = (contract, validate, train, value, review, score, pool, govern, demo, serve, users, audit, calibrate)

logger = logging.getLogger("ipvalue.cli")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ipvalue", description="Patent valuation for IP-pledge lending (知识产权质押 internal valuation).")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-v info, -vv debug)")
    parser.add_argument("--version", action="store_true", help="print the ipvalue version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.version:
        from ipvalue import __version__

        print(__version__)
        return EXIT_OK
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    remove_temporary_files_on_sigterm()
    # MLflow draws a "Downloading artifacts" bar on stderr whenever it fetches a model or a file;
    # ipvalue's commands show their own progress, so it is off unless the user asks for it.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # the command imports the library anyway; importing its exceptions earlier would slow --help
    from ipvalue.exceptions import AssumptionError, AuditStoreError, InputError, SpecError

    try:
        return args.func(args)
    except (FileNotFoundError, IsADirectoryError, InputError, AuditStoreError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except (SpecError, AssumptionError) as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except OSError as exc:  # a read-only output folder, a full disk: the user's environment, not a bug
        print(f"error: {exc.strerror or exc} ({exc.filename or 'a file'}). Fix: check that the folder exists, is writable and has space.", file=sys.stderr)
        return EXIT_INPUT
    except Exception as exc:
        logger.exception("internal error")
        print(f"internal error (a bug in ipvalue): {type(exc).__name__}: {exc}. Please report it with the traceback above.", file=sys.stderr)
        return EXIT_INTERNAL


def run() -> None:
    """The ``ipvalue`` console script: :func:`main`, then the process ends without tearing down
    the interpreter.

    Python's own shutdown frees every imported module one by one: about 0.4 s once a command has
    imported pandas, scikit-learn, SciPy, LightGBM and matplotlib, for memory the system takes
    back anyway. So once :func:`main` has returned, the exit handlers run as usual (those of the
    libraries the command imported first, this one last: it is registered before any of them),
    standard output and error are flushed and the process exits with main's code. An exception
    that escapes :func:`main` (Ctrl-C) takes Python's usual way out.
    """
    returned: list[int] = []

    def leave() -> None:
        if not returned:
            return
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):  # a closed pipe (`ipvalue ... | head`): nothing more to write
                pass
        os._exit(returned[0])

    atexit.register(leave)
    code = main()
    returned.append(code or EXIT_OK)
    sys.exit(returned[0])


if __name__ == "__main__":
    run()
