"""The Python side of bench/temporal.sh: Temporal's own Python SDK (on the same Rust core) doing
the no-op work of worker.php, on task queue argv[2]. Usage: py_worker.py ADDRESS TASK_QUEUE SLOTS"""
import asyncio, sys
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Worker


@activity.defn(name="noop")
async def noop(s: str) -> str:
    return s


@workflow.defn(name="OneActivity")
class OneActivity:
    @workflow.run
    async def run(self, s: str) -> str:
        return await workflow.execute_activity("noop", s, start_to_close_timeout=timedelta(seconds=10))


@workflow.defn(name="Activities")
class Activities:
    @workflow.run
    async def run(self, n: int) -> int:
        for _ in range(n):
            await workflow.execute_activity("noop", "x", start_to_close_timeout=timedelta(seconds=10))
        return n


async def main():
    address, queue, slots = sys.argv[1], sys.argv[2], int(sys.argv[3])
    client = await Client.connect(address)
    worker = Worker(client, task_queue=queue, workflows=[OneActivity, Activities], activities=[noop], max_concurrent_activities=slots)
    print("ready", flush=True)
    await worker.run()


if __name__ == "__main__":  # the workflow sandbox imports this module again
    asyncio.run(main())
