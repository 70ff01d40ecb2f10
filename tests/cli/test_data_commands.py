"""`carebot import` and `carebot export` on the command line."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from bot.cli import app
from models import Customer, Purchase
from models.database import Database


@pytest.fixture
def run(database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CliRunner:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.delenv("CAREBOT_POLICY", raising=False)
    return CliRunner()


def counts(database_url: str) -> tuple[int, int]:
    async def read() -> tuple[int, int]:
        db = Database(database_url)
        try:
            async with db.session() as session:
                customers = await session.scalar(select(func.count(Customer.id)))
                purchases = await session.scalar(select(func.count(Purchase.id)))
        finally:
            await db.close()
        return int(customers or 0), int(purchases or 0)

    return asyncio.run(read())


def write(tmp_path: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def test_import_customers_then_purchases_and_again(
    run: CliRunner, tmp_path: Path, database_url: str
) -> None:
    people = write(
        tmp_path,
        "customers.csv",
        "phone,name,birthday,locale,region,marketing_opt_in\n"
        "13800138701,张伟,1985-07-01,zh,上海,true\n13800138702,Amy,,en,,false\n",
        "gb18030",
    )
    result = run.invoke(app, ["import", "customers", str(people), "--encoding", "gb18030"])
    assert result.exit_code == 0, result.output
    assert "2 new customers" in result.stdout
    sales = write(
        tmp_path,
        "sales.csv",
        "reference,phone,amount,occurred_at,store\n"
        "C-1,13800138701,300,2026-03-01T12:00:00+08:00,Main\n"
        "C-2,13800138702,45.5,2026-03-02,\n",
    )
    first = run.invoke(app, ["import", "purchases", str(sales)])
    assert first.exit_code == 0, first.output
    assert "2 new purchases, 0 already recorded, 345 points awarded" in first.stdout
    second = run.invoke(app, ["import", "purchases", str(sales)])
    assert "0 new purchases, 2 already recorded, 0 points awarded" in second.stdout
    assert counts(database_url) == (2, 2)


def test_a_bad_file_is_refused_with_its_lines(
    run: CliRunner, tmp_path: Path, database_url: str
) -> None:
    sales = write(
        tmp_path,
        "bad.csv",
        "reference,customer_id,amount\nA-1,,10\nA-2,1,10,extra\nA-3,abc,-1\n",
    )
    result = run.invoke(app, ["import", "purchases", str(sales)])
    assert result.exit_code == 1
    assert f"{sales}:2: phone: give one of phone, customer_id, telegram_id" in result.stderr
    assert f"{sales}:3: has 4 fields, the header has 3" in result.stderr
    assert f"{sales}:4: refund_of: a negative amount is a refund" in result.stderr
    assert f"{sales}:4: customer_id: is not a whole number" in result.stderr
    assert "Nothing imported: 4 problem(s) in 3 rows" in result.stderr
    assert counts(database_url) == (0, 0)
    missing = run.invoke(app, ["import", "purchases", str(tmp_path / "nope.csv")])
    assert missing.exit_code == 2


def test_export_writes_a_bom_file_or_plain_stdout(run: CliRunner, tmp_path: Path) -> None:
    people = write(tmp_path, "c.csv", "phone,name\n13800138703,李娜\n")
    assert run.invoke(app, ["import", "customers", str(people)]).exit_code == 0
    out = tmp_path / "out.csv"
    result = run.invoke(app, ["export", "customers", str(out)])
    assert result.exit_code == 0 and "Wrote 1 rows" in result.stdout
    data = out.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf") and "李娜".encode() in data
    shown = run.invoke(app, ["export", "customers", "--summary"])
    assert shown.stdout.splitlines()[:2] == ["dimension,value,customers", "all,,1"]
    assert "李娜" not in shown.stdout
    assert run.invoke(app, ["export", "secrets"]).exit_code == 2
