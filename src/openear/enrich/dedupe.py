"""Exact and near-duplicate clustering with MinHash LSH (datasketch).

Each post gets a cluster key: the key of the first post seen in its cluster. Signatures of stored posts are loaded
back at the start of a run, so clusters carry over between runs.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable

import numpy as np
from datasketch import MinHash, MinHashLSH

NUM_PERM = 64
THRESHOLD = 0.6
SHINGLE = 3  # words
SCHEME = "affine32"  # datasketch 2 permutation scheme; stored signatures are only comparable within one
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_PLACEHOLDER = re.compile(r"\[(?:user|email|phone)\]|https?://\S+")


def normalise(text: str) -> list[str]:
    decomposed = unicodedata.normalize("NFKD", _PLACEHOLDER.sub(" ", text).casefold())
    return _WORD.findall("".join(c for c in decomposed if not unicodedata.combining(c)))


def shingles(words: list[str]) -> set[bytes]:
    if len(words) < SHINGLE:
        return {" ".join(words).encode()} if words else set()
    return {" ".join(words[i : i + SHINGLE]).encode() for i in range(len(words) - SHINGLE + 1)}


class Deduper:
    """Assigns each post to a cluster of exact or near duplicates (Jaccard >= ``THRESHOLD`` on word 3-grams)."""

    name = "dedupe-minhash"
    version = "1"

    def __init__(self, threshold: float = THRESHOLD, num_perm: int = NUM_PERM) -> None:
        self.num_perm = num_perm
        self._lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
        self._cluster_of: dict[str, str] = {}  # post key -> cluster key
        self._exact: dict[str, str] = {}  # normalised text digest -> cluster key
        self._template = MinHash(num_perm=num_perm, seed=1, scheme=SCHEME)

    @property
    def enricher(self) -> str:
        return f"{self.name}@{self.version}"

    def signature(self, text: str) -> tuple[str, MinHash | None]:
        words = normalise(text)
        digest = hashlib.sha1(" ".join(words).encode()).hexdigest()
        grams = shingles(words)
        if len(words) < 4:  # too short to call anything a near-duplicate; exact matches only
            return digest, None
        m = MinHash(num_perm=self.num_perm, seed=1, permutations=self._template.permutations, scheme=SCHEME)
        m.update_batch(list(grams))
        return digest, m

    def load(self, rows: Iterable[tuple[str, str, bytes]]) -> None:
        """Index stored posts: (cluster key, post key, signature bytes)."""
        for cluster_key, post_key, raw in rows:
            if post_key in self._cluster_of:
                continue
            hv = np.frombuffer(raw, dtype=np.uint64)
            if hv.size != self.num_perm:
                continue
            m = MinHash(
                num_perm=self.num_perm, seed=1, hashvalues=hv, permutations=self._template.permutations, scheme=SCHEME
            )
            self._lsh.insert(post_key, m, check_duplication=False)
            self._cluster_of[post_key] = cluster_key

    def assign(self, post_key: str, text: str) -> tuple[str, bytes | None]:
        """The post's cluster key and its signature bytes (to store)."""
        if post_key in self._cluster_of:
            digest, m = self.signature(text)
            return self._cluster_of[post_key], (m.hashvalues.astype(np.uint64).tobytes() if m else None)
        digest, m = self.signature(text)
        cluster = self._exact.get(digest)
        if cluster is None and m is not None:
            hits = self._lsh.query(m)
            if hits:
                cluster = min(self._cluster_of[h] for h in hits)
        if cluster is None:
            cluster = post_key
        self._exact.setdefault(digest, cluster)
        self._cluster_of[post_key] = cluster
        if m is not None:
            self._lsh.insert(post_key, m, check_duplication=False)
            return cluster, m.hashvalues.astype(np.uint64).tobytes()
        return cluster, None
