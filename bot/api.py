"""The HTTP API for a shop's other systems: purchases in, a customer's profile out.

POST /api/purchases takes one purchase (a JSON object) or a batch (a list); a batch is
recorded whole or not at all. Every route but the OpenAPI description needs
`Authorization: Bearer <API_TOKEN>`; without API_TOKEN the API is switched off.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from aiohttp import web
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)
from sqlalchemy.exc import IntegrityError

from models.database import Database
from services.clock import Clock
from services.lookup import Lookup
from services.loyalty import Loyalty, PurchaseResult, Sale, SaleError

# A request body larger than this is refused with 413 before it is read.
MAX_BODY = 1024 * 1024
MAX_BATCH = 1000
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class PurchaseIn(BaseModel):
    """One sale, as the shop's system sends it."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    reference: str = Field(min_length=1, max_length=128)
    phone: str | None = Field(default=None, min_length=1, max_length=32)
    customer_id: StrictInt | None = Field(default=None, gt=0)
    telegram_id: StrictInt | None = Field(default=None, gt=0)
    amount: Decimal = Field(max_digits=14, decimal_places=2)
    currency: str | None = Field(default=None, pattern=r"^[A-Za-z]{3}$")
    occurred_at: datetime | None = None
    store: str | None = Field(default=None, max_length=64)
    refund_of: str | None = Field(default=None, min_length=1, max_length=128)

    @field_validator("amount", mode="before")
    @classmethod
    def _number_or_string(cls, value: object) -> object:
        if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
            raise ValueError('must be a decimal number or a string such as "199.00"')
        return value

    @field_validator("amount")
    @classmethod
    def _not_zero(cls, value: Decimal) -> Decimal:
        if value == 0:
            raise ValueError("must not be zero")
        return value

    @field_validator("occurred_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("needs a UTC offset, e.g. 2026-04-30T15:20:00+08:00")
        return value

    @model_validator(mode="after")
    def _one_buyer(self) -> PurchaseIn:
        given = [k for k in ("phone", "customer_id", "telegram_id") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError("give only one of phone, customer_id, telegram_id")
        if not given and self.amount > 0:
            raise ValueError("give one of phone, customer_id, telegram_id")
        if self.amount < 0 and self.refund_of is None:
            raise ValueError("a negative amount is a refund: give refund_of")
        if self.amount > 0 and self.refund_of is not None:
            raise ValueError("refund_of goes with a negative amount")
        return self


class FieldError(Exception):
    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("invalid request")
        self.errors = errors


def _problem(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status)


def _errors(error: ValidationError, index: int | None) -> list[dict[str, Any]]:
    found = []
    for item in error.errors():
        location = ".".join(str(p) for p in item["loc"]) or "body"
        message = str(item["msg"]).removeprefix("Value error, ")
        entry: dict[str, Any] = {"field": location, "message": message}
        if index is not None:
            entry = {"index": index, **entry}
        found.append(entry)
    return found


def _answer(result: PurchaseResult) -> dict[str, Any]:
    return {
        "purchase_id": result.purchase_id,
        "customer_id": result.customer_id,
        "points_awarded": result.points_awarded,
        "balance": result.balance,
        "status": "created" if result.created else "known",
    }


class PurchasesApi:
    def __init__(
        self,
        token: str | None,
        db: Database,
        loyalty: Loyalty,
        lookup: Lookup,
        clock: Clock,
        wake: Callable[[], None] | None = None,
    ) -> None:
        self.token = token
        self.db = db
        self.loyalty = loyalty
        self.lookup = lookup
        self.clock = clock
        self.wake = wake

    def guarded(self, handler: Handler) -> Handler:
        async def guard(request: web.Request) -> web.StreamResponse:
            if not self.token:
                return _problem(503, "the HTTP API is switched off: set API_TOKEN to use it")
            scheme, _, given = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                given.strip().encode(), self.token.encode()
            ):
                response = _problem(401, "a valid 'Authorization: Bearer <API_TOKEN>' is needed")
                response.headers["WWW-Authenticate"] = 'Bearer realm="carebot"'
                return response
            return await handler(request)

        return guard

    async def purchases(self, request: web.Request) -> web.StreamResponse:
        if request.content_length is not None and request.content_length > MAX_BODY:
            return _problem(413, f"the body is larger than {MAX_BODY} bytes")
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _problem(413, f"the body is larger than {MAX_BODY} bytes")
        try:
            body = json.loads(raw, parse_float=Decimal)
        except (ValueError, UnicodeDecodeError):
            return _problem(400, "the body is not valid JSON")
        batch = isinstance(body, list)
        items = body if batch else [body]
        if batch and not 1 <= len(items) <= MAX_BATCH:
            return _problem(422, f"a batch holds 1 to {MAX_BATCH} purchases", errors=[])
        try:
            sales = self._validate(items, batch)
            results = await self._record(sales, batch)
        except FieldError as error:
            return _problem(422, "some fields are not valid", errors=error.errors)
        created = any(r.created for r in results)
        if created and self.wake is not None:
            self.wake()
        status = 201 if created else 200
        payload: Any = [_answer(r) for r in results] if batch else _answer(results[0])
        return web.json_response(payload, status=status)

    def _validate(self, items: list[Any], batch: bool) -> list[Sale]:
        sales, errors = [], []
        now = self.clock.now()
        for index, item in enumerate(items):
            where = index if batch else None
            if not isinstance(item, dict):
                entry: dict[str, Any] = {"field": "body", "message": "a purchase is a JSON object"}
                errors.append(entry if where is None else {"index": where, **entry})
                continue
            try:
                given = PurchaseIn.model_validate(item)
            except ValidationError as error:
                errors.extend(_errors(error, where))
                continue
            sales.append(
                Sale(
                    reference=given.reference,
                    amount=given.amount,
                    occurred_at=given.occurred_at or now,
                    channel="api",
                    currency=given.currency,
                    phone=given.phone,
                    customer_id=given.customer_id,
                    telegram_id=given.telegram_id,
                    refund_of=given.refund_of,
                    store=given.store,
                )
            )
        if errors:
            raise FieldError(errors)
        return sales

    async def _record(self, sales: list[Sale], batch: bool) -> list[PurchaseResult]:
        """All in one transaction; a concurrent request recording the same reference makes
        ours fail on the unique reference, and a second try then finds theirs."""
        for attempt in range(2):
            try:
                async with self.db.transaction() as session:
                    results = []
                    for index, sale in enumerate(sales):
                        try:
                            results.append(await self.loyalty.record_in(session, sale))
                        except SaleError as error:
                            entry: dict[str, Any] = {"field": error.field, "message": error.reason}
                            raise FieldError(
                                [{"index": index, **entry} if batch else entry]
                            ) from None
                    return results
            except IntegrityError:
                if attempt:
                    raise
        raise AssertionError("unreachable")

    async def customer(self, request: web.Request) -> web.StreamResponse:
        raw = request.match_info["customer_id"]
        if not raw.isdigit() or len(raw) > 18:
            return _problem(
                422,
                "customer_id must be a whole number",
                errors=[{"field": "customer_id", "message": "must be a whole number"}],
            )
        card = await self.lookup.card(int(raw))
        if card is None:
            return _problem(404, f"no customer {raw}")
        customer, snapshot = card.customer, card.snapshot
        if customer.is_erased:
            return web.json_response({"id": customer.id, "erased": True})
        return web.json_response(
            {
                "id": customer.id,
                "erased": False,
                "telegram_id": customer.telegram_id,
                "username": customer.username,
                "name": customer.name,
                "phone": customer.phone,
                "birthday": customer.birthday.isoformat() if customer.birthday else None,
                "locale": customer.locale,
                "region": customer.region,
                "marketing_opt_in": customer.marketing_opt_in,
                "reachable": customer.reachable,
                "created_at": customer.created_at.isoformat(),
                "balance": card.summary.balance,
                "tier": card.summary.tier.key,
                "spend_12m": str(card.summary.spend_12m),
                "segment": snapshot.segment if snapshot else None,
                "abc_class": snapshot.abc_class if snapshot else None,
                "churn_risk": snapshot.churn_probability if snapshot else None,
                "purchases": card.purchase_count,
            }
        )

    async def openapi(self, _: web.Request) -> web.StreamResponse:
        return web.json_response(OPENAPI)


def add_api_routes(app: web.Application, api: PurchasesApi) -> None:
    app.router.add_post("/api/purchases", api.guarded(api.purchases))
    app.router.add_get("/api/customers/{customer_id}", api.guarded(api.customer))
    app.router.add_get("/api/openapi.json", api.openapi)


_ERROR = {
    "type": "object",
    "properties": {
        "error": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "index": {"type": "integer", "description": "position in a batch"},
                    "field": {"type": "string"},
                    "message": {"type": "string"},
                },
                "required": ["field", "message"],
            },
        },
    },
    "required": ["error"],
}
_PURCHASE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["reference", "amount"],
    "properties": {
        "reference": {
            "type": "string",
            "maxLength": 128,
            "description": "The shop's unique id for the sale; sending it again changes nothing.",
        },
        "phone": {"type": "string", "description": "The buyer's phone; give one buyer field."},
        "customer_id": {"type": "integer", "description": "The buyer's customer id."},
        "telegram_id": {"type": "integer", "description": "The buyer's Telegram user id."},
        "amount": {
            "oneOf": [{"type": "string"}, {"type": "number"}],
            "description": "Decimal, two places at most; negative = a refund of `refund_of`.",
            "examples": ["199.00"],
        },
        "currency": {"type": "string", "description": "ISO 4217; default from the policy."},
        "occurred_at": {
            "type": "string",
            "format": "date-time",
            "description": "ISO 8601 with offset; default now.",
        },
        "store": {"type": "string", "maxLength": 64},
        "refund_of": {"type": "string", "description": "The reference of the refunded sale."},
    },
}
_RESULT = {
    "type": "object",
    "properties": {
        "purchase_id": {"type": "integer"},
        "customer_id": {"type": ["integer", "null"], "description": "null: phone not linked yet"},
        "points_awarded": {"type": "integer"},
        "balance": {"type": ["integer", "null"]},
        "status": {"type": "string", "enum": ["created", "known"]},
    },
}


