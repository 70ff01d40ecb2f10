"""Satisfaction surveys (满意度调查): definitions from the policy, one response per customer
per instance answered question by question, resumed where it stopped, and the results."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import delete, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from models import Survey, SurveyAnswer, SurveyQuestion, SurveyResponse
from models.database import Database
from services.clock import Clock
from services.policy import SurveySpec

log = logging.getLogger(__name__)

RANGES = {"rating": (1, 5), "nps": (0, 10)}
TEXT_LIMIT = 2000
# The instance of a survey a customer starts themselves with /survey.
SELF_STARTED = "open"


class ResponseStatus(StrEnum):
    INVITED = "invited"
    STARTED = "started"
    COMPLETED = "completed"


def in_locale(texts: dict[str, str], locale: str) -> str:
    """A survey's text in `locale`, else in whichever language it was written."""
    return texts.get(locale) or next(iter(texts.values()), "")


@dataclass(frozen=True)
class Question:
    id: int
    position: int
    kind: str
    text: dict[str, str]
    choices: tuple[dict[str, str], ...]
    optional: bool

    def label(self, locale: str) -> str:
        return in_locale(self.text, locale)

    def choice_labels(self, locale: str) -> list[str]:
        return [c.get(locale) or c.get("key", "") for c in self.choices]

    def accepts(self, value: int) -> bool:
        if self.kind == "choice":
            return 0 <= value < len(self.choices)
        low, high = RANGES.get(self.kind, (1, 0))
        return low <= value <= high


@dataclass(frozen=True)
class Step:
    """Where a response stands: the next question (None once complete) and progress."""

    response_id: int
    survey_key: str
    title: dict[str, str]
    question: Question | None
    number: int  # 1-based position of `question` among all questions
    total: int

    @property
    def completed(self) -> bool:
        return self.question is None

    def title_in(self, locale: str) -> str:
        return in_locale(self.title, locale)


@dataclass(frozen=True)
class Offer:
    """A survey /survey can offer the customer, possibly already half answered."""

    survey_id: int
    key: str
    title: dict[str, str]
    response_id: int | None
    answered: int
    total: int

    def title_in(self, locale: str) -> str:
        return in_locale(self.title, locale)


class Status(StrEnum):
    OK = "ok"
    CLOSED = "closed"  # the survey no longer takes answers
    COMPLETED = "completed"  # this response is finished already
    ALREADY = "already"  # that question was answered before
    NOT_CURRENT = "not_current"  # not the question being asked now
    OUT_OF_RANGE = "out_of_range"
    REQUIRED = "required"  # an answer is needed, skipping is not allowed
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Result:
    status: Status
    step: Step | None = None


@dataclass(frozen=True)
class QuestionResult:
    position: int
    kind: str
    text: dict[str, str]
    answers: int
    average: float | None = None
    distribution: dict[int, int] = field(default_factory=dict)
    nps: float | None = None  # % promoters (9-10) - % detractors (0-6)
    choices: dict[str, int] = field(default_factory=dict)
    texts: tuple[str, ...] = ()


@dataclass(frozen=True)
class SurveyResults:
    key: str
    title: dict[str, str]
    responses: int
    completed: int
    questions: tuple[QuestionResult, ...]


