"""The ``loyalty`` command: the Flask CLI bound to the factory, with the club's own commands."""
from __future__ import annotations

import click
from flask import Flask
from flask.cli import FlaskGroup, with_appcontext

from wallet import demo, influence, kpis, ledger, members, tiers

from . import wallet_passes
from .extensions import db
from .state import program


def main() -> None:
    from . import create_app
    FlaskGroup(create_app=lambda: create_app(), help="The loyalty club's service.")(prog_name="loyalty")


def register(app: Flask) -> None:
    @app.cli.command("demo")
    @with_appcontext
    def demo_command():
        """Load a demo club (stores, products, offers, rules, accounts) and print the demo logins. Safe to repeat."""
        accounts = demo.load(db.session, program())
        db.session.commit()
        kpis.summarise_all(db.session, program(), db.session.commit)  # the demo's history in GET /admin/kpis
        click.echo("Demo club loaded. Sign in at POST /api/v1/auth/token with:")
        for role, email, password, extra in accounts:
            click.echo(f"  {role:<9} {email:<28} {password}{'  ' + extra if extra else ''}")
        click.echo("The marketers' console is at /console/ (sign in there as the marketer or the admin).")

    staff = click.Group("staff", help="Staff accounts.")

    @staff.command("create")
    @click.option("--email", required=True)
    @click.option("--password", required=True)
    @click.option("--role", required=True, type=click.Choice(members.STAFF_ROLES))
    @click.option("--store", "store_code", default=None, help="store code (cashiers)")
    @click.option("--name", default="")
    @with_appcontext
    def staff_create(email, password, role, store_code, name):
        """Create a cashier (bound to --store), marketer or admin."""
        from wallet.errors import DomainError
        try:
            account = members.create_staff(db.session, email=email, password=password, role=role, name=name,
                                           store_code=store_code)
            db.session.commit()
        except DomainError as error:
            db.session.rollback()
            raise click.ClickException(f"{error.code}: {error.detail}") from None
        click.echo(f"created {account.role} {account.email} ({account.id})")

    app.cli.add_command(staff)

    points = click.Group("points", help="Points jobs.")

    @points.command("expire")
    @click.option("--batch-size", default=500, show_default=True)
    @with_appcontext
    def points_expire(batch_size):
        """Expire what is left of lots past their date. Safe to run twice or from several hosts."""
        total = 0
        while True:
            expired = ledger.expire_due(db.session, program(), batch_size=batch_size)
            db.session.commit()
            if not expired:
                break
            total += expired
        click.echo(f"expired {total} points")

    @points.command("release")
    @click.option("--batch-size", default=500, show_default=True)
    @with_appcontext
    def points_release(batch_size):
        """Make pending points whose return window has passed spendable."""
        total = 0
        while True:
            released = ledger.release_due(db.session, program(), batch_size=batch_size)
            db.session.commit()
            if not released:
                break
            total += released
        click.echo(f"released {total} pending holds")

    app.cli.add_command(points)

    tier_jobs = click.Group("tiers", help="Tier jobs.")

    @tier_jobs.command("review")
    @click.option("--slice-size", default=50_000, show_default=True, help="members per transaction")
    @with_appcontext
    def tiers_review(slice_size):
        """Review every member's tier: exact qualifying values, up who qualify higher, down who fell below after
        their retention time (never below a status match). Safe to repeat."""
        result = tiers.review(db.session, program(), commit=db.session.commit, slice_size=slice_size)
        db.session.commit()
        click.echo(f"reviewed {result.members} members: {result.up} up, {result.down} down, "
                   f"{result.kept} keep their tier longer")

    app.cli.add_command(tier_jobs)

    maintenance = click.Group("maintenance", help="Housekeeping jobs.")

    @maintenance.command("purge")
    @click.option("--keep-hours", default=24, show_default=True, help="how long stored answers are replayable")
    @with_appcontext
    def maintenance_purge(keep_hours):
        """Forget old Idempotency-Key answers and expired refresh tokens. Safe to run any time."""
        from datetime import timedelta

        from wallet import idempotency, tokens
        now = program().now()
        keys = idempotency.purge(db.session, now, timedelta(hours=keep_hours))
        refresh = tokens.purge_expired(db.session, now)
        db.session.commit()
        click.echo(f"purged {keys} idempotency keys and {refresh} refresh tokens")

    app.cli.add_command(maintenance)

    influence_cli = click.Group("influence", help="The influence summary the ranking reads.")

    @influence_cli.command("refresh")
    @with_appcontext
    def influence_refresh():
        """Recompute every member's influence now (the worker does it hourly)."""
        written = influence.refresh(db.session, program())
        db.session.commit()
        click.echo(f"influence of {written} members written")

    app.cli.add_command(influence_cli)

    from .views.rules import register_cli as register_rule_jobs  # loyalty triggers run
    register_rule_jobs(app)

    from .views.stores import register_products_cli
    register_products_cli(app)

    from .views.kpis import register_cli as register_kpis_cli  # loyalty kpis summarise|rebuild
    register_kpis_cli(app)

    from .worker import register as register_worker  # loyalty worker [--once]
    register_worker(app, scheduled_jobs)


def scheduled_jobs() -> list:
    """The jobs ``loyalty worker`` runs when due (the CLI commands stay): each one batch at a time, until done."""
    from datetime import timedelta

    from wallet import contests, fraud, social, triggers
    from wallet.segments import activity as segment_activity
    from wallet.worker import PeriodicJob

    def run_triggers(session, club) -> int:
        summary = triggers.run(session, club, commit=session.commit)
        return sum(tally.events for tally in summary.values())

    def review_tiers(session, club) -> int:
        # One whole review, committed slice by slice; 0 tells the worker it is done until the next hour.
        tiers.review(session, club, commit=session.commit)
        return 0

    return [PeriodicJob("points-release", timedelta(minutes=5), lambda s, p: ledger.release_due(s, p)),
            PeriodicJob("tiers-review", timedelta(hours=1), review_tiers),
            PeriodicJob("triggers-run", timedelta(minutes=10), run_triggers),
            PeriodicJob("points-expire", timedelta(hours=24), lambda s, p: ledger.expire_due(s, p)),
            # a card used at two stores within a minute, flagged from the event log (nothing added to the till)
            PeriodicJob("fraud-watch", timedelta(seconds=30), lambda s, p: fraud.watch_purchases(s, p)),
            PeriodicJob("fraud-prune", timedelta(hours=1), lambda s, p: fraud.prune_counters(s, p.now())),
            PeriodicJob("kpis-summarise", timedelta(seconds=15), lambda s, p: kpis.summarise(s, p)),
            PeriodicJob("influence-refresh", timedelta(hours=1), lambda s, p: influence.refresh_due(s, p)),
            # segments' windows of spend, purchases and visits per member (exact as read: see its module)
            PeriodicJob("segments-activity", timedelta(hours=1), lambda s, p: segment_activity.refresh_due(s, p)),
            PeriodicJob("contests-draw", timedelta(minutes=1), contests.draw_due),  # at draw_at, once
            PeriodicJob("social-imports", timedelta(seconds=10), social.run_queued),  # large imports (202)
            *wallet_passes.jobs()]  # pass updates, APNs pushes, Google Wallet updates (when configured)
