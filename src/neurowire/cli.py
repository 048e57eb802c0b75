"""The ``neurowire`` command: dispatches to the experiments."""

from __future__ import annotations

import sys

COMMANDS = {
    "classify": (
        "neurowire.experiments.classify",
        "sparse e-prop classifiers rewired by DEEP R (the main job)",
    ),
    "topomap": ("neurowire.experiments.topomap", "topographic map formation by STDP and rewiring"),
    "msp": (
        "neurowire.experiments.msp",
        "NEST's structural plasticity example (homeostatic rewiring), optionally lesioned",
    ),
}


def version() -> str:
    """The installed distribution's version, else ``neurowire.__version__``."""
    from importlib import metadata

    try:
        return metadata.version("neurowire")
    except metadata.PackageNotFoundError:
        import neurowire

        return str(getattr(neurowire, "__version__", "unknown"))


def help_text() -> str:
    lines = [f"  {name:10s} {help_}" for name, (_, help_) in COMMANDS.items()]
    return (
        "usage: neurowire <command> [options]\n"
        "       neurowire -h | --help | --version\n\n"
        "commands:\n" + "\n".join(lines) + "\n\n"
        "options:\n"
        "  -h, --help  show this help and exit\n"
        "  --version   show the version and exit\n\n"
        "'neurowire <command> --help' lists a command's options."
    )


def main(argv: list[str] | None = None) -> int:
    """Run ``neurowire <command> [options]``; returns the exit status.

    No arguments: the help on stderr, status 2. ``-h``/``--help``: the help, status 0.
    ``--version``: ``neurowire <version>``, status 0. An unknown command or option: one line on
    stderr, status 2. A command's own errors exit through ``SystemExit`` (status 2).
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:
        print(help_text(), file=sys.stderr)
        return 2
    first = argv[0]
    if first in ("-h", "--help"):
        print(help_text())
        return 0
    if first == "--version":
        print(f"neurowire {version()}")
        return 0
    if first not in COMMANDS:
        what = "option" if first.startswith("-") else "command"
        print(
            f"neurowire: error: unknown {what} {first!r} (commands: {', '.join(COMMANDS)}; "
            "see 'neurowire --help')",
            file=sys.stderr,
        )
        return 2
    import importlib

    importlib.import_module(COMMANDS[first][0]).main(argv[1:])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
