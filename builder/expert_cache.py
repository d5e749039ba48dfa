"""Per-layer expert caches simulated on a routing trace: how often a token's experts are already
in a cache of `capacity` experts per layer.

Every policy sees the trace token by token: the experts a token selects in a layer are looked up
together (a hit is an expert already in the cache), then the cache is updated. Rows of -1 (a layer
that did not compute the token) are neither lookups nor updates.

- static: a fixed hot set, the `capacity` experts a profile selects most often (ties to the lower
  id), as `--moe-hot-profile` chooses them (builder/hot_experts.py);
- LRU: the `capacity` most recently selected experts (within a token, the router's order counts,
  top-1 most recent);
- decayed frequency: every expert's count is multiplied by `2**(-1/half_life)` per token and
  raised by 1 when selected; the cache is the `capacity` experts of highest count (ties to the
  lower id), recomputed after each token, as patch 0004 ranks experts without its hysteresis.
- optimal: Belady's rule, which knows the routing ahead: filled before the first token with the
  `capacity` experts selected first, and after each token it keeps, of the experts it held and the
  token's, the `capacity` selected again soonest (ties to the lower id; one never selected again is
  dropped). The ceiling of every policy above, the static and adaptive sets included: no cache of
  that size updated between tokens hits more often.
"""

from __future__ import annotations

import numpy as np

from .hot_experts import hot_sets, hit_rates


def _rates(hits: np.ndarray, lookups: np.ndarray) -> list[float | None]:
    return [int(h) / int(n) if n else None for h, n in zip(hits, lookups)]


