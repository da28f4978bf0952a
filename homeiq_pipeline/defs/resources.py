"""The mirror database: the resource every folder of defs/ reads or writes through."""

import dagster as dg
import sqlalchemy as sa
from pydantic import Field, PrivateAttr

from .. import storage
from ..analytics import PictureCache
from ..settings import current


class MirrorDatabase(dg.ConfigurableResource):
    """The SQL mirror (any SQLAlchemy URL), migrated to the newest schema when first used. Within
    one run it also keeps the picture of the mirror the analytics read, for the history step."""

    url: str = Field(description="SQLAlchemy URL (HOMEIQ_DB_URL)")
    _engine: sa.Engine | None = PrivateAttr(default=None)
    _pictures: PictureCache = PrivateAttr(default_factory=PictureCache)

    @property
    def engine(self) -> sa.Engine:
        if self._engine is None:
            self._engine = storage.open_database(self.url)
        return self._engine

    @property
    def pictures(self) -> PictureCache:
        """This run's picture of the mirror, shared by the analytics and the history steps."""
        return self._pictures

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        self._pictures = PictureCache()  # memory stays at one snapshot between runs
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


def mirror_kind() -> str:
    """The `kinds` tag of the mirror's database, from its URL."""
    return {"postgresql": "postgres"}.get(sa.make_url(current().db_url).get_backend_name(), "sqlite")


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources={"mirror": MirrorDatabase(url=current().db_url)})
