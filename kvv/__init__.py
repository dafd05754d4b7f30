"""kvv: prove that an inference provider serves an open-weight model correctly.

The library behind the `kvv` command:

    from kvv import Settings, resolve_target, plan_for, run
    settings = Settings(base_url="https://api.example.com/v1", model="kimi-k3", profile="kimi-k3")
    target = resolve_target(settings)
    results = run(settings, target, plan_for(settings, target), api_key)

Names are imported on first use, so `kvv --help` does not pay for httpx.
"""

from importlib import import_module

__version__ = "0.1.0"

_EXPORTS = {
    "Settings": "kvv.config", "load_settings": "kvv.config",
    "Profile": "kvv.profile", "load_profile": "kvv.profile",
    "Client": "kvv.client", "Exchange": "kvv.exchange",
    "resolve_target": "kvv.runner", "plan_for": "kvv.runner", "run": "kvv.runner",
    "Simulator": "kvv.simulator", "parse_faults": "kvv.simulator",
    "ConfigError": "kvv.errors",
}
__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'kvv' has no attribute {name!r}")