class Surveys:
    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    # --- definitions ---------------------------------------------------------------------

    async def sync(self, specs: Sequence[SurveySpec]) -> int:
        """Create the policy's surveys that do not exist yet, by key; how many. For those
        that do, titles and question texts follow the policy; their questions change only
        while nobody has answered, so earlier answers keep their meaning."""
        created = 0
        now = self.clock.now()
        for spec in specs:
            try:
                async with self.db.transaction() as session:
                    survey = await session.scalar(select(Survey).where(Survey.key == spec.key))
                    if survey is None:
                        survey = Survey(
                            key=spec.key,
                            title=spec.title.model_dump(),
                            trigger=spec.trigger,
                            created_at=now,
                        )
                        session.add(survey)
                        await session.flush()
                        _add_questions(session, survey.id, spec)
                        created += 1
                    else:
                        await self._update(session, survey, spec)
            except IntegrityError:
                # Another instance created it at the same moment: theirs stands.
                continue
        return created

    async def _update(self, session: AsyncSession, survey: Survey, spec: SurveySpec) -> None:
        survey.title = spec.title.model_dump()
        survey.trigger = spec.trigger
        questions = list(
            await session.scalars(
                select(SurveyQuestion)
                .where(SurveyQuestion.survey_id == survey.id)
                .order_by(SurveyQuestion.position)
            )
        )
        same_shape = [(q.kind, len(q.choices or [])) for q in questions] == [
            (q.kind, len(q.choices)) for q in spec.questions
        ]
        if same_shape:
            for row, question in zip(questions, spec.questions, strict=True):
                row.text = question.text.model_dump()
                row.choices = [c.model_dump() for c in question.choices] or None
                row.optional = question.optional
            return
        answered = await session.scalar(
            select(func.count())
            .select_from(SurveyResponse)
            .where(SurveyResponse.survey_id == survey.id)
        )
        if answered:
            log.warning(
                "survey %s has responses: its questions stay as they are; give the changed "
                "survey a new key to ask the new questions",
                survey.key,
            )
            return
        await session.execute(delete(SurveyQuestion).where(SurveyQuestion.survey_id == survey.id))
        await session.flush()
        _add_questions(session, survey.id, spec)

    async def close(self, key: str, at: datetime | None = None) -> bool:
        """Stop taking answers (now, or at `at`); whether the survey exists."""
        async with self.db.transaction() as session:
            survey = await session.scalar(select(Survey).where(Survey.key == key))
            if survey is None:
                return False
            survey.closes_at = at or self.clock.now()
            return True

    async def reopen(self, key: str) -> bool:
        async with self.db.transaction() as session:
            survey = await session.scalar(select(Survey).where(Survey.key == key))
            if survey is None:
                return False
            survey.closes_at = None
            return True

    # --- answering -----------------------------------------------------------------------

    async def offers(self, customer_id: int) -> list[Offer]:
        """What /survey shows: every open survey the customer has not completed on their
        own, and any survey they were invited to or began and did not finish."""
        now = self.clock.now()
        async with self.db.session() as session:
            surveys = list(
                await session.scalars(select(Survey).where(_open(now)).order_by(Survey.id))
            )
            responses = list(
                await session.scalars(
                    select(SurveyResponse).where(
                        SurveyResponse.customer_id == customer_id,
                        SurveyResponse.survey_id.in_([s.id for s in surveys]),
                    )
                )
            )
            counts = await _counts(session, SurveyQuestion.survey_id, [s.id for s in surveys])
            answered = await _counts(session, SurveyAnswer.response_id, [r.id for r in responses])
        offers: list[Offer] = []
        for survey in surveys:
            mine = [r for r in responses if r.survey_id == survey.id]
            unfinished = [r for r in mine if r.status != ResponseStatus.COMPLETED]
            for response in sorted(unfinished, key=lambda r: r.id):
                offers.append(
                    Offer(
                        survey.id,
                        survey.key,
                        survey.title,
                        response.id,
                        answered.get(response.id, 0),
                        counts.get(survey.id, 0),
                    )
                )
            if not any(r.instance == SELF_STARTED for r in mine):
                offers.append(
                    Offer(survey.id, survey.key, survey.title, None, 0, counts.get(survey.id, 0))
                )
        return offers

    async def invite(self, customer_id: int, survey_key: str, instance: str) -> int | None:
        """A response waiting for the customer (a job's post-purchase survey, say); its id,
        or None when the survey is closed or this instance was already asked."""
        now = self.clock.now()
        try:
            async with self.db.transaction() as session:
                survey = await session.scalar(
                    select(Survey).where(Survey.key == survey_key, _open(now))
                )
                if survey is None:
                    return None
                response = SurveyResponse(
                    survey_id=survey.id,
                    customer_id=customer_id,
                    instance=instance[:64],
                    status=ResponseStatus.INVITED,
                    started_at=now,
                )
                session.add(response)
                await session.flush()
                return response.id
        except IntegrityError:
            return None

    async def begin(self, customer_id: int, survey_id: int) -> Result:
        """Start (or go on with) the customer's own response to a survey."""
        now = self.clock.now()
        try:
            async with self.db.transaction() as session:
                survey = await session.get(Survey, survey_id)
                if survey is None:
                    return Result(Status.UNKNOWN)
                response = await session.scalar(
                    select(SurveyResponse).where(
                        SurveyResponse.survey_id == survey_id,
                        SurveyResponse.customer_id == customer_id,
                        SurveyResponse.instance == SELF_STARTED,
                    )
                )
                if response is None:
                    if not _is_open(survey, now):
                        return Result(Status.CLOSED)
                    response = SurveyResponse(
                        survey_id=survey_id,
                        customer_id=customer_id,
                        instance=SELF_STARTED,
                        status=ResponseStatus.STARTED,
                        started_at=now,
                    )
                    session.add(response)
                    await session.flush()
                response_id = response.id
        except IntegrityError:
            return await self.begin(customer_id, survey_id)
        return await self.resume(customer_id, response_id)

    async def resume(self, customer_id: int, response_id: int) -> Result:
        """The question a response stopped at."""
        async with self.db.transaction() as session:
            loaded = await _load(session, customer_id, response_id)
            if loaded is None:
                return Result(Status.UNKNOWN)
            response, survey = loaded
            step = await _step(session, response, survey)
            if step.completed:
                return Result(Status.COMPLETED, step)
            if not _is_open(survey, self.clock.now()):
                return Result(Status.CLOSED, step)
            if response.status == ResponseStatus.INVITED:
                response.status = ResponseStatus.STARTED
            return Result(Status.OK, step)

    async def answer(
        self,
        customer_id: int,
        response_id: int,
        question_id: int,
        *,
        value: int | None = None,
        text: str | None = None,
        skip: bool = False,
    ) -> Result:
        """Record the answer to the question being asked and move on. Everything is
        checked: whose response, the survey still open, the question the current one, the
        value in its range; anything else changes nothing."""
        now = self.clock.now()
        try:
            async with self.db.transaction() as session:
                loaded = await _load(session, customer_id, response_id)
                if loaded is None:
                    return Result(Status.UNKNOWN)
                response, survey = loaded
                step = await _step(session, response, survey)
                if step.completed:
                    return Result(Status.COMPLETED, step)
                if not _is_open(survey, now):
                    return Result(Status.CLOSED, step)
                question = step.question
                assert question is not None
                if question.id != question_id:
                    done = await session.scalar(
                        select(SurveyAnswer.id).where(
                            SurveyAnswer.response_id == response.id,
                            SurveyAnswer.question_id == question_id,
                        )
                    )
                    return Result(Status.ALREADY if done else Status.NOT_CURRENT, step)
                problem = _check(question, value, text, skip)
                if problem is not None:
                    return Result(problem, step)
                session.add(
                    SurveyAnswer(
                        response_id=response.id,
                        question_id=question.id,
                        value=None if skip or question.kind == "text" else value,
                        text=None if skip or text is None else text.strip()[:TEXT_LIMIT],
                        created_at=now,
                    )
                )
                await session.flush()
                response.status = ResponseStatus.STARTED
                following = await _step(session, response, survey)
                if following.completed:
                    response.status = ResponseStatus.COMPLETED
                    response.completed_at = now
                return Result(Status.OK, following)
        except IntegrityError:
            # The same button pressed twice at once: the first press counted.
            return Result(Status.ALREADY, await self._step_of(customer_id, response_id))

    async def _step_of(self, customer_id: int, response_id: int) -> Step | None:
        async with self.db.session() as session:
            loaded = await _load(session, customer_id, response_id)
            return await _step(session, *loaded) if loaded else None

    # --- results -------------------------------------------------------------------------

    async def results(
        self, key: str, start: datetime | None = None, end: datetime | None = None
    ) -> SurveyResults | None:
        """Per question: average and distribution of ratings (CSAT), NPS (% promoters minus
        % detractors), counts per choice, and the free-text answers; over responses begun in
        [start, end) when given."""
        async with self.db.session() as session:
            survey = await session.scalar(select(Survey).where(Survey.key == key))
            if survey is None:
                return None
            window = [SurveyResponse.survey_id == survey.id]
            if start is not None:
                window.append(SurveyResponse.started_at >= start)
            if end is not None:
                window.append(SurveyResponse.started_at < end)
            statuses = list(await session.scalars(select(SurveyResponse.status).where(*window)))
            questions = list(
                await session.scalars(
                    select(SurveyQuestion)
                    .where(SurveyQuestion.survey_id == survey.id)
                    .order_by(SurveyQuestion.position)
                )
            )
            rows = (
                await session.execute(
                    select(SurveyAnswer.question_id, SurveyAnswer.value, SurveyAnswer.text)
                    .join(SurveyResponse, SurveyResponse.id == SurveyAnswer.response_id)
                    .where(*window)
                    .order_by(SurveyAnswer.id)
                )
            ).all()
        by_question: dict[int, list[tuple[int | None, str | None]]] = {}
        for question_id, value, text in rows:
            by_question.setdefault(question_id, []).append((value, text))
        return SurveyResults(
            key=survey.key,
            title=survey.title,
            responses=len(statuses),
            completed=sum(s == ResponseStatus.COMPLETED for s in statuses),
            questions=tuple(_summarise(q, by_question.get(q.id, [])) for q in questions),
        )


