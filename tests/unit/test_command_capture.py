"""labkit.commands.captured: the commands the server really executed, filtered to the keys asked for."""

from __future__ import annotations

import uuid

from labkit.commands import captured


def _key(name: str) -> str:
    return f"lab:test:capture:{uuid.uuid4().hex[:8]}:{name}"


def test_a_block_s_commands_are_captured_in_order_and_others_are_not(r, redis_url):
    mine, other = _key("mine"), _key("other")
    with captured(redis_url, mine) as seen:
        r.set(mine, "1", px=5_000)
        r.set(other, "2")
        r.get(mine)
        r.delete(mine)
    r.delete(other)
    assert seen.names() == ["SET", "GET", "DEL"]
    assert seen.only("del", "GET").names() == ["GET", "DEL"]
    assert [a.upper() for a in seen.commands[0].args] == ["SET", mine.upper(), "1", "PX", "5000"]


def test_nothing_after_the_block_is_kept(r, redis_url):
    key = _key("after")
    with captured(redis_url, key) as seen:
        r.set(key, "before")
    r.set(key, "after")
    r.delete(key)
    assert seen.names() == ["SET"]


def test_the_commands_inside_a_transaction_are_seen_one_by_one(r, redis_url):
    key = _key("pipe")
    with captured(redis_url, key) as seen:
        pipe = r.pipeline(transaction=True)
        pipe.incr(key)
        pipe.expire(key, 10)
        pipe.execute()
    r.delete(key)
    assert seen.names() == ["INCRBY", "EXPIRE"]  # what redis-py really sends; MULTI and EXEC name no key


def test_commands_a_lua_script_runs_are_marked_lua(r, redis_url):
    key = _key("lua")
    with captured(redis_url, key) as seen:
        r.eval("return redis.call('SET', KEYS[1], ARGV[1])", 1, key, "from lua")
    r.delete(key)
    lua = [c for c in seen.commands if c.client == "lua"]
    assert [c.name for c in lua] == ["SET"]
    assert lua[0].args[1:] == [key, "from lua"]  # a value with a space survives the quoting
    assert "EVAL" in seen.names()


def test_quotes_and_backslashes_in_values_survive(r, redis_url):
    key = _key("quote")
    value = 'say "hi" \\ bye'
    with captured(redis_url, key) as seen:
        r.set(key, value)
    r.delete(key)
    assert seen.commands[0].args[-1] == value


def test_commands_from_another_process_s_connection_are_seen(redis_url):
    """The services' commands are what a lesson wants to show: any client's commands count, not only ours."""
    import redis

    key = _key("elsewhere")
    with redis.Redis.from_url(redis_url, decode_responses=True) as elsewhere, captured(redis_url, key) as seen:
        elsewhere.set(key, "x", px=1_000)
    assert seen.names() == ["SET"]
    assert seen.commands[0].client.startswith("127.0.0.1:")
