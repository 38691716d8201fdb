"""The `adrpo` command: the engine's train/presets plus the service's serve/worker/db commands."""

from adrpo_engine.cli import app


def main() -> None:
    app()


if __name__ == "__main__":
    main()
