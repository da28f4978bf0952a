-- The compose profile "production": the postgres image creates the database "homeiq" (the
-- mirror) and runs this on its first start. Dagster's storage gets a database of its own: the
-- mirror and Dagster both keep their schema version in a table named alembic_version.
CREATE DATABASE dagster OWNER homeiq;
