"""Log lines are written once per turn of the event loop (``services/platform/app.py:OneWritePerLoopTurn``):
lines logged in one turn reach the file together, right after it; a warning, and a line logged where no
event loop runs, reach it at once."""

from __future__ import annotations

import asyncio
import logging
import os

from services.platform.app import LogFormatter, OneWritePerLoopTurn


def _logger(path, name: str):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    handler = OneWritePerLoopTurn(fd)
    handler.setFormatter(LogFormatter())
    log = logging.getLogger(name)
    log.handlers, log.propagate, log.level = [handler], False, logging.INFO
    return log, handler, fd


def test_lines_of_one_loop_turn_are_written_together_right_after_it(tmp_path):
    path = tmp_path / "service.log"
    log, handler, fd = _logger(path, "lab.test.batched")

    async def one_turn():
        for i in range(3):
            log.info("GET /policies/%d 200", i)
        written_during_the_turn = path.read_text()
        await asyncio.sleep(0)  # the loop runs what was ready: the scheduled flush among it
        await asyncio.sleep(0)
        return written_during_the_turn, path.read_text()

    try:
        during, after = asyncio.run(one_turn())
    finally:
        handler.close()
        os.close(fd)
    assert during == ""
    assert [line.split(" lab.test.batched ")[1] for line in after.splitlines()] == [
        f"GET /policies/{i} 200" for i in range(3)]


def test_a_warning_and_a_line_outside_the_loop_are_written_at_once(tmp_path):
    path = tmp_path / "service.log"
    log, handler, fd = _logger(path, "lab.test.at_once")
    try:
        log.info("no loop here")
        assert "no loop here" in path.read_text()

        async def warn():
            log.warning("Redis is unreachable")
            return path.read_text()
        assert "WARNING lab.test.at_once Redis is unreachable" in asyncio.run(warn())
    finally:
        handler.close()
        os.close(fd)
