"""The ``neurowire`` command: dispatches to the experiments."""

from __future__ import annotations

import sys

COMMANDS = {
    "classify": (
        "neurowire.experiments.classify",
        "sparse e-prop classifiers rewired by DEEP R (the main job)",
    ),
    "topomap": ("neurowire.experiments.topomap", "topographic map formation by STDP and rewiring"),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        lines = [f"  {name:10s} {help_}" for name, (_, help_) in COMMANDS.items()]
        print("usage: neurowire <command> [options]\n\ncommands:\n" + "\n".join(lines))
        if argv and argv[0] not in ("-h", "--help"):
            print(f"\nneurowire: unknown command {argv[0]!r}", file=sys.stderr)
            return 2
        return 0
    import importlib

    importlib.import_module(COMMANDS[argv[0]][0]).main(argv[1:])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
