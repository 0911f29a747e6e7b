"""GPUStack's shape: SQLAlchemy create_async_engine (asyncpg) at its default pool (5 + 10), each request
holding its session through seconds of "inference", under more concurrent requests than the pool has.

    python -m tests.apps.async_pool URL APPLICATION_NAME TASKS HOLD_S RUN_S

Loopback only; ends by itself after RUN_S seconds (the test also stops it).
"""

from __future__ import annotations

import asyncio
import sys
import time

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine


async def main(url: str, app: str, tasks: int, hold_s: float, run_s: float) -> None:
    engine = create_async_engine(url, connect_args={"server_settings": {"application_name": app}})
    end = time.monotonic() + run_s

    async def request() -> None:
        while time.monotonic() < end:
            async with AsyncSession(engine) as session:
                await session.execute(text("SELECT count(*) FROM pg_class"))
                await asyncio.sleep(hold_s)  # "inference", the session (and its transaction) held

    print("ready", flush=True)
    try:
        await asyncio.wait_for(asyncio.gather(*(request() for _ in range(tasks))), run_s + 60)
    finally:
        await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])))