def _add_questions(session: AsyncSession, survey_id: int, spec: SurveySpec) -> None:
    for position, question in enumerate(spec.questions, start=1):
        session.add(
            SurveyQuestion(
                survey_id=survey_id,
                position=position,
                kind=question.kind,
                text=question.text.model_dump(),
                choices=[c.model_dump() for c in question.choices] or None,
                optional=question.optional,
            )
        )


def _open(now: datetime) -> Any:
    return (or_(Survey.opens_at.is_(None), Survey.opens_at <= now)) & (
        or_(Survey.closes_at.is_(None), Survey.closes_at > now)
    )


def _is_open(survey: Survey, now: datetime) -> bool:
    return (survey.opens_at is None or survey.opens_at <= now) and (
        survey.closes_at is None or survey.closes_at > now
    )


async def _load(
    session: AsyncSession, customer_id: int, response_id: int
) -> tuple[SurveyResponse, Survey] | None:
    response = await session.get(SurveyResponse, response_id)
    if response is None or response.customer_id != customer_id:
        return None
    survey = await session.get(Survey, response.survey_id)
    assert survey is not None
    return response, survey


async def _step(session: AsyncSession, response: SurveyResponse, survey: Survey) -> Step:
    questions = list(
        await session.scalars(
            select(SurveyQuestion)
            .where(SurveyQuestion.survey_id == survey.id)
            .order_by(SurveyQuestion.position)
        )
    )
    done = set(
        await session.scalars(
            select(SurveyAnswer.question_id).where(SurveyAnswer.response_id == response.id)
        )
    )
    for number, row in enumerate(questions, start=1):
        if row.id not in done:
            question = Question(
                row.id,
                row.position,
                row.kind,
                row.text,
                tuple(row.choices or ()),
                row.optional,
            )
            return Step(response.id, survey.key, survey.title, question, number, len(questions))
    return Step(response.id, survey.key, survey.title, None, len(questions), len(questions))


