"""config.yaml read as Nameko reads it (`${VAR:default}` resolved), for tools
that run outside `nameko run`: migrations, key generation, tests."""
import os
from typing import Any

import yaml
from nameko.cli.main import setup_yaml_parser

DEFAULT_PATH = os.path.join(os.path.dirname(__file__), "..", "..", "config.yaml")


def load_config(path: str | None = None) -> dict[str, Any]:
    setup_yaml_parser()
    with open(path or os.environ.get("LIFYTP_CONFIG", DEFAULT_PATH)) as handle:
        config: dict[str, Any] = yaml.safe_load(handle)
        return config
