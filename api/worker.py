"""``loyalty worker``: the worker's settings from the app's configuration, and the command."""
from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Sequence
from datetime import timedelta

import click
from flask import Flask
from flask.cli import with_appcontext
from sqlalchemy.orm import sessionmaker

from wallet import campaigns, webhooks, worker

from .extensions import db
from .state import program


def webhook_settings(config: dict) -> webhooks.Settings:
    """Delivery settings from LOYALTY_WEBHOOK_* and LOYALTY_WORKER_CONCURRENCY."""
    return webhooks.Settings(allow_private=bool(config["LOYALTY_WEBHOOK_ALLOW_PRIVATE"]),
                             timeout=config["LOYALTY_WEBHOOK_TIMEOUT_SECONDS"],
                             lease=timedelta(seconds=config["LOYALTY_WEBHOOK_LEASE_SECONDS"]),
                             concurrency=config["LOYALTY_WORKER_CONCURRENCY"])


def message_settings(config: dict) -> campaigns.MessageSettings:
    """Campaign messages' settings from LOYALTY_SMTP_URL, LOYALTY_MAIL_FROM, LOYALTY_*_GATEWAY_URL and
    LOYALTY_GATEWAY_SECRET; a channel without its relay or gateway keeps its messages waiting."""
    timeout = config["LOYALTY_MESSAGE_TIMEOUT_SECONDS"]
    if (config["LOYALTY_SMS_GATEWAY_URL"] or config["LOYALTY_PUSH_GATEWAY_URL"]) and not config["LOYALTY_GATEWAY_SECRET"]:
        raise click.ClickException("LOYALTY_GATEWAY_SECRET is needed to sign what goes to the SMS and push gateways")
    return campaigns.MessageSettings(smtp_url=config["LOYALTY_SMTP_URL"] or None,
                                     mail_from=config["LOYALTY_MAIL_FROM"] or None,
                                     sms_gateway_url=config["LOYALTY_SMS_GATEWAY_URL"] or None,
                                     push_gateway_url=config["LOYALTY_PUSH_GATEWAY_URL"] or None,
                                     gateway_secret=config["LOYALTY_GATEWAY_SECRET"] or None, timeout=timeout,
                                     lease=timedelta(seconds=max(60.0, 6 * timeout)))


def stream_settings(config: dict) -> worker.StreamSettings | None:
    """The broker stream's settings, or None when LOYALTY_EVENTS_NATS_URL is not set."""
    url = config.get("LOYALTY_EVENTS_NATS_URL")
    if not url:
        return None
    return worker.StreamSettings(url=url, duplicate_window=config["LOYALTY_EVENTS_NATS_DUPLICATE_WINDOW"])


def register(app: Flask, jobs: Callable[[], Sequence[worker.PeriodicJob]]) -> None:
    """Add ``loyalty worker [--once]``; ``jobs`` gives the scheduled jobs it runs when they are due."""

    @app.cli.command("worker")
    @click.option("--once", is_flag=True, help="do what is due now (webhooks, stream, jobs), then exit")
    @with_appcontext
    def worker_command(once):
        """Deliver webhooks, publish the event stream and run due jobs until stopped (SIGTERM: after the current
        deliveries)."""
        if not logging.getLogger().handlers:
            logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        config = app.config
        stats = worker.run(sessionmaker(bind=db.engine), program(), settings=webhook_settings(config),
                           jobs=jobs(), stream=stream_settings(config), once=once, stop_event=stop,
                           messages=message_settings(config))
        click.echo(f"fanned out {stats.fanned_out} events, delivered {stats.delivered}, retrying {stats.retrying}, "
                   f"failed {stats.failed}, published {stats.published}; jobs {stats.jobs}; "
                   f"messages {dict(sorted((+stats.messages).items()))}")
