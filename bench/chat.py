"""Chat throughput and latency: simulated customers chatting with the real bot process,
against a bare aiogram echo bot as the baseline, both through the same local emulator.

    .venv/bin/python -m bench.chat --customers 100 1000 10000 --database sqlite
    .venv/bin/python -m bench.chat --customers 100 1000 10000 \\
        --database postgresql+asyncpg://postgres@127.0.0.1:5432/carebot_bench
    .venv/bin/python -m bench.plot

Every customer follows the same script: /start (not measured: it creates the customer),
their points, a complaint that opens a ticket in the staff group's forum, the post-purchase
survey answered question by question, then the cheap commands in turn (`--script cheap`:
only those). Two modes:

- closed: each customer sends the next step as soon as the answer to the last one arrived;
  the rate the bot reaches is its maximum throughput.
- open: each customer sends at random moments (exponential gaps of mean --interval
  seconds), so N customers offer a steady N / interval updates a second whatever the bot
  does; latency counts from the moment a step was due, so a late answer also delays what
  the customer would have sent next and that wait is counted too.

Latency is the time from the update being queued in the emulator (where getUpdates finds
it) to the bot's answer arriving there. The echo bot has no buttons, so it is sent the
button labels as text: the same number of updates. A PostgreSQL database given with
--database is emptied and migrated before each run: give a database kept for this.
Each run also reports the bot process's CPU time per update (from /proc), which holds
still when other work on the machine slows everything down, and with --profile DIR a
py-spy record of the bot over the measured part (raw stacks, one file per run).
Prints one JSON object per run and appends them to --out.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import random
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.fresh import carebot_command, fresh_database
from sandbox.emulator import Emulator

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "5000000001:bench-carebot-chat-throughput-000000"
STAFF_CHAT = -1009000000001
OWNER = 9_000_001
FIRST_CUSTOMER = 10_000_000
ANSWER_TIMEOUT = 300.0


@dataclass(frozen=True)
class Step:
    """Send `text`, or press the newest inline button whose label contains `press`."""

    text: str | None = None
    press: str | None = None

    def as_text(self) -> str:
        return self.text if self.text is not None else str(self.press)


# The words are those of the default policy and the zh templates.
VISIT = (
    Step("/points"),
    Step("/feedback"),
    Step(press="投诉"),
    Step("杯盖漏水，换了一个还是漏"),
    Step(press="提交"),
    Step("/survey"),
    Step(press="购物体验"),
    Step(press="4"),
    Step(press="9"),
    Step(press="服务"),
    Step("店员很热情"),
)
CHEAP = (Step("/help"), Step("/menu"), Step("/profile"), Step("/start"), Step("/points"))


def script(kind: str) -> Iterator[Step]:
    """`full`: the visit, then the cheap commands in turn; `cheap`: only those."""
    cheap = itertools.cycle(CHEAP)
    return itertools.chain(VISIT, cheap) if kind == "full" else cheap


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


class ScriptError(RuntimeError):
    """The bot did not answer as the script expects (no such button, no answer)."""


@dataclass
class Chat:
    """What one customer has seen: answers not yet read, and the newest buttons."""

    answers: asyncio.Queue[tuple[float, dict[str, Any]]] = field(default_factory=asyncio.Queue)
    buttons: list[tuple[int, str, str]] = field(default_factory=list)


class Load:
    """Customers acting through the emulator, each waiting for the bot's answer."""

    def __init__(self, emulator: Emulator, customers: int, script: str, *, buttons: bool) -> None:
        self.emulator = emulator
        self.script = script
        self.buttons = buttons
        self.ids = range(FIRST_CUSTOMER, FIRST_CUSTOMER + customers)
        self.chats = {user_id: Chat() for user_id in self.ids}
        self.latencies: list[float] = []
        # Customers whose script broke off: the bot answered something else (an apology
        # when a button press waited past Telegram's time to answer it) or nothing.
        self.broken: list[str] = []
        self.by_step: dict[str, list[float]] = {}
        self.last_answer = 0.0
        for user_id in self.ids:
            emulator.customer(user_id, f"C{user_id}", language_code="zh")

    async def route(self) -> None:
        """Hand each bot message to the chat it was sent to, stamped on arrival."""
        events = self.emulator.subscribe()
        try:
            while True:
                event = await events.get()
                chat = self.chats.get(event["chat_id"])
                if event["kind"] != "bot_message" or chat is None:
                    continue
                message = event["message"]
                pressable = [
                    (message["message_id"], label, data)
                    for row in message["buttons"]
                    for label, data in row
                ]
                if pressable:
                    chat.buttons = pressable
                chat.answers.put_nowait((time.perf_counter(), message))
        finally:
            self.emulator.unsubscribe(events)

    async def exchange(self, user_id: int, step: Step) -> float:
        """Take one step; the moment the first answer arrived."""
        chat = self.chats[user_id]
        if step.press is None or not self.buttons:
            self.emulator.user_sends_text(user_id, step.as_text())
        else:
            found = next((b for b in reversed(chat.buttons) if step.press in b[1]), None)
            if found is None:
                labels = [label for _, label, _ in chat.buttons]
                raise ScriptError(f"customer {user_id}: no button {step.press!r} in {labels}")
            self.emulator.user_presses(user_id, user_id, found[0], found[2])
        try:
            arrived, _ = await asyncio.wait_for(chat.answers.get(), ANSWER_TIMEOUT)
        except TimeoutError:
            raise ScriptError(f"customer {user_id}: no answer to {step} in time") from None
        self.last_answer = max(self.last_answer, arrived)
        return arrived

    async def warm_up(self) -> None:
        """Every customer's first /start creates their record; it is not measured."""
        await asyncio.gather(*(self.exchange(u, Step("/start")) for u in self.ids))

    async def closed(self, rounds: int) -> dict[str, Any]:
        async def customer(user_id: int) -> None:
            for step in itertools.islice(script(self.script), rounds):
                sent = time.perf_counter()
                self.record(step, await self.exchange(user_id, step) - sent)

        started = time.perf_counter()
        await asyncio.gather(*(self.until_broken(customer(u)) for u in self.ids))
        return self.figures(time.perf_counter() - started)

    async def open(self, interval: float, duration: float, seed: int) -> dict[str, Any]:
        rng = random.Random(seed)
        started = time.perf_counter()
        deadline = started + duration

        async def customer(user_id: int, gaps: list[float]) -> None:
            due = started
            for step, gap in zip(script(self.script), gaps, strict=False):
                due += gap
                if due >= deadline:
                    return
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
                self.record(step, await self.exchange(user_id, step) - due)

        # Drawn up front from one seeded generator: the same offered load on every run.
        def gaps() -> list[float]:
            count = int(duration / interval * 2) + 20
            return [rng.expovariate(1 / interval) for _ in range(count)]

        await asyncio.gather(*(self.until_broken(customer(u, gaps())) for u in self.ids))
        figures = self.figures(max(duration, self.last_answer - started))
        figures["offered_per_second"] = round(len(self.ids) / interval, 1)
        return figures

    async def until_broken(self, work: Coroutine[Any, Any, None]) -> None:
        try:
            await work
        except ScriptError as error:
            self.broken.append(str(error))

    def record(self, step: Step, latency: float) -> None:
        self.latencies.append(latency)
        self.by_step.setdefault(str(step.text or f"[{step.press}]"), []).append(latency)

    def unread(self) -> int:
        """Answers nobody waited for: a step the bot answered twice would show here."""
        return sum(chat.answers.qsize() for chat in self.chats.values())

    def figures(self, elapsed: float) -> dict[str, Any]:
        latencies = self.latencies
        return {
            "exchanges": len(latencies),
            "seconds": round(elapsed, 3),
            "updates_per_second": round(len(latencies) / elapsed, 1),
            "p50_ms": round(statistics.median(latencies) * 1000, 1),
            "p99_ms": round(percentile(latencies, 0.99) * 1000, 1),
            "max_ms": round(max(latencies) * 1000, 1),
            "broken_customers": len(self.broken),
            **({"broken_first": self.broken[0]} if self.broken else {}),
            "step_p50_ms": {
                name: round(statistics.median(values) * 1000, 1)
                for name, values in self.by_step.items()
            },
        }


