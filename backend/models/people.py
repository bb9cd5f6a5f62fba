"""Students, teachers and the users who log in, with their scopes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, Boolean, Column, ForeignKey, Integer, String, Table
from sqlalchemy.orm import Mapped, mapped_column, relationship

from backend.extensions import db
from backend.models.district import ID

if TYPE_CHECKING:
    from backend.models.district import School
    from backend.models.fleet import Vehicle

ROLES = ("parent", "driver", "teacher", "logistics", "admin")


class Student(db.Model):
    __tablename__ = "students"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    school_id: Mapped[str] = mapped_column(ForeignKey("schools.id"), index=True)
    boarder: Mapped[bool] = mapped_column(Boolean, default=False)
    route_id: Mapped[str | None] = mapped_column(ForeignKey("routes.id"), index=True)
    stop_id: Mapped[str | None] = mapped_column(String(64))  # a stop or a school id
    card_id: Mapped[str | None] = mapped_column(String(64), unique=True)


class Teacher(db.Model):
    __tablename__ = "teachers"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    home_school_id: Mapped[str] = mapped_column(ForeignKey("schools.id"))
    vehicle_id: Mapped[str | None] = mapped_column(ForeignKey("vehicles.id"), index=True)
    # a card the teacher taps on a reader (a bus's or a school gate's): a scan at an assigned
    # school verifies a day there for the exchange allowance
    card_id: Mapped[str | None] = mapped_column(String(64), default=None)
    assignments: Mapped[list[TeacherAssignment]] = relationship(
        cascade="all, delete-orphan", order_by="TeacherAssignment.school_id"
    )


class TeacherAssignment(db.Model):
    __tablename__ = "teacher_assignments"
    teacher_id: Mapped[str] = mapped_column(ForeignKey("teachers.id"), primary_key=True)
    school_id: Mapped[str] = mapped_column(ForeignKey("schools.id"), primary_key=True)
    weekdays: Mapped[list[int]] = mapped_column(JSON)


def _scope_table(name: str, column: str, target: str) -> Table:
    return Table(
        name,
        db.metadata,
        Column("user_id", ForeignKey("users.id"), primary_key=True),
        Column(column, ForeignKey(target), primary_key=True),
    )


user_students = _scope_table("user_students", "student_id", "students.id")
user_vehicles = _scope_table("user_vehicles", "vehicle_id", "vehicles.id")
user_schools = _scope_table("user_schools", "school_id", "schools.id")


class User(db.Model):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    teacher_id: Mapped[str | None] = mapped_column(ForeignKey("teachers.id"))
    # Bumped on password change: tokens carry it, so old tokens stop working.
    token_version: Mapped[int] = mapped_column(Integer, default=0)
    # GET/PUT /me/preferences (notifications.model.Preferences.to_json); null: the defaults
    preferences: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    students: Mapped[list[Student]] = relationship(secondary=user_students, order_by="Student.id")
    vehicles: Mapped[list[Vehicle]] = relationship(secondary=user_vehicles, order_by="Vehicle.id")
    schools: Mapped[list[School]] = relationship(secondary=user_schools, order_by="School.id")
