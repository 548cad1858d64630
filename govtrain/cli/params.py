"""The CONFIG argument every command shares: a file, or the name of a packaged config.

`govtrain run quickstart` and `govtrain explore smoke` work from any directory after
`pip install`, because the configs ship inside the package; a file that exists wins
over a packaged name, so a local `quickstart` file is never shadowed (and a path that
exists but is not a file is an error, never a packaged config).
"""

from __future__ import annotations

from pathlib import Path

import click

from govtrain.resources import packaged_configs


class ConfigFile(click.ParamType):
    name = "config"

    def convert(self, value, param, ctx) -> Path:
        path = Path(value)
        if path.is_file():
            return path
        if path.exists():  # a directory or a device the user named: never a packaged config
            self.fail(f"{value!r} is not a file", param, ctx)
        packaged = packaged_configs()
        name = path.name.removesuffix(".yaml")
        if str(path) in (name, f"{name}.yaml") and name in packaged:
            return packaged[name]
        self.fail(
            f"{value!r}: no such file, and no packaged config of that name "
            f"(packaged: {', '.join(packaged)}; `govtrain configs` lists them)",
            param,
            ctx,
        )


CONFIG = ConfigFile()


class ConfigOrOverride(click.ParamType):
    """`govtrain run`'s optional first argument: a config, or already an override of
    the default config (`govtrain run train.lr=1e-3`), kept as the string."""

    name = "config"

    def convert(self, value, param, ctx) -> Path | str:
        if isinstance(value, str) and "=" in value and not Path(value).exists():
            return value
        return CONFIG.convert(value, param, ctx)


CONFIG_OR_OVERRIDE = ConfigOrOverride()
