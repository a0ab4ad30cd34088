"""The cache is an accelerator, never a reason to lose a run (issue 9, item 3).

Every fault is made for real: SQLite databases with a garbage header, truncated, or with garbage
over their pages; a cache path that is a regular file; a read-only folder and a full disk (tmpfs
mounts). Each is met at open, at lookup and at write: in the store, in ``ResponseCache``, through
``evalrun eval`` and through ``evalrun cache``. A value of another format version, or one that
cannot be decoded at all, is a miss and no fault.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import anyio
import pytest
from diskcache.core import MODE_PICKLE
from helpers import arithmetic_cases, evalrun, write_suite

from evalrun.cache import CacheUnavailable, ResponseCache, open_store
from evalrun.cache.disk import VALUE_VERSION
from evalrun.cache.store import StoredAnswer
from evalrun.providers.base import ChatResponse

Damage = Callable[[Path], None]
Mount = Callable[[], Path]

DAMAGED = re.compile(r"evalrun: cache at (.+) is damaged \((.+)\); run 'evalrun cache clear' to rebuild it")
MALFORMED = "database disk image is malformed"
FULL = "database or disk is full"


# -- real faults -----------------------------------------------------------------------------------


def garbage_header(db: Path) -> None:
    with db.open("r+b") as handle:
        handle.write(b"not a SQLite file" * 8)


def truncated(db: Path) -> None:
    os.truncate(db, db.stat().st_size // 3)


def garbage_in_the_middle(db: Path) -> None:
    """Garbage over every page after the schema and the roots of diskcache's tables and indexes:
    the store still opens, and its lookups meet the damage."""
    with closing(sqlite3.connect(db)) as con:
        [(page_size,)] = con.execute("PRAGMA page_size").fetchall()
        [(last_root,)] = con.execute("SELECT max(rootpage) FROM sqlite_master").fetchall()
    start, size = last_root * page_size, db.stat().st_size
    assert size > start + page_size, "too few answers to have pages past the roots"
    with db.open("r+b") as handle:
        handle.seek(start)
        handle.write(b"\xff" * (size - start))


DAMAGES = {
    "garbage header": (garbage_header, "file is not a database"),
    "truncated": (truncated, MALFORMED),
    "garbage in the middle": (garbage_in_the_middle, MALFORMED),
}
AT_OPEN = ["garbage header", "truncated"]


def _mount(where: Path, options: str) -> None:
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"mounting a tmpfs needs root (CAP_SYS_ADMIN): {done.stderr.strip()}")


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Mount]:
    """Mounts a 512 KB tmpfs under ``tmp_path`` for each call; all are unmounted after the test."""
    mounted: list[Path] = []

    def mount() -> Path:
        where = tmp_path / f"tmpfs{len(mounted)}"
        where.mkdir()
        _mount(where, "size=512k")
        mounted.append(where)
        return where

    yield mount
    for where in mounted:
        subprocess.run(["umount", "--lazy", str(where)], check=True)


def remount_read_only(where: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(where)], check=True)


# -- answers and stores ----------------------------------------------------------------------------


def answer(i: int, padding: int = 200) -> StoredAnswer:
    return StoredAnswer({"case": i}, ChatResponse(f"answer {i} " + "x" * padding, 3, 5, 12.5), f"c{i}", 1.0)


def keys(count: int) -> list[str]:
    return [f"{i:064x}" for i in range(count)]


def populate(cache: Path, count: int = 200) -> list[str]:
    """A closed cache of ``count`` answers: its last close moved every page into cache.db."""
    written = keys(count)

    async def go() -> None:
        store = open_store(str(cache))
        try:
            await store.put_many([(key, answer(i)) for i, key in enumerate(written)], None)
        finally:
            await store.aclose()

    anyio.run(go)
    assert sorted(os.listdir(cache)) == ["cache.db"]
    return written


async def fill_until_full(cache: ResponseCache, warnings: list[str]) -> None:
    """Keep ever more answers of 2 KB, a batch at a time, until the store gives up (a 512 KB disk
    takes a few hundred)."""
    for batch in range(100):
        for i in range(batch * 20, batch * 20 + 20):
            cache.keep(f"{i:064x}", {"case": i}, answer(i, padding=2000).response, f"c{i}")
        await cache.flush()
        if warnings:
            return
    pytest.fail("a 512 KB disk took 2,000 answers of 2 KB")


def write_raw_value(cache: Path, key: str, value: bytes) -> None:
    """Put bytes where diskcache keeps a pickled value, as another program or version might have."""
    with closing(sqlite3.connect(cache / "cache.db")) as con, con:
        updated = con.execute("UPDATE Cache SET value = ?, mode = ? WHERE key = ?", (value, MODE_PICKLE, key))
        assert updated.rowcount == 1


def rewrite_value(cache: Path, key: str, change: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    with closing(sqlite3.connect(cache / "cache.db")) as con:
        [(value,)] = con.execute("SELECT value FROM Cache WHERE key = ?", (key,)).fetchall()
    write_raw_value(cache, key, pickle.dumps(change(pickle.loads(value))))


# -- the store and ResponseCache -------------------------------------------------------------------


@pytest.mark.parametrize("name", AT_OPEN)
def test_a_corrupt_database_is_cache_unavailable_at_open(tmp_path: Path, name: str) -> None:
    damage, reason = DAMAGES[name]
    cache = tmp_path / "cache"
    populate(cache)
    damage(cache / "cache.db")
    with pytest.raises(CacheUnavailable) as caught:
        open_store(str(cache))
    assert str(caught.value) == f"{cache}: {reason}"
    assert caught.value.damaged


def test_a_cache_path_that_is_a_file_is_cache_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("mine")
    with pytest.raises(CacheUnavailable) as caught:
        open_store(str(path))
    assert str(caught.value) == f"{path}: not a folder" and not caught.value.damaged
    assert path.read_text() == "mine"


def test_a_read_only_cache_folder_is_cache_unavailable(tmpfs: Mount) -> None:
    cache = tmpfs()
    populate(cache)
    remount_read_only(cache)
    with pytest.raises(CacheUnavailable) as caught:
        open_store(str(cache))
    assert str(caught.value) == f"{cache}: the folder is not writable" and not caught.value.damaged


def test_a_full_disk_at_open_is_cache_unavailable(tmpfs: Mount) -> None:
    cache = tmpfs()
    with (cache / "filler").open("wb", buffering=0) as filler, pytest.raises(OSError):
        while True:
            filler.write(b"\0" * 65536)
    with pytest.raises(CacheUnavailable) as caught:
        open_store(str(cache))
    assert str(caught.value) == f"{cache}: {FULL}"


def test_a_cache_damaged_between_lookups_is_off_after_one_warning(tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    written = populate(cache_dir)
    warnings: list[str] = []

    async def go() -> None:
        store = open_store(str(cache_dir))
        try:
            cache = ResponseCache(store, warn=warnings.append)
            assert await cache.lookup_many(written[:1]) == [answer(0).response]
            garbage_in_the_middle(cache_dir / "cache.db")
            assert await cache.lookup_many(written) == [None] * len(written)
            assert not cache.active and warnings  # the damage was met, and said
            assert await cache.lookup_many(written[:1]) == [None]
            cache.keep("new", {}, answer(1).response, "c1")
            await cache.flush()
        finally:
            await store.aclose()

    anyio.run(go)
    assert warnings == [f"cache {cache_dir}: {MALFORMED}; the run goes on without it"]


def test_a_disk_filled_during_writes_turns_the_cache_off_after_one_warning(tmpfs: Mount) -> None:
    cache_dir = tmpfs()
    warnings: list[str] = []

    async def go() -> None:
        store = open_store(str(cache_dir))
        try:
            async with ResponseCache(store, warn=warnings.append).writing() as cache:
                await fill_until_full(cache, warnings)
                assert not cache.active
                cache.keep("late", {}, answer(1).response, "c1")  # dropped, and the way out writes nothing
            assert await cache.lookup_many(keys(1)) == [None]
        finally:
            await store.aclose()

    anyio.run(go)
    assert warnings == [f"cache {cache_dir}: {FULL}; the run goes on without it"]


def test_a_value_of_another_format_version_is_a_miss_and_an_unversioned_one_a_hit(tmp_path: Path) -> None:
    """Values written before the version was recorded have version 1's layout, so they still hit."""
    cache_dir = tmp_path / "cache"
    newer, older = populate(cache_dir, 2)
    rewrite_value(cache_dir, newer, lambda value: {**value, "version": VALUE_VERSION + 1})
    rewrite_value(cache_dir, older, lambda value: {k: v for k, v in value.items() if k != "version"})
    warnings: list[str] = []

    async def go() -> list[ChatResponse | None]:
        store = open_store(str(cache_dir))
        try:
            cache = ResponseCache(store, warn=warnings.append)
            found = await cache.lookup_many([newer, older])
            assert cache.active
            return found
        finally:
            await store.aclose()

    assert anyio.run(go) == [None, answer(1).response]
    assert warnings == []


