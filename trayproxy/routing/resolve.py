"""Which provider and upstream model serve a client model id. Pure functions."""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from trayproxy.config.model import MAX_MODEL_ID, Config, Provider, model_id_problem

EXACT = "exact"
PROVIDER_PREFIX = "provider-prefix"


@dataclass(frozen=True)
class Route:
    client_model: str
    provider: Provider
    upstream_model: str
    rule: str  # EXACT or PROVIDER_PREFIX
    max_output_tokens: int | None = None  # the mapping's limit: larger requests are clamped

    @property
    def rewritten(self) -> bool:
        return self.client_model != self.upstream_model


class UnknownModelError(LookupError):
    def __init__(self, model: str, suggestions: list[str], known: list[str]) -> None:
        self.model = model
        self.suggestions = suggestions
        self.known = known
        super().__init__(self.message)

    @property
    def message(self) -> str:
        text = f"The model '{self.model}' is not mapped in trayproxy's config."
        if self.suggestions:
            text += " Did you mean " + ", ".join(f"'{s}'" for s in self.suggestions) + "?"
        elif self.known:
            shown = self.known[:10]
            more = f" (and {len(self.known) - 10} more)" if len(self.known) > 10 else ""
            text += " Known ids: " + ", ".join(f"'{s}'" for s in shown) + more + "."
        else:
            text += " No models are configured yet."
        return text + " Add it under [models] in config.toml, then reload."


def _valid_rest(rest: str) -> bool:
    return model_id_problem(rest) is None and not rest.startswith("/")


def suggest(config: Config, model: str, limit: int = 3) -> list[str]:
    """The configured ids nearest to ``model``: shared suffix first, then edit similarity."""
    known = list(config.models)
    lowered = model.lower()
    tail = lowered.rsplit("/", 1)[-1]
    picks = [k for k in known if tail and k.lower().rsplit("/", 1)[-1] == tail]
    picks += [
        k for k in known if k not in picks and tail and (tail in k.lower() or k.lower() in lowered)
    ]
    lower_map = {k.lower(): k for k in known}
    for hit in difflib.get_close_matches(lowered, list(lower_map), n=limit, cutoff=0.5):
        if lower_map[hit] not in picks:
            picks.append(lower_map[hit])
    return picks[:limit]


def resolve(config: Config, model: str) -> Route:
    """Route ``model`` or raise :class:`UnknownModelError`."""
    mapping = config.models.get(model)
    if mapping is not None:
        provider = config.providers[mapping.provider]
        return Route(model, provider, mapping.model, EXACT, mapping.max_output_tokens)
    if config.routing.provider_prefix and "/" in model:
        prefix, rest = model.split("/", 1)
        provider = config.providers.get(prefix)
        if provider is not None and _valid_rest(rest):
            return Route(model, provider, rest, PROVIDER_PREFIX)
    raise UnknownModelError(model[:MAX_MODEL_ID], suggest(config, model), sorted(config.models))


def resolve_chain(config: Config, model: str) -> list[Route]:
    """The route for ``model``, then one for each of its ``fallbacks``, in order."""
    first = resolve(config, model)
    routes = [first]
    mapping = config.models.get(model)
    for fallback in mapping.fallbacks if mapping else ():
        try:
            routes.append(resolve(config, fallback))
        except UnknownModelError:
            continue  # validated at load time; a prefix route can vanish on reload
    return routes
