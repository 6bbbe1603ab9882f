"""The skeleton miner: line keys, word slots that turn variable, state, bounds, and loghub-2k GA."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from faultlens.analysis.templates import SkeletonConfig, SkeletonMiner
from faultlens.analysis.templates.evaluate import evaluate, load_all, parse_with_skeleton
from faultlens.analysis.templates.tokens import KeyRules, line_key


def ids(miner: SkeletonMiner, lines: list[str]) -> list[int]:
    return [miner.add(line).cluster_id for line in lines]


def test_values_are_masked_by_shape_and_words_kept() -> None:
    key, shown = line_key("Accepted password for 10.0.0.7 port 52344 ssh2 in /var/log/x.log (3 ms)")
    assert key == ("Accepted", "password", "for", "<*>", "port", "<*>", "ssh2", "in", "<*>")
    assert shown[5] == "<NUM>" and shown[6] == "ssh2"  # a name ending in one digit stays a word
    # host and package names are values, class and constant names are not
    assert line_key("resolved ns.example.com")[0] == line_key("resolved com.example.app")[0]
    assert line_key("caught java.io.IOException")[0] != line_key("caught java.lang.NullPointerException")[0]
    # name=value keeps its name; a value that is a plain word stays a word
    assert line_key("uid=0 euid=12 user=root logname=")[0] == ("uid=<*>", "euid=<*>", "user=root", "logname=")
    # a date written with names is one value; a run of values is one <*>
    assert line_key("connection at Sun Jul 3 10:05:25 2005 ok")[0] == ("connection", "at", "<*>", "ok")
    assert line_key("failed to resolve name an14 an15 an16")[0] == line_key("failed to resolve name x1y")[0]
    # a bracketed group of values annotates what precedes it; an empty value is a value
    assert line_key("1190 bytes (1.16 KB) sent")[0] == line_key("0 bytes sent")[0]
    assert line_key("from 1.2.3.4 () at")[0] == line_key("from 1.2.3.4 (a.example.org) at")[0]
    # each rule can be switched off alone (to measure it): then the lines key apart
    no_notes = KeyRules(annotations=False)
    assert line_key("1190 bytes (1.16 KB) sent", no_notes)[0] != line_key("0 bytes sent", no_notes)[0]
    assert line_key("uid=0", KeyRules(name_value=False))[0] == ("<*>",)
    assert (
        SkeletonMiner(SkeletonConfig(rules=no_notes)).add("1 bytes (2 KB) sent").template
        == "<NUM> bytes (<NUM> KB) sent"
    )


_PIECES = st.sampled_from(
    [
        "user",
        "alice",
        "bob",
        "=",
        ":",
        "(",
        ")",
        "[",
        "]",
        "7",
        "42",
        ".",
        "/",
        "x1",
        "KB",
        "Jul",
        "ms",
        "'",
        " ",
        "é",
        "٣",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(_PIECES, max_size=14).map("".join), min_size=1, max_size=30))
def test_any_lines_key_consistently_and_survive_a_round_trip(lines: list[str]) -> None:
    for line in lines:
        key, shown = line_key(line)
        assert len(key) == len(shown) <= len(line.split())
        assert line_key(" ".join(line.split())) == (key, shown)
    m = SkeletonMiner(SkeletonConfig(word_values=2, min_constants=1))
    first = [m.add(line) for line in lines]
    restored = SkeletonMiner.from_state(json.loads(json.dumps(m.export_state())), m.config)
    assert restored.export_state() == m.export_state()
    assert [m.add(x) for x in lines] == [restored.add(x) for x in lines]
    for match in first:  # every id it gave is a cluster or was folded into one later
        assert m.cluster(match.cluster_id) is not None or any(match.cluster_id in x.merged for x in first)


def test_a_long_token_is_judged_in_linear_time() -> None:
    key, _ = line_key("a" * 1999 + "=" + " " + "b" * 1000 + ":" + "1" * 999)
    assert key == ("a" * 1999 + "=", "b" * 1000 + ":<*>")


def test_lines_that_differ_in_a_word_are_two_templates() -> None:
    m = SkeletonMiner()
    a = m.add("[instance: 0b7c] VM Paused (Lifecycle Event)")
    b = m.add("[instance: 9f2e] VM Resumed (Lifecycle Event)")
    c = m.add("[instance: 77aa] VM Paused (Lifecycle Event)")
    assert a.created and b.created and a.cluster_id != b.cluster_id
    assert c.cluster_id == a.cluster_id and not c.created and not c.template_changed
    assert c.template == "[instance: <*>] VM Paused (Lifecycle Event)"


def test_a_word_slot_turns_variable_after_enough_distinct_words() -> None:
    m = SkeletonMiner(SkeletonConfig(word_values=4))
    first = [m.add(f"session closed for user {u}") for u in ("cyrus", "news", "news", "test")]
    assert len({x.cluster_id for x in first}) == 3  # three words: still three templates
    fold = m.add("session closed for user root")  # the fourth distinct word: a variable
    assert fold.cluster_id == first[1].cluster_id  # the largest cluster keeps its id
    assert set(fold.merged) == {first[0].cluster_id, first[3].cluster_id}
    assert fold.template == "session closed for user <*>" and fold.template_changed and not fold.created
    assert m.cluster(first[0].cluster_id) is None and m.cluster(fold.cluster_id).size == 5  # type: ignore[union-attr]
    later = m.add("session closed for user alice")
    assert later.cluster_id == fold.cluster_id and not later.created and later.merged == ()


def test_a_value_seen_in_a_word_slot_makes_it_variable_both_ways() -> None:
    m = SkeletonMiner()
    word = m.add("cache entry for alpha expired now")
    value = m.add("cache entry for 0x1f expired now")  # takes in the word's cluster
    assert value.cluster_id == word.cluster_id and value.template == "cache entry for <*> expired now"
    m2 = SkeletonMiner()
    v = m2.add("cache entry for 0x1f expired now")
    w = m2.add("cache entry for beta expired now")  # joins the key that has a value there
    assert w.cluster_id == v.cluster_id and not w.created


def test_short_lines_never_fold() -> None:
    m = SkeletonMiner(SkeletonConfig(word_values=2))
    words = ["running", "normal", "warning", "critical", "blocked", "active"]
    assert len(set(ids(m, words))) == len(words)
    cmds = [f"{w} (command {i})" for i, w in enumerate(["boot", "wait", "halt", "init", "reset"])]
    assert len(set(ids(m, cmds))) == len(cmds)


def test_state_round_trip_continues_like_the_original() -> None:
    lines = [f"user {u} logged in from 10.0.0.{i}" for i, u in enumerate(["ann", "bob", "cid", "dan"] * 3)]
    lines += ["disk check ok", "job 17 done in 3 ms", "job 18 failed: timeout"]
    m = SkeletonMiner(SkeletonConfig(word_values=6))
    ids(m, lines)
    restored = SkeletonMiner.from_state(json.loads(json.dumps(m.export_state())), m.config)
    assert restored.export_state() == m.export_state()
    more = [f"user {u} logged in from 10.0.0.9" for u in ("eve", "fay", "gus")] + ["job 19 done in 4 ms"]
    assert [m.add(x) for x in more] == [restored.add(x) for x in more]
    assert restored.export_state() == m.export_state()
    with pytest.raises(ValueError, match="unsupported skeleton state"):
        SkeletonMiner.from_state({"kind": "drain", "version": 1})


def test_bounds_hold_and_evict_the_smallest() -> None:
    m = SkeletonMiner(SkeletonConfig(max_clusters=5, max_keys=8, max_slots=20))
    for i in range(200):
        m.add(f"event kind{chr(97 + i % 26)}{chr(97 + i // 26)} happened here today")
        m.add("heartbeat ok from the main loop")
        assert len(m.clusters) <= 5 and len(m._by_key) <= 8 and len(m._words) <= 20
    heartbeat = m.match("heartbeat ok from the main loop")
    assert heartbeat is not None and heartbeat.size == 200  # the big one was never evicted


def test_config_is_validated() -> None:
    bad: list[dict[str, Any]] = [
        {"word_values": 1},
        {"min_constants": -1},
        {"max_keys": 10, "max_clusters": 20},
        {"max_slots": 0},
        {"line_cache": -1},
    ]
    for fields in bad:
        with pytest.raises(ValueError):
            SkeletonConfig(**fields)


def _loghub(datasets_dir: Path) -> dict[str, tuple[list[str], list[str]]]:
    data = load_all(datasets_dir / "loghub-2k")
    if not data:
        pytest.skip("loghub-2k not present")
    return data


def test_add_many_and_the_line_cache_change_no_result(datasets_dir: Path) -> None:
    """Every loghub system in order, then again (repeats hit the caches): the same matches
    and state one line at a time, in batches, and without the line cache."""
    lines = [line for contents, _ in _loghub(datasets_dir).values() for line in contents[:400]]
    lines += lines[::3]
    small: dict[str, Any] = {"max_clusters": 300, "max_keys": 400}
    plain = SkeletonMiner(SkeletonConfig(line_cache=0, **small))
    expected = [plain.add(line) for line in lines]
    for cache in (20_000, 50):
        m = SkeletonMiner(SkeletonConfig(line_cache=cache, **small))
        got = [x for i in range(0, len(lines), 500) for x in m.add_many(lines[i : i + 500])]
        assert got == expected and m.export_state() == plain.export_state()


# Reached 0.984 with the default config (docs/benchmarks.md); a small margin below it.
MEAN_GA_FLOOR = 0.975


def test_grouping_accuracy_on_loghub(datasets_dir: Path) -> None:
    data = _loghub(datasets_dir)
    result = evaluate(datasets_dir / "loghub-2k", compare_drain=False, compare_drain3=False)
    assert len(result["systems"]) == 16
    assert result["mean_ga"] >= MEAN_GA_FLOOR, result
    assert min(r["ga"] for r in result["systems"].values()) >= 0.85, result
    # folds are followed: the line's final cluster, not the one it first joined
    contents, _ = data["OpenSSH"]
    miner = SkeletonMiner()
    first = {miner.add(x).cluster_id for x in contents}
    assert len(set(parse_with_skeleton(contents))) < len(first)
