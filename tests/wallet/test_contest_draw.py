"""The draw function: distinct winners, deterministic, min(winners, entrants) of them; and the README's lines
that anyone runs to check a draw recompute exactly what the club drew."""
from __future__ import annotations

import hashlib
import json
import re
import secrets
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from wallet.contests import entry_list_sha256, pick_winners
from wallet.contests.draw import commitment_of

README = Path(__file__).resolve().parents[2] / "README.md"
aliases = st.lists(st.from_regex(r"fan-[2-9A-Z]{7}", fullmatch=True), min_size=1, max_size=40)


@settings(max_examples=200, deadline=None)
@given(seed=st.binary(min_size=32, max_size=32), entries=aliases, n=st.integers(1, 50))
def test_winners_are_distinct_entrants_deterministic_and_as_many_as_possible(seed, entries, n):
    entries = sorted(entries)
    chosen = pick_winners(seed.hex(), entries, n)
    assert len(chosen) == len(set(chosen)) == min(n, len(set(entries)))
    assert set(chosen) <= set(entries)
    assert pick_winners(seed.hex(), list(entries), n) == chosen
    # the first k winners do not depend on how many are drawn
    assert pick_winners(seed.hex(), entries, max(1, n - 1)) == chosen[:max(1, n - 1)][:len(chosen)]


def test_another_seed_draws_otherwise():
    entries = sorted(f"fan-{i:07d}" for i in range(1000))
    draws = {tuple(pick_winners(secrets.token_bytes(32).hex(), entries, 3)) for _ in range(20)}
    assert len(draws) == 20


def test_no_entries_no_winners():
    assert pick_winners("00" * 32, [], 3) == []


def test_the_readme_lines_recompute_the_draw(tmp_path, monkeypatch, capsys):
    text = README.read_text(encoding="utf8")
    block = re.search(r"<!-- draw-check -->\n```python\n(.*?)```", text, re.S)
    assert block, "README lost its draw-check block"
    seed = secrets.token_bytes(32).hex()
    entries = sorted(["fan-AAAAAAA"] * 3 + ["fan-BBBBBBB", "fan-CCCCCCC", "fan-DDDDDDD"])
    page = {"seed": seed, "commitment": commitment_of(seed), "entries": entries,
            "entries_sha256": entry_list_sha256(entries), "winner_count": 2,
            "winners": pick_winners(seed, entries, 2)}
    assert page["commitment"] == hashlib.sha256(bytes.fromhex(seed)).hexdigest()
    (tmp_path / "contest.json").write_text(json.dumps(page))
    monkeypatch.chdir(tmp_path)
    exec(compile(block.group(1), "README.md", "exec"), {})
    assert capsys.readouterr().out.strip() == f"verified: {page['winners']}"
    # a tampered page fails the check
    (tmp_path / "contest.json").write_text(json.dumps(page | {"winners": page["winners"][::-1]}))
    try:
        exec(compile(block.group(1), "README.md", "exec"), {})
    except AssertionError as error:
        assert "winners differ" in str(error)
    else:
        raise AssertionError("a tampered page passed")