def _check(question: Question, value: int | None, text: str | None, skip: bool) -> Status | None:
    if skip:
        return None if question.optional else Status.REQUIRED
    if question.kind == "text":
        return None if text is not None and text.strip() else Status.OUT_OF_RANGE
    if value is None or not question.accepts(value):
        return Status.OUT_OF_RANGE
    return None


async def _counts(
    session: AsyncSession, key: InstrumentedAttribute[int], ids: list[int]
) -> dict[int, int]:
    """Rows per value of `key` among `ids` (questions per survey, answers per response)."""
    if not ids:
        return {}
    rows = await session.execute(select(key, func.count()).where(key.in_(ids)).group_by(key))
    return {value: count for value, count in rows.all()}


def _summarise(
    question: SurveyQuestion, answers: list[tuple[int | None, str | None]]
) -> QuestionResult:
    values = [v for v, _ in answers if v is not None]
    base: dict[str, Any] = {
        "position": question.position,
        "kind": question.kind,
        "text": question.text,
        "answers": len(values) if question.kind != "text" else sum(1 for _, t in answers if t),
    }
    if question.kind == "rating":
        counts = Counter(values)
        return QuestionResult(
            **base,
            average=sum(values) / len(values) if values else None,
            distribution={score: counts.get(score, 0) for score in range(1, 6)},
        )
    if question.kind == "nps":
        counts = Counter(values)
        promoters = sum(v >= 9 for v in values)
        detractors = sum(v <= 6 for v in values)
        return QuestionResult(
            **base,
            average=sum(values) / len(values) if values else None,
            distribution={score: counts.get(score, 0) for score in range(0, 11)},
            nps=100 * (promoters - detractors) / len(values) if values else None,
        )
    if question.kind == "choice":
        keys = [c.get("key", str(i)) for i, c in enumerate(question.choices or [])]
        counts = Counter(values)
        return QuestionResult(
            **base, choices={key: counts.get(index, 0) for index, key in enumerate(keys)}
        )
    return QuestionResult(**base, texts=tuple(t for _, t in answers if t))