def _responses(ok: dict[str, Any]) -> dict[str, Any]:
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    return {
        **ok,
        "401": {"description": "No valid bearer token", "content": error},
        "503": {"description": "API_TOKEN is not set: the API is off", "content": error},
    }


OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "carebot API",
        "version": "1.0.0",
        "description": "Purchases from a shop's point of sale or ERP, and customer profiles.",
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {"Purchase": _PURCHASE, "PurchaseResult": _RESULT, "Error": _ERROR},
    },
    "security": [{"bearer": []}],
    "paths": {
        "/api/purchases": {
            "post": {
                "summary": "Record a purchase, or a batch of them (all or none)",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "oneOf": [
                                    {"$ref": "#/components/schemas/Purchase"},
                                    {
                                        "type": "array",
                                        "maxItems": MAX_BATCH,
                                        "items": {"$ref": "#/components/schemas/Purchase"},
                                    },
                                ]
                            }
                        }
                    },
                },
                "responses": _responses(
                    {
                        "201": {
                            "description": "Recorded (a batch: at least one was new)",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/PurchaseResult"}
                                }
                            },
                        },
                        "200": {"description": "Every reference was already recorded"},
                        "400": {"description": "The body is not JSON"},
                        "413": {"description": f"The body is over {MAX_BODY} bytes"},
                        "422": {
                            "description": "Fields to fix; nothing was recorded",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Error"}
                                }
                            },
                        },
                    }
                ),
            }
        },
        "/api/customers/{customer_id}": {
            "get": {
                "summary": "A customer's profile, points, tier, segment and churn risk",
                "parameters": [
                    {
                        "name": "customer_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "integer"},
                    }
                ],
                "responses": _responses(
                    {
                        "200": {"description": "The profile (only id and erased=true if erased)"},
                        "404": {"description": "No such customer"},
                    }
                ),
            }
        },
        "/api/openapi.json": {
            "get": {
                "summary": "This description",
                "security": [],
                "responses": {"200": {"description": "OpenAPI 3.1"}},
            }
        },
    },
}