@pytest.mark.parametrize(
    "raw",
    [
        b"\x80\x05 not a pickle at all",
        b"\x80\x04canother_program.models\nModel\n)\x81.",  # an instance of a class evalrun has not
        pickle.dumps({"version": VALUE_VERSION, "response": {"text": "cut"}})[:-9],
        pickle.dumps(["a", "list"]),
        pickle.dumps({"version": VALUE_VERSION, "response": {"txt": "another layout"}}),
    ],
    ids=["garbage", "foreign class", "truncated pickle", "not a mapping", "other fields"],
)
def test_an_undecodable_value_is_a_miss_and_no_fault(tmp_path: Path, raw: bytes) -> None:
    cache_dir = tmp_path / "cache"
    broken, intact = populate(cache_dir, 2)
    write_raw_value(cache_dir, broken, raw)
    warnings: list[str] = []

    async def go() -> tuple[list[ChatResponse | None], bool, list[str]]:
        store = open_store(str(cache_dir))
        try:
            cache = ResponseCache(store, warn=warnings.append)
            found = await cache.lookup_many([broken, intact])
            assert cache.active
            return found, await store.contains(broken), [kept.case_id async for kept in store.entries()]
        finally:
            await store.aclose()

    assert anyio.run(go) == ([None, answer(1).response], False, ["c1"])
    assert warnings == []


