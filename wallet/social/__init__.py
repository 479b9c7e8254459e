"""The member's social profile: linked networks and handles, attributes, and the ``social_data`` consent that
governs all of it (nothing social is stored or used without it; withdrawing it deletes the social data), the
``data_shared`` and ``profile_completed`` triggers, the import from the social side, and ``social.<attribute>``
for segments (read by wallet.segments.sql.social_condition)."""
from .consent import set_share_consent, shares
from .demo import load_demo
from .importing import (
    ImportReport,
    ImportRow,
    get_import,
    import_rows,
    parse_csv,
    parse_json,
    queue_import,
    run_import,
    run_queued,
)
from .models import NETWORKS, SocialAttribute, SocialImport, SocialNetwork
from .profile import (
    PROFILE_FIELDS,
    after_member_update,
    check_profile_completed,
    delete_profile,
    forget,
    get_profile,
    put_profile,
    validate_profile,
)

__all__ = [
    "NETWORKS", "PROFILE_FIELDS", "ImportReport", "ImportRow", "SocialAttribute", "SocialImport", "SocialNetwork",
    "after_member_update", "check_profile_completed", "delete_profile", "forget", "get_import", "get_profile", "import_rows", "load_demo", "parse_csv", "parse_json", "queue_import", "run_import", "run_queued", "put_profile", "set_share_consent", "shares",
    "validate_profile",
]