async def start_bot(kind: str, emulator: Emulator, database: str, workdir: Path) -> Any:
    env = {
        **os.environ,
        "BOT_TOKEN": TOKEN,
        "TELEGRAM_API_URL": emulator.base_url,
        "HTTP_PORT": "0",
        "LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
    }
    if kind == "carebot":
        env.update(DATABASE_URL=database, STAFF_CHAT_ID=str(STAFF_CHAT), ADMIN_IDS=str(OWNER))
        command = [carebot_command(), "run"]
    else:
        command = [sys.executable, str(ROOT / "bench" / "echo_bot.py")]
    process = await asyncio.create_subprocess_exec(*command, env=env, cwd=workdir)
    ready = await emulator.until(lambda: emulator.calls["getUpdates"] > 0 or None, 60)
    if ready is None:
        process.kill()
        raise RuntimeError(f"{kind} did not start polling")
    return process


async def start_profiler(pid: int, output: Path) -> Any:
    """py-spy on the bot for the measured part: raw stacks per thread, idle ones included,
    so the share of time the event loop waits shows too."""
    py_spy = Path(sys.executable).with_name("py-spy")
    return await asyncio.create_subprocess_exec(
        str(py_spy), "record", "--pid", str(pid), "--rate", "200", "--format", "raw",
        "--threads", "--idle", "--nonblocking", "--output", str(output),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip


@dataclass(frozen=True)
class Run:
    mode: str
    script: str
    customers: int
    database: str
    rounds: int
    interval: float
    duration: float
    seed: int
    profile: Path | None


async def measure(kind: str, run: Run) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        url = run.database
        if run.database == "sqlite":
            url = f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
        elif kind == "carebot":
            await fresh_database(url)
        async with Emulator() as emulator:
            staff = emulator.staff_group(STAFF_CHAT, "Staff", forum=True)
            process = await start_bot(kind, emulator, url, workdir)
            load = Load(emulator, run.customers, run.script, buttons=kind == "carebot")
            router = asyncio.create_task(load.route())
            profiler = None
            try:
                await load.warm_up()
                if run.profile is not None and kind == "carebot":
                    database = database_name(run.database)
                    name = f"carebot-{run.mode}-{run.script}-{database}-{run.customers}.txt"
                    profiler = await start_profiler(process.pid, run.profile / name)
                cpu_before = cpu_seconds(process.pid)
                if run.mode == "closed":
                    figures = await load.closed(run.rounds)
                else:
                    figures = await load.open(run.interval, run.duration, run.seed)
                cpu = cpu_seconds(process.pid) - cpu_before
                figures["bot_cpu_ms_per_update"] = round(cpu * 1000 / figures["exchanges"], 2)
                figures["staff_topics"] = len(staff.topics)
                figures["unexpected_messages"] = load.unread()
            finally:
                if profiler is not None:
                    profiler.send_signal(signal.SIGINT)
                    await profiler.wait()
                router.cancel()
                process.terminate()
                await process.wait()
    return {
        "bot": kind,
        "mode": run.mode,
        "script": run.script,
        "customers": run.customers,
        "database": database_name(run.database),
        **({"rounds": run.rounds} if run.mode == "closed" else {"interval_s": run.interval}),
        **figures,
    }


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) the process has used so far, from Linux's /proc: what
    each update costs the bot, whatever else the machine is running."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def database_name(database: str) -> str:
    return "sqlite" if database == "sqlite" else "postgresql"


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--customers", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--database", default="sqlite", help="sqlite, or a PostgreSQL URL")
    parser.add_argument("--mode", nargs="+", choices=["closed", "open"], default=["closed", "open"])
    parser.add_argument("--script", choices=["full", "cheap"], default="full")
    parser.add_argument("--rounds", type=int, default=15, help="closed: steps per customer")
    parser.add_argument("--interval", type=float, default=10.0, help="open: mean gap, seconds")
    parser.add_argument("--duration", type=float, default=60.0, help="open: seconds of load")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--profile", type=Path, help="write py-spy stacks of carebot here")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "chat.jsonl")
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    with args.out.open("a", encoding="utf-8") as out:
        for customers in args.customers:
            for mode in args.mode:
                run = Run(
                    mode, args.script, customers, args.database, args.rounds, args.interval,
                    args.duration, args.seed, args.profile,
                )  # fmt: skip
                runs = [await measure("echo", run), await measure("carebot", run)]
                ratio = runs[1]["updates_per_second"] / runs[0]["updates_per_second"]
                for result in runs:
                    result["ratio_to_echo"] = round(ratio, 3) if result["bot"] == "carebot" else 1.0
                    result["at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
                    line = json.dumps(result)
                    print(line, flush=True)
                    out.write(line + "\n")


if __name__ == "__main__":
    asyncio.run(main())
