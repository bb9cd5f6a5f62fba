"""Tables of the district (what the bundle imports) and of tracking (what devices produce)."""

from backend.models.access import AccessEntry
from backend.models.district import (
    CalendarDay,
    District,
    Route,
    RouteRun,
    RouteStop,
    School,
    Stop,
    SubsidyPolicy,
)
from backend.models.events import Event, TripAudit
from backend.models.finance import (
    AllowanceEntry,
    AttendanceConfirmation,
    Cluster,
    ClusterMember,
    FinanceExport,
    GridOverride,
    MonthClosing,
)
from backend.models.fleet import Device, Vehicle, vehicle_routes
from backend.models.jt808 import DeviceModel, Jt808Text
from backend.models.meals import MealReport
from backend.models.outbox import (
    NotificationDelivery,
    SchedulerLease,
    VehicleWatch,
    apscheduler_jobs,
)
from backend.models.people import (
    Student,
    Teacher,
    TeacherAssignment,
    User,
    user_schools,
    user_students,
    user_vehicles,
)
from backend.models.service import Notification, RouteMessage, RouteSubstitution
from backend.models.subsidies import SubsidyEntry
from backend.models.tracking import LivePosition, Ping, Reject, Scan, TrackerState

__all__ = [
    "AccessEntry",
    "AllowanceEntry",
    "AttendanceConfirmation",
    "Cluster",
    "ClusterMember",
    "FinanceExport",
    "GridOverride",
    "MonthClosing",
    "DeviceModel",
    "Jt808Text",
    "NotificationDelivery",
    "SchedulerLease",
    "VehicleWatch",
    "apscheduler_jobs",
    "MealReport",
    "SubsidyEntry",
    "Notification",
    "RouteMessage",
    "RouteSubstitution",
    "Event",
    "TripAudit",
    "LivePosition",
    "Ping",
    "Reject",
    "Scan",
    "TrackerState",
    "CalendarDay",
    "Device",
    "District",
    "Route",
    "RouteRun",
    "RouteStop",
    "School",
    "Stop",
    "Student",
    "SubsidyPolicy",
    "Teacher",
    "TeacherAssignment",
    "User",
    "Vehicle",
    "user_schools",
    "user_students",
    "user_vehicles",
    "vehicle_routes",
]
