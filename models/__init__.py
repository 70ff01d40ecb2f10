"""SQLAlchemy models; importing this package registers every table on the metadata."""

from models.base import Base
from models.campaigns import Campaign, CampaignStatus
from models.customers import Customer
from models.inbox import InboxStatus, InboxUpdate
from models.jobs import JobRun
from models.loyalty import PointsEntry, Purchase
from models.outreach import OutboxMessage, OutboxStatus
from models.rewards import Coupon, CouponStatus, RewardStock
from models.segments import SegmentSnapshot
from models.service_desk import OfferStatus, RecoveryOffer, StaffTopic
from models.staff import AuditEntry, Role, StaffMember
from models.surveys import Survey, SurveyAnswer, SurveyQuestion, SurveyResponse
from models.tickets import Ticket, TicketKind, TicketMessage, TicketStatus

__all__ = [
    "AuditEntry",
    "Base",
    "Campaign",
    "CampaignStatus",
    "Coupon",
    "CouponStatus",
    "Customer",
    "InboxStatus",
    "InboxUpdate",
    "JobRun",
    "OfferStatus",
    "OutboxMessage",
    "OutboxStatus",
    "PointsEntry",
    "Purchase",
    "RecoveryOffer",
    "RewardStock",
    "Role",
    "SegmentSnapshot",
    "StaffMember",
    "StaffTopic",
    "Survey",
    "SurveyAnswer",
    "SurveyQuestion",
    "SurveyResponse",
    "Ticket",
    "TicketKind",
    "TicketMessage",
    "TicketStatus",
]
