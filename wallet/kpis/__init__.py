"""KPIs: the club's figures for a period (``GET /admin/kpis``), read from summaries the worker keeps from the event
log (``summary``), never from the purchases themselves."""
from .demo import load_demo
from .figures import INTERVALS, MAX_DAYS, Period, campaign_response_rate, kpis, period
from .models import KpiActiveChange, KpiDay, KpiMemberDay
from .summary import CURSOR, forget, position, summarise, summarise_all

__all__ = ["CURSOR", "INTERVALS", "MAX_DAYS", "KpiActiveChange", "KpiDay", "KpiMemberDay", "Period",
           "campaign_response_rate", "forget", "kpis", "load_demo", "period", "position", "summarise", "summarise_all"]
