"""The Flask extensions, created unbound and initialised by the factory."""
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_migrate import Migrate
from flask_smorest import Api
from flask_sqlalchemy import SQLAlchemy

import wallet.models  # noqa: F401  (every model on the metadata, for migrations)
from wallet.db import Base

db = SQLAlchemy(metadata=Base.metadata)
migrate = Migrate(compare_type=True, render_as_batch=True)
limiter = Limiter(key_func=get_remote_address, headers_enabled=True)
smorest = Api()
