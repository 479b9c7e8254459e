from .models import Segment  # noqa: F401
