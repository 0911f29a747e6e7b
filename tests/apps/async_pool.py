"""GPUStack's shape: SQLAlchemy create_async_engine (asyncpg) at its default pool (5 + 10), each request
holding its session through seconds of "inference", under more concurrent requests than the pool has.

    python -m tests.apps.async_pool URL APPLICATION_NAME TASKS HOLD_S RUN_S [POOL_SIZE MAX_OVERFLOW TIMEOUT_S]

With the pool arguments (`recommend`'s pool applied), the engine gets them; at the end it prints
`requests=N errors=M` (an error: a pool timeout or any other failed request). Loopback only; ends by
itself after RUN_S seconds (the test also stops it).
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine


async def main(url: str, app: str, tasks: int, hold_s: float, run_s: float, pool: list[str]) -> None:
    kwargs: dict[str, Any] = {}
    if pool:
        kwargs = {"pool_size": int(pool[0]), "max_overflow": int(pool[1]), "pool_timeout": float(pool[2])}
    engine = create_async_engine(url, connect_args={"server_settings": {"application_name": app}}, **kwargs)
    end = time.monotonic() + run_s
    done = [0, 0]  # requests, errors

    async def request() -> None:
        while time.monotonic() < end:
            try:
                async with AsyncSession(engine) as session:
                    await session.execute(text("SELECT count(*) FROM pg_class"))
                    await asyncio.sleep(hold_s)  # "inference", the session (and its transaction) held
            except Exception as e:  # a pool timeout (sqlalchemy.exc.TimeoutError) or a refused connection
                done[1] += 1
                print(f"error: {type(e).__name__}: {str(e)[:200]}", file=sys.stderr, flush=True)
            done[0] += 1

    print("ready", flush=True)
    try:
        await asyncio.wait_for(asyncio.gather(*(request() for _ in range(tasks))), run_s + 60)
    finally:
        await engine.dispose()
        print(f"requests={done[0]} errors={done[1]}", flush=True)


if __name__ == "__main__":
    asyncio.run(
        main(
            sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), sys.argv[6:9]
        )
    )
