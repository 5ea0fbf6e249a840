"""Duplicates: the same picture more than once, which silently multiplies its weight.

Exact copies are found by hashing the bytes, but only of files whose byte size matches another's
(a copy has the same size), so a folder of unique files is never read in full. Near copies
(resized, recompressed, slightly cropped) are found with imagehash's perceptual hash (`phash`,
64 bits): two images whose hashes differ in at most `NEAR_DISTANCE` bits are the same picture for
practical purposes. All hashes are compared at once with numpy's popcount and linked with
scipy's connected components, so 5,000 images take milliseconds even when many match.

A hash says nothing about a picture with (almost) no detail: every flat colour hashes alike. Such
pictures (`LOW_DETAIL`) are near copies only when their 4×4 colour thumbnails are equal, so two
different flat colours never are. Copies are looked for across concept folders and the
regularisation folder too.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .facts import ImageFacts
from .findings import Finding, finding

NEAR_DISTANCE = 10  # of 64 phash bits: a resized copy differs in 0-2, a 2 % crop in about 8, unrelated pictures in about 32
LOW_DETAIL = 2.0  # grey levels of spread in the 32×32 thumbnail below which the hash is noise
_CHUNK = 512


@dataclass(frozen=True)
class Entry:
    path: Path
    concept: str  # concept folder name
    repeats: int  # draws per epoch of this file
    is_reg: bool


def file_digest(path: Path) -> str:
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def exact_groups(entries: list[Entry], facts: dict[Path, ImageFacts]) -> list[list[Entry]]:
    by_size: dict[int, list[Entry]] = {}
    for entry in entries:
        by_size.setdefault(facts[entry.path].size_bytes, []).append(entry)
    groups: list[list[Entry]] = []
    for same_size in by_size.values():
        if len(same_size) < 2:
            continue
        by_digest: dict[str, list[Entry]] = {}
        for entry in same_size:
            item = facts[entry.path]
            if not item.sha:
                try:
                    item.sha = file_digest(entry.path)
                except OSError:
                    continue
            by_digest.setdefault(item.sha, []).append(entry)
        groups += [g for g in by_digest.values() if len(g) > 1]
    return groups


def near_groups(entries: list[Entry], facts: dict[Path, ImageFacts], exact: list[list[Entry]]) -> list[list[Entry]]:
    """Groups of near copies (linked by phash distance, or equal colours for pictures without
    detail), leaving out groups that are only exact copies."""
    detailed = [e for e in entries if facts[e.path].phash and facts[e.path].detail >= LOW_DETAIL]
    flat: dict[str, list[Entry]] = {}
    for entry in entries:
        item = facts[entry.path]
        if item.phash and 0 <= item.detail < LOW_DETAIL and item.colours:
            flat.setdefault(item.colours, []).append(entry)
    clusters = _hash_clusters(detailed, facts) + [g for g in flat.values() if len(g) > 1]
    exact_sets = [{e.path for e in g} for g in exact]
    return [group for group in clusters if not any({e.path for e in group} <= s for s in exact_sets)]


def _hash_clusters(hashed: list[Entry], facts: dict[Path, ImageFacts]) -> list[list[Entry]]:
    if len(hashed) < 2:
        return []
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    count = len(hashed)
    codes = np.array([int(facts[e.path].phash, 16) for e in hashed], dtype=np.uint64)
    nodes = np.arange(count)
    leader = nodes.copy()  # each image's smallest linked image so far: the components carried over
    for start in range(0, count, _CHUNK):
        block = codes[start:start + _CHUNK]
        rows, cols = np.nonzero(np.bitwise_count(block[:, None] ^ codes[None, :]) <= NEAR_DISTANCE)
        rows += start
        keep = rows < cols
        if not keep.any():
            continue
        edges_from = np.concatenate([rows[keep], nodes])
        edges_to = np.concatenate([cols[keep], leader])
        graph = coo_matrix((np.ones(len(edges_from), dtype=np.int8), (edges_from, edges_to)), shape=(count, count))
        _, labels = connected_components(graph, directed=False)
        smallest = np.full(labels.max() + 1, count)
        np.minimum.at(smallest, labels, nodes)
        leader = smallest[labels]
    clusters: dict[int, list[Entry]] = {}
    for index, entry in enumerate(hashed):
        clusters.setdefault(int(leader[index]), []).append(entry)
    return [group for group in clusters.values() if len(group) > 1]


def check_duplicates(entries: list[Entry], facts: dict[Path, ImageFacts], train_draws: int) -> list[Finding]:
    exact = exact_groups(entries, facts)
    near = near_groups(entries, facts, exact)
    found = [_group_finding("duplicates.exact", "copies of the same file", g, train_draws) for g in exact]
    found += [_group_finding("duplicates.near", "near copies of one picture (resized, recompressed or cropped)",
                             g, train_draws) for g in near]
    return found


def _group_finding(code: str, what: str, group: list[Entry], train_draws: int) -> Finding:
    group = sorted(group, key=lambda e: (e.is_reg, str(e.path)))
    names = ", ".join(f"{e.concept}/{e.path.name}" for e in group[:4]) + (f" … {len(group) - 4} more" if len(group) > 4 else "")
    train = [e for e in group if not e.is_reg]
    weight = sum(e.repeats for e in train)
    parts = " + ".join(str(e.repeats) for e in train[:6]) + (f" + … {len(train) - 6} more" if len(train) > 6 else "")
    share = f", {weight / train_draws:.0%} of each epoch" if train_draws and weight else ""
    message = f"{len(group)} {what}: {names}"
    if len(train) > 1:
        message += f"; together drawn {weight} times per epoch ({parts}){share} instead of {max(e.repeats for e in train)}"
    if train and len(train) < len(group):
        message += "; a training image is also in the regularisation set"
    concepts = {e.concept for e in group}
    where = " across concept folders" if len(concepts) > 1 else ""
    advice = (f"keep one copy{where} and delete the others (or lower the repeats on purpose if the "
              "extra weight was meant)") if len(train) > 1 else "remove the copy from the regularisation folder"
    return finding(code, "warning", message, advice, [e.path for e in group])
