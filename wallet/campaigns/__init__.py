"""Campaigns: who (a segment, or every member), what (a message, optionally an offer's coupon), when (at launch or
``send_at``), where (email, sms, push); the audience fixed at launch with a random holdout, the messages sent by the
worker from their outbox, one-click unsubscribes, opens and clicks of the members who agreed to be tracked, and the
report with the lift over the holdout."""
from .audience import UnknownSegment, audience_select, draw, launch
from .demo import NAME as DEMO_CAMPAIGN
from .demo import PASSWORD as DEMO_PASSWORD
from .demo import SHOPPERS as DEMO_SHOPPERS
from .demo import load_demo
from .editing import (
    FIELDS,
    create_campaign,
    delete_campaign,
    get_campaign,
    list_campaigns,
    messages_of,
    update_campaign,
)
from .models import CHANNELS, MESSAGE_STATUSES, STATUSES, Campaign, CampaignMessage, message_key
from .report import newcombe, report, wilson
from .sending import Claimed, Job, Outcome, claim, record, release
from .settings import MessageSettings
from .tracking import InvalidTrackingLink, MessageNotFound

__all__ = ["CHANNELS", "DEMO_CAMPAIGN", "DEMO_PASSWORD", "DEMO_SHOPPERS", "load_demo", "FIELDS", "MESSAGE_STATUSES", "STATUSES", "Campaign", "CampaignMessage", "Claimed", "InvalidTrackingLink", "Job",
           "MessageNotFound", "MessageSettings", "Outcome", "UnknownSegment", "audience_select", "claim", "create_campaign",
           "delete_campaign", "draw", "get_campaign", "launch", "list_campaigns", "message_key", "messages_of", "newcombe", "record",
           "release", "report", "update_campaign", "wilson"]