# -- evalrun cache ---------------------------------------------------------------------------------


def one_line_exit_2(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    [line] = done.stderr.splitlines()
    return line


@pytest.mark.parametrize("name", DAMAGES)
def test_cache_stats_prune_and_explain_on_a_damaged_cache_say_so_in_one_line(tmp_path: Path, name: str) -> None:
    damage, reason = DAMAGES[name]
    cache = tmp_path / "cache"
    populate(cache)
    damage(cache / "cache.db")
    write_suite(tmp_path / "suite.jsonl", arithmetic_cases(1))
    explain = ("explain", "c00000", "--provider", "sim", "--suite", "suite.jsonl")
    for command in (("stats",), ("prune",), explain):
        said = DAMAGED.fullmatch(one_line_exit_2(evalrun(tmp_path, "cache", *command, "--cache-dir", str(cache))))
        assert said is not None and said[1] == str(cache)
        if name in AT_OPEN or command == explain:
            assert said[2] == reason
        else:  # stats and prune check every page first, so they find what only lookups would meet
            assert said[2].startswith("integrity check failed: ")


@pytest.mark.parametrize("name", DAMAGES)
def test_cache_clear_rebuilds_a_damaged_cache_and_leaves_other_files(tmp_path: Path, name: str) -> None:
    damage, _ = DAMAGES[name]
    cache = tmp_path / "cache"
    populate(cache)
    (cache / "notes.txt").write_text("mine")

    async def keep_a_large_answer() -> None:  # over 32 KB: diskcache keeps it in a file of its own
        store = open_store(str(cache))
        try:
            await store.put_many([("large", answer(0, padding=40_000))], None)
        finally:
            await store.aclose()

    anyio.run(keep_a_large_answer)
    assert list(cache.glob("*/*/*.val"))
    damage(cache / "cache.db")

    cleared = evalrun(tmp_path, "cache", "clear", "--cache-dir", str(cache))
    assert cleared.returncode == 0, cleared.stderr
    assert cleared.stdout.startswith(f"rebuilt {cache}, empty") and cleared.stderr == ""
    assert not list(cache.glob("*/*/*.val")) and (cache / "notes.txt").read_text() == "mine"
    stats = evalrun(tmp_path, "cache", "stats", "--cache-dir", str(cache))
    assert (stats.returncode, stats.stdout) == (0, f"{cache}: 0 entries, 0.0 MB\n"), stats.stderr


def test_cache_clear_rebuilds_a_cache_that_filled_the_disk(tmp_path: Path, tmpfs: Mount) -> None:
    cache_dir = tmpfs()
    warnings: list[str] = []

    async def fill() -> None:
        store = open_store(str(cache_dir))
        try:
            await fill_until_full(ResponseCache(store, warn=warnings.append), warnings)
        finally:
            await store.aclose()

    anyio.run(fill)
    cleared = evalrun(tmp_path, "cache", "clear", "--cache-dir", str(cache_dir))
    assert cleared.returncode == 0, cleared.stderr
    stats = evalrun(tmp_path, "cache", "stats", "--cache-dir", str(cache_dir))
    assert (stats.returncode, stats.stdout) == (0, f"{cache_dir}: 0 entries, 0.0 MB\n"), stats.stderr
    assert populate(cache_dir, 20)  # and it takes answers again


def test_cache_clear_and_stats_leave_a_file_given_as_the_cache_path_alone(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("mine")
    for command in ("clear", "stats"):
        line = one_line_exit_2(evalrun(tmp_path, "cache", command, "--cache-dir", str(path)))
        assert line == f"evalrun: cache at {path} cannot be used (not a folder)"
    assert path.read_text() == "mine"


def test_cache_stats_on_a_read_only_cache_is_one_line(tmp_path: Path, tmpfs: Mount) -> None:
    cache = tmpfs()
    populate(cache)
    remount_read_only(cache)
    line = one_line_exit_2(evalrun(tmp_path, "cache", "stats", "--cache-dir", str(cache)))
    assert line == f"evalrun: cache at {cache} cannot be used (the folder is not writable)"


# -- evalrun eval ----------------------------------------------------------------------------------


def run_eval(tmp_path: Path, cache: Path, cases: list[dict[str, Any]]) -> subprocess.CompletedProcess[str]:
    write_suite(tmp_path / "suite.jsonl", cases)
    (tmp_path / "results.json").unlink(missing_ok=True)
    return evalrun(
        tmp_path, "eval", "sim", "--suite", "suite.jsonl", "--cache-dir", str(cache), "--output", "results.json"
    )


def assert_every_case_answered_with_one_warning(
    done: subprocess.CompletedProcess[str], tmp_path: Path, cache: Path, reason: str, cases: list[dict[str, Any]]
) -> None:
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    results = json.loads((tmp_path / "results.json").read_text())
    assert sorted(case["id"] for case in results["cases"]) == sorted(case["id"] for case in cases)
    assert {case["status"] for case in results["cases"]} == {"pass"}
    [warning] = [line for line in done.stderr.splitlines() if str(cache) in line]
    assert warning.startswith("evalrun: ") and reason in warning


def test_a_run_over_a_cache_damaged_since_the_last_run_answers_every_case(tmp_path: Path) -> None:
    cache, cases = tmp_path / "answers", arithmetic_cases(100)
    assert run_eval(tmp_path, cache, cases).returncode == 0
    garbage_in_the_middle(cache / "cache.db")
    assert_every_case_answered_with_one_warning(run_eval(tmp_path, cache, cases), tmp_path, cache, MALFORMED, cases)


def test_a_run_whose_cache_fills_the_disk_answers_every_case(tmp_path: Path, tmpfs: Mount) -> None:
    cache = tmpfs()
    cases = arithmetic_cases(300)
    for case in cases:  # 2 KB of prompt each: a 512 KB disk fills a third of the way in
        case["prompt"] += " (no more than that)" * 100
    assert_every_case_answered_with_one_warning(run_eval(tmp_path, cache, cases), tmp_path, cache, FULL, cases)


def _regular_file(where: Path) -> None:
    where.write_text("not a cache")


def _unreadable_database(where: Path) -> None:
    where.mkdir()
    (where / "cache.db").write_bytes(b"not a SQLite file" * 8)


@pytest.mark.parametrize(
    ("fault", "reason"),
    [(_unreadable_database, "file is not a database"), (_regular_file, "not a folder")],
    ids=["garbage database", "regular file"],
)
def test_a_run_over_a_cache_it_cannot_open_answers_every_case(
    tmp_path: Path, fault: Callable[[Path], None], reason: str
) -> None:
    cache, cases = tmp_path / "answers", arithmetic_cases(20)
    fault(cache)
    assert_every_case_answered_with_one_warning(run_eval(tmp_path, cache, cases), tmp_path, cache, reason, cases)


def test_cache_clear_leaves_a_cache_another_run_holds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import evalrun.cache_admin as admin
    from evalrun.settings import load_settings

    cache = tmp_path / "cache"
    populate(cache)

    def locked(where: str) -> Any:  # what a long write of another process looks like (a 60 s wait, skipped)
        raise CacheUnavailable(where, "database is locked", busy=True)

    monkeypatch.setattr(admin, "open_store", locked)
    settings = load_settings(env={}, cache_dir=str(cache))
    with pytest.raises(CacheUnavailable, match="locked"):
        anyio.run(admin.clear_store, settings)
    monkeypatch.undo()
    stats = evalrun(tmp_path, "cache", "stats", "--cache-dir", str(cache))
    assert stats.returncode == 0 and " 0 entries" not in stats.stdout  # its entries are all still there
