"""The Flask extensions, created unbound and initialised by the factory (the limiter and the OpenAPI
object are made per app in create_app)."""
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy

import wallet.models  # noqa: F401  (every model on the metadata, for migrations)
from wallet.db import Base

db = SQLAlchemy(metadata=Base.metadata)
migrate = Migrate(compare_type=True, render_as_batch=True)
