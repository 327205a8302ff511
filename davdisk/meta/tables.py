"""The schema's tables as SQLAlchemy Core ``Table`` objects, for the query modules."""

from typing import cast

from sqlalchemy import Table

from davdisk.meta import models

nodes = cast(Table, models.Node.__table__)
users = cast(Table, models.User.__table__)
blobs = cast(Table, models.Blob.__table__)
props = cast(Table, models.Property.__table__)
user_keys = cast(Table, models.UserKey.__table__)
shares = cast(Table, models.Share.__table__)
locks = cast(Table, models.Lock.__table__)
app_tokens = cast(Table, models.AppToken.__table__)
login_failures = cast(Table, models.LoginFailure.__table__)
loose_blobs = cast(Table, models.LooseBlob.__table__)
versions = cast(Table, models.Version.__table__)
