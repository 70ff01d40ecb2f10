"""SQLAlchemy models; importing this package registers every table on the metadata."""

from models.base import Base
from models.customers import Customer
from models.inbox import InboxStatus, InboxUpdate
from models.loyalty import PointsEntry, Purchase
from models.outreach import OutboxMessage, OutboxStatus
from models.segments import SegmentSnapshot
from models.staff import AuditEntry, Role, StaffMember
from models.surveys import Survey, SurveyAnswer, SurveyQuestion, SurveyResponse
from models.tickets import Ticket, TicketKind, TicketMessage, TicketStatus

__all__ = [
    "AuditEntry",
    "Base",
    "Customer",
    "InboxStatus",
    "InboxUpdate",
    "OutboxMessage",
    "OutboxStatus",
    "PointsEntry",
    "Purchase",
    "Role",
    "SegmentSnapshot",
    "StaffMember",
    "Survey",
    "SurveyAnswer",
    "SurveyQuestion",
    "SurveyResponse",
    "Ticket",
    "TicketKind",
    "TicketMessage",
    "TicketStatus",
]
