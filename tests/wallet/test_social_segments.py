"""social.<attribute> for segments (wallet.segments.sql.social_condition): the SQL compares a member's attribute
(ignoring case), only with consent; and a segment of it through the API's criteria."""
from __future__ import annotations

from sqlalchemy import select

from wallet import enrolment, segments, social
from wallet.members import Member
from wallet.segments.sql import social_condition


def _member(session, program, email, attributes, share=True):
    member = enrolment.register_member(session, program, email=email, password="social-member-pass-1", name="M")
    if share:
        social.put_profile(session, program, member, {"attributes": attributes, "share_consent": True})
    return member.id


def _ids(session, condition):
    return set(session.scalars(select(Member.id).where(condition)))


def test_social_conditions(session, program):
    a = _member(session, program, "a@example.com", {"team": "Maccabi", "followers": 10})
    b = _member(session, program, "b@example.com", {"team": "hapoel "})
    c = _member(session, program, "c@example.com", {})
    d = _member(session, program, "d@example.com", {}, share=False)
    session.flush()
    assert _ids(session, social_condition("team", "=", "maccabi")) == {a}
    assert _ids(session, social_condition("team", "!=", "maccabi")) == {b}  # no attribute: no match
    assert _ids(session, social_condition("team", "in", ["HAPOEL", "maccabi"])) == {a, b}
    assert _ids(session, social_condition("followers", "=", 10)) == {a}
    assert c not in _ids(session, social_condition("team", "!=", "x")) and d
    criteria = {"all": [{"field": "social.team", "op": "=", "value": "Maccabi"}]}
    assert set(session.scalars(segments.member_ids(session, criteria, program=program))) == {a}
    # withdrawing the consent removes the member from every social condition
    member = session.get(Member, a)
    social.delete_profile(session, program, member)
    session.flush()
    assert _ids(session, social_condition("team", "=", "maccabi")) == set()
