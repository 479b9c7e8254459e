"""The draw: a deterministic function of the revealed seed and the published entry list (README, "Contests").

The entry list is the entries' public aliases, sorted, one per entry (a member with extra entries appears once
per entry); its hash is the SHA-256 of the aliases joined by newlines (UTF-8). The k-th draw hashes the seed
with the 8-byte big-endian counter k and takes the entry at that number modulo the list's length; an alias
already chosen is skipped, so winners are distinct members; there are min(winners, distinct aliases) of them.
"""
from __future__ import annotations

import hashlib


def entry_list_sha256(entries: list[str]) -> str:
    return hashlib.sha256("\n".join(entries).encode("utf-8")).hexdigest()


def commitment_of(seed_hex: str) -> str:
    return hashlib.sha256(bytes.fromhex(seed_hex)).hexdigest()


def pick_winners(seed_hex: str, entries: list[str], n: int) -> list[str]:
    """The winners' aliases, in the order drawn."""
    seed = bytes.fromhex(seed_hex)
    wanted = min(n, len(set(entries)))
    chosen: list[str] = []
    k = 0
    while len(chosen) < wanted:
        digest = hashlib.sha256(seed + k.to_bytes(8, "big")).digest()
        alias = entries[int.from_bytes(digest, "big") % len(entries)]
        if alias not in chosen:
            chosen.append(alias)
        k += 1
    return chosen