def _look_up(cached: np.ndarray, row: np.ndarray, hits: np.ndarray, lookups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One token's lookups in `cached` ([n_layer, n_expert]), counted per layer into `hits` and `lookups`;
    returns the (layer, expert) indices of its selections. `row`: [n_layer, k] expert ids, -1 none."""
    row = row.astype(np.int64)
    valid = row >= 0
    layers = np.arange(row.shape[0])[:, None]
    hits += (valid & cached[layers, np.where(valid, row, 0)]).sum(axis=1)
    lookups += valid.sum(axis=1)
    return np.broadcast_to(layers, row.shape)[valid], row[valid]


def static_hit_rates(ids: np.ndarray, profile_counts: np.ndarray, capacity: int) -> list[float | None]:
    """Per layer: the share of the selections in `ids` ([n_tokens, n_layer, k]) that fall in the
    `capacity` experts `profile_counts` ([n_layer, n_expert]) ranks first."""
    n_layer, n_expert = profile_counts.shape
    counts = np.zeros_like(profile_counts)
    _, layer, _ = np.nonzero(ids >= 0)
    np.add.at(counts, (layer, ids[ids >= 0]), 1)
    hot = hot_sets(profile_counts, {layer: min(capacity, n_expert) for layer in range(n_layer)})
    return hit_rates(counts, hot)


def lru_hit_rates(ids: np.ndarray, n_expert: int, capacity: int) -> list[float | None]:
    """Per layer: the LRU hit rate. An expert is cached iff fewer than `capacity` other experts
    were selected after its last selection."""
    n_tokens, n_layer, k = ids.shape
    last_use = np.full((n_layer, n_expert), -1, dtype=np.int64)  # selection order, -1: never
    hits = np.zeros(n_layer, dtype=np.int64)
    lookups = np.zeros(n_layer, dtype=np.int64)
    layers = np.arange(n_layer)[:, None]
    order = k - np.arange(k)  # top-1 is the most recent of a token's selections
    for t in range(n_tokens):
        row = ids[t].astype(np.int64)  # [n_layer, k]
        valid = row >= 0
        experts = np.where(valid, row, 0)
        seen = last_use[layers, experts]  # [n_layer, k]
        newer = (last_use[:, :, None] > seen[:, None, :]).sum(axis=1)  # experts used since, [n_layer, k]
        hits += (valid & (seen >= 0) & (newer < capacity)).sum(axis=1)
        lookups += valid.sum(axis=1)
        layer_of = np.broadcast_to(layers, row.shape)
        np.maximum.at(last_use, (layer_of[valid], row[valid]), np.broadcast_to(t * (k + 1) + order, row.shape)[valid])
    return _rates(hits, lookups)


def decayed_frequency_hit_rates(ids: np.ndarray, n_expert: int, capacity: int,
                                half_life: float) -> list[float | None]:
    """Per layer: the hit rate of a cache holding the `capacity` experts of highest decayed count."""
    n_tokens, n_layer, _ = ids.shape
    decay = 2.0 ** (-1.0 / half_life)
    score = np.zeros((n_layer, n_expert))
    cached = np.zeros((n_layer, n_expert), dtype=bool)
    hits = np.zeros(n_layer, dtype=np.int64)
    lookups = np.zeros(n_layer, dtype=np.int64)
    layers = np.arange(n_layer)[:, None]
    for t in range(n_tokens):
        selected = _look_up(cached, ids[t], hits, lookups)
        score *= decay
        np.add.at(score, selected, 1.0)
        top = np.argsort(-score, axis=1, kind="stable")[:, :capacity]
        cached[:] = False
        cached[layers, top] = score[layers, top] > 0
    return _rates(hits, lookups)


def _next_selections(ids: np.ndarray, n_expert: int) -> tuple[np.ndarray, np.ndarray]:
    """For each selection in `ids` ([n_tokens, n_layer, k]), the next token that selects its expert in its layer
    (n_tokens: none), and per layer and expert the first token that selects it (n_tokens: none)."""
    n_tokens, n_layer, _ = ids.shape
    following = np.full((n_layer, n_expert), n_tokens, dtype=np.int64)
    after = np.full(ids.shape, n_tokens, dtype=np.int64)
    layers = np.arange(n_layer)[:, None]
    for t in range(n_tokens - 1, -1, -1):
        row = ids[t].astype(np.int64)
        valid = row >= 0
        after[t] = np.where(valid, following[layers, np.where(valid, row, 0)], n_tokens)
        following[np.broadcast_to(layers, row.shape)[valid], row[valid]] = t
    return after, following


def optimal_hit_rates(ids: np.ndarray, n_expert: int, capacity: int) -> list[float | None]:
    """Per layer: the hit rate of a cache of `capacity` experts under Belady's rule (module docstring)."""
    n_tokens, n_layer, _ = ids.shape
    after, next_use = _next_selections(ids, n_expert)
    cached = np.zeros((n_layer, n_expert), dtype=bool)
    hits = np.zeros(n_layer, dtype=np.int64)
    lookups = np.zeros(n_layer, dtype=np.int64)
    layers = np.arange(n_layer)[:, None]
    experts = np.arange(n_expert)
    never = n_tokens * n_expert  # the key of an expert that is not a candidate or never selected again
    keep = min(capacity, n_expert)

    def hold_soonest(candidate: np.ndarray) -> None:
        key = np.where(candidate & (next_use < n_tokens), next_use * n_expert + experts, never)
        first = np.argpartition(key, keep - 1, axis=1)[:, :keep] if keep < n_expert else np.broadcast_to(experts, key.shape)
        cached[:] = False
        cached[layers, first] = key[layers, first] < never

    hold_soonest(np.ones_like(cached))  # filled before the first token, as a hot set is at load
    for t in range(n_tokens):
        selected = _look_up(cached, ids[t], hits, lookups)
        next_use[selected] = after[t][ids[t] >= 0]
        candidate = cached.copy()
        candidate[selected] = True
        hold_soonest(candidate)
    return _rates(hits, lookups)


def hysteresis_hit_rates(ids: np.ndarray, n_expert: int, hot: list[list[int]], every: int, ratio: float = 1.25,
                         margin: float = 1.0, max_swaps: int = 4, noise: float = 2.5,
                         decay: float = 0.5) -> tuple[list[float | None], int]:
    """Per layer: the hit rate of patch 0004's adaptive hot set (--moe-hot-adapt `every`), and the swaps it
    makes. `hot[layer]` is the starting hot set. Each selection adds 1 to its expert's score; after every
    `every` tokens each layer swaps, at most `max_swaps` times, its best-scored cold expert for its
    worst-scored hot one while the cold score exceeds `ratio` * the hot score + `margin` and their difference
    exceeds `noise` * the square root of their sum (patch 0015; 0: the rule before it) (ties: the lower
    id), then multiplies every score by `decay` (patch 0056; 0.5 halves them). The defaults are the engine's."""
    n_tokens, n_layer, _ = ids.shape
    cached = np.zeros((n_layer, n_expert), dtype=bool)
    for layer, experts in enumerate(hot):
        cached[layer, experts] = True
    score = np.zeros((n_layer, n_expert))
    hits = np.zeros(n_layer, dtype=np.int64)
    lookups = np.zeros(n_layer, dtype=np.int64)
    swaps = 0
    for t in range(n_tokens):
        np.add.at(score, _look_up(cached, ids[t], hits, lookups), 1.0)
        if (t + 1) % every:
            continue
        for layer in range(n_layer):
            for _ in range(max_swaps):
                cold = np.flatnonzero(~cached[layer])
                warm = np.flatnonzero(cached[layer])
                if not len(cold) or not len(warm):
                    break
                c = cold[np.argmax(score[layer, cold])]
                h = warm[np.argmin(score[layer, warm])]
                cold_score, hot_score = score[layer, c], score[layer, h]
                if not (cold_score > ratio * hot_score + margin and cold_score - hot_score > noise * np.sqrt(cold_score + hot_score)):
                    break
                cached[layer, c], cached[layer, h] = True, False
                swaps += 1
        score *= decay
    return _rates(hits, lookups), swaps
