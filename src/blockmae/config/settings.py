"""`train.regime_settings`: the chosen regime's settings, read into its own typed `Settings` (the regime
table declares their names, types, defaults and ranges)."""

from __future__ import annotations

import dataclasses
import difflib
import typing
from collections.abc import Mapping

from ..errors import ConfigError
from ..regimes import SETTINGS_KEY, Regime, Settings, setting_names
from .types import coerce


def regime_settings(regime: Regime, given, partition: list[int], patch: int) -> Settings:
    """`given` (a mapping, or a regime's `Settings`) as `regime`'s settings, every default filled in and checked
    against the model. Names that only other regimes declare are dropped (a study may set several regimes' settings
    across a grid of regimes); a name no regime declares is refused with the closest one."""
    if isinstance(given, Settings):
        given = dataclasses.asdict(given)
    if not isinstance(given, Mapping):
        raise ConfigError(f"{SETTINGS_KEY}: expected a mapping of the regime's settings, got {given!r}")
    own = {f.name for f in dataclasses.fields(regime.settings)}
    for name in given:
        if name not in own and name not in setting_names():
            close = difflib.get_close_matches(str(name), sorted(own or setting_names()), n=1)
            listed = ", ".join(sorted(own)) or "none"
            raise ConfigError(f"unknown regime setting '{SETTINGS_KEY}.{name}' (regime '{regime.name}' has: {listed})"
                              + (f"; did you mean '{SETTINGS_KEY}.{close[0]}'?" if close else ""))
    hints = typing.get_type_hints(regime.settings)
    settings = regime.settings(**{name: coerce(value, hints[name], f"{SETTINGS_KEY}.{name}")
                                  for name, value in given.items() if name in own})
    settings.check(partition, patch)
    return settings
